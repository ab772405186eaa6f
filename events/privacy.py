"""Visitor and voter ids for page hooks that must not store who the reader is.

A page that has no login still wants "one vote per reader". The usual shortcut —
the IP address as voter id — puts personal data into Redis and the database.
`Pseudonymizer` derives an opaque id instead: HMAC-SHA256 over the IP address and
the user agent, keyed with a server secret. The same reader gets the same id
(so a re-vote replaces the earlier one), nobody without the secret can compute an
id from an IP (the IPv4 space is small enough to try every address, which is why
a keyed hash and not a plain one), and the raw IP never leaves the page process.

Pure: no I/O, no clock, no environment read except in `from_env`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field

from .errors import ConfigError

SECRET_ENV = "READRATE_ID_SECRET"
# Shorter keys make brute force of the 2**32 IPv4 addresses the only thing left to guess.
MIN_SECRET_BYTES = 16
# "h1-" plus 43 base64url characters: well within the 128 characters the wire format allows,
# and the version tag lets a later scheme coexist with this one.
ID_PREFIX = "h1-"


def canonical_ip(ip: str) -> str:
    """The one spelling of an address: '::ffff:1.2.3.4' is '1.2.3.4', IPv6 in compressed form.

    Text that is not an address (a proxy's 'unknown') is used as given, stripped.
    """
    text = (ip or "").strip()
    if _is_plain_ipv4(text):
        return text  # the common case, already canonical: no parsing in pure Python per request
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return text
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.compressed


def _is_plain_ipv4(text: str) -> bool:
    """True for dotted-decimal IPv4 written canonically (no leading zeros), checked in C."""
    try:
        return socket.inet_ntop(socket.AF_INET, socket.inet_pton(socket.AF_INET, text)) == text
    except (OSError, ValueError):
        return False


@dataclass(frozen=True)
class Pseudonymizer:
    """Turns (IP address, user agent) into an opaque visitor or voter id, keyed with a server secret."""

    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.secret, bytes):
            object.__setattr__(self, "secret", str(self.secret).encode("utf-8"))
        if len(self.secret) < MIN_SECRET_BYTES:
            raise ConfigError(
                f"the id secret is {len(self.secret)} bytes; accepted: at least {MIN_SECRET_BYTES} "
                f"(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Pseudonymizer:
        """Read the secret from READRATE_ID_SECRET (call once at start-up)."""
        env = os.environ if env is None else env
        secret = env.get(SECRET_ENV, "")
        if not secret:
            raise ConfigError(f"{SECRET_ENV} is not set; it must hold a secret of at least {MIN_SECRET_BYTES} bytes")
        return cls(secret.encode("utf-8"))

    def visitor_id(self, ip: str, user_agent: str | None = None, *, scope: str = "") -> str:
        """An id of at most 48 characters for this reader; the same inputs always give the same id.

        `scope` separates ids that must not be linkable: ids for different scopes
        (say, one site and another) share nothing.
        """
        message = "\n".join((scope, canonical_ip(ip), (user_agent or "").strip()))
        digest = hmac.new(self.secret, message.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()
        return ID_PREFIX + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    # A voter id is a visitor id: the names differ only for the reader of the page code.
    voter_id = visitor_id
