"""Voter tokens (a contract): how a site tells the collector who votes, so nobody else can vote as them.

    token = VOTER + "." + hex(HMAC-SHA256(READRATE_VOTER_SECRET, VOTER))

In PHP: `$v . '.' . hash_hmac('sha256', $v, $secret)`. The voter is everything before
the last dot, so a voter id may itself contain dots. Pure functions only.
"""

from __future__ import annotations

import hashlib
import hmac

from .errors import InvalidEvent
from .validator import check_person

DIGEST_HEX = 64


class BadToken(InvalidEvent):
    """Raised when a voter token is malformed, or its signature is not the secret's."""


def sign(voter: str, secret: bytes) -> str:
    """The token for `voter` (checked like any voter id: 1-128 characters, no control characters)."""
    voter = check_person(voter, "voter", required=True)
    return f"{voter}.{_mac(voter, secret)}"


def verify(token: object, secret: bytes) -> str:
    """The voter a token names; BadToken saying what is wrong otherwise."""
    if not isinstance(token, str) or not token:
        raise BadToken("voter_token must be a non-empty string: VOTER.HEX_HMAC_SHA256")
    voter, dot, mac = token.rpartition(".")
    if not dot or not voter:
        raise BadToken("voter_token is malformed: expected VOTER.HEX_HMAC_SHA256 (a voter, a dot, 64 hex digits)")
    if len(mac) != DIGEST_HEX:
        raise BadToken(f"voter_token's signature is {len(mac)} characters; expected 64 hex digits of "
                       "HMAC-SHA256 (truncated or malformed)")
    if any(c not in "0123456789abcdefABCDEF" for c in mac):
        raise BadToken("voter_token's signature is not hexadecimal; expected 64 hex digits of HMAC-SHA256")
    if not hmac.compare_digest(mac.lower(), _mac(voter, secret)):
        raise BadToken("voter_token's signature does not match: the token was not made with this "
                       "collector's READRATE_VOTER_SECRET")
    return check_person(voter, "voter", required=True)


def _mac(voter: str, secret: bytes) -> str:
    return hmac.new(secret, voter.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
