"""Voter tokens (events/tokens.py), a contract: VOTER + "." + hex(HMAC-SHA256(secret, VOTER))."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from readrate.events.errors import InvalidEvent, ReadrateError
from readrate.events.tokens import BadToken, sign, verify

SECRET = b"collector-secret-0123456789abcdef"
OTHER_SECRET = b"another-site-secret-0123456789ab"


def independent_token(voter: str, secret: bytes) -> str:
    """The token as a PHP site computes it: `$v . '.' . hash_hmac('sha256', $v, $secret)`."""
    return voter + "." + hmac.new(secret, voter.encode("utf-8"), hashlib.sha256).hexdigest()


@pytest.mark.parametrize("voter", ["user-1001", "42", "jörg@example.org", "user.name.example", "a.b.c.", "x"])
def test_a_signed_token_is_the_contract_hmac_and_verifies_to_its_voter(voter):
    token = sign(voter, SECRET)

    assert token == independent_token(voter, SECRET)
    assert verify(token, SECRET) == voter


def test_a_token_made_independently_by_a_cms_verifies():
    assert verify(independent_token("cms-user-7", SECRET), SECRET) == "cms-user-7"


def test_the_voter_is_everything_before_the_last_dot():
    token = independent_token("first.last", SECRET)

    assert token.count(".") == 2
    assert verify(token, SECRET) == "first.last"


def test_a_signature_in_upper_case_hex_is_accepted():
    voter, _, mac = sign("user-1", SECRET).rpartition(".")

    assert verify(f"{voter}.{mac.upper()}", SECRET) == "user-1"


def test_a_token_made_with_another_secret_is_refused_naming_the_secret_setting():
    with pytest.raises(BadToken, match="does not match.*READRATE_VOTER_SECRET"):
        verify(sign("user-1", OTHER_SECRET), SECRET)


def test_a_forged_token_for_another_voter_is_refused():
    _, _, mac = sign("user-1", SECRET).rpartition(".")

    with pytest.raises(BadToken, match="does not match"):
        verify(f"admin.{mac}", SECRET)


def test_a_token_with_one_changed_hex_digit_is_refused():
    token = sign("user-1", SECRET)
    flipped = token[:-1] + ("0" if token[-1] != "0" else "1")

    with pytest.raises(BadToken, match="does not match"):
        verify(flipped, SECRET)


@pytest.mark.parametrize("cut", [1, 32, 63])
def test_a_truncated_token_is_refused_saying_how_long_the_signature_is(cut):
    token = sign("user-1", SECRET)[:-cut]

    with pytest.raises(BadToken, match=f"signature is {64 - cut} characters; expected 64 hex digits"):
        verify(token, SECRET)


def test_a_token_with_too_long_a_signature_is_refused():
    with pytest.raises(BadToken, match="signature is 65 characters"):
        verify(sign("user-1", SECRET) + "0", SECRET)


def test_a_signature_of_64_non_hex_characters_is_refused_as_malformed():
    with pytest.raises(BadToken, match="expected 64 hex digits"):
        verify("user-1." + "g" * 64, SECRET)


@pytest.mark.parametrize("token", ["user-1", "user-1" + "a" * 64, "." + "a" * 64])
def test_a_token_without_a_voter_and_a_dot_is_refused_as_malformed(token):
    with pytest.raises(BadToken, match="malformed: expected VOTER.HEX_HMAC_SHA256"):
        verify(token, SECRET)


@pytest.mark.parametrize("token", ["", None, 42, b"user-1.abc", ["user-1"]])
def test_an_empty_or_non_string_token_is_refused_asking_for_a_string(token):
    with pytest.raises(BadToken, match="voter_token must be a non-empty string"):
        verify(token, SECRET)


def test_a_bad_token_is_an_invalid_event_and_a_readrate_error():
    with pytest.raises(BadToken) as caught:
        verify("nonsense", SECRET)

    assert isinstance(caught.value, InvalidEvent)
    assert isinstance(caught.value, ReadrateError)


def test_a_bad_tokens_message_never_holds_the_secret():
    with pytest.raises(BadToken) as caught:
        verify(sign("user-1", OTHER_SECRET), SECRET)

    assert SECRET.decode() not in str(caught.value)
    assert OTHER_SECRET.decode() not in str(caught.value)


@pytest.mark.parametrize("voter", ["", "v" * 129, "user\n1"])
def test_a_voter_id_the_wire_format_refuses_cannot_be_signed(voter):
    with pytest.raises(InvalidEvent):
        sign(voter, SECRET)


def test_a_correctly_signed_voter_id_the_wire_format_refuses_is_still_refused():
    with pytest.raises(InvalidEvent, match="129 characters"):
        verify(independent_token("v" * 129, SECRET), SECRET)
