"""The privacy helper: visitor and voter ids from IP and user agent, keyed, with no raw IP stored anywhere."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from readrate.events import Emitter
from readrate.events.errors import ConfigError
from readrate.events.model import Vote, check_person
from readrate.events.privacy import ID_PREFIX, MIN_SECRET_BYTES, Pseudonymizer, canonical_ip
from helpers import run_cli
from readrate.workers.schema import article_stats, votes

SECRET = b"0123456789abcdef-test-secret"
UA = "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"


@pytest.fixture
def ids() -> Pseudonymizer:
    return Pseudonymizer(SECRET)


def test_the_same_reader_gets_the_same_id_every_time(ids):
    assert ids.visitor_id("203.0.113.7", UA) == ids.visitor_id("203.0.113.7", UA)


def test_another_ip_or_another_user_agent_gives_another_id(ids):
    one = ids.visitor_id("203.0.113.7", UA)
    assert ids.visitor_id("203.0.113.8", UA) != one
    assert ids.visitor_id("203.0.113.7", UA + " Edg/1") != one


def test_another_secret_gives_another_id_so_ids_cannot_be_computed_without_it(ids):
    other = Pseudonymizer(b"another-secret-of-enough-bytes")
    assert other.visitor_id("203.0.113.7", UA) != ids.visitor_id("203.0.113.7", UA)


def test_the_id_is_the_keyed_sha256_of_scope_ip_and_user_agent_base64url_encoded(ids):
    digest = hmac.new(SECRET, f"\n203.0.113.7\n{UA}".encode(), hashlib.sha256).digest()
    assert ids.visitor_id("203.0.113.7", UA) == ID_PREFIX + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def test_the_id_carries_no_part_of_the_ip_and_fits_the_wire_format(ids):
    value = ids.visitor_id("203.0.113.7", UA)
    assert "203" not in value and "113" not in value
    assert len(value) == len(ID_PREFIX) + 43 <= 128
    assert check_person(value, "voter", required=True) == value


def test_an_ipv4_mapped_ipv6_address_is_the_same_reader_as_its_ipv4_address(ids):
    assert ids.visitor_id("::ffff:203.0.113.7", UA) == ids.visitor_id("203.0.113.7", UA)
    assert ids.visitor_id(" 2001:DB8:0:0::1 ", UA) == ids.visitor_id("2001:db8::1", UA)


def test_text_that_is_not_an_address_is_used_as_given():
    assert canonical_ip(" unknown ") == "unknown"
    assert canonical_ip("fe80::1%eth0") == "fe80::1"


def test_scopes_keep_ids_of_the_same_reader_unlinkable(ids):
    assert ids.visitor_id("203.0.113.7", UA, scope="site-a") != ids.visitor_id("203.0.113.7", UA, scope="site-b")


def test_a_missing_user_agent_still_gives_an_id(ids):
    assert ids.visitor_id("203.0.113.7", None) == ids.visitor_id("203.0.113.7", "")


def test_a_short_secret_is_refused_saying_how_long_it_must_be():
    with pytest.raises(ConfigError, match=f"at least {MIN_SECRET_BYTES}"):
        Pseudonymizer(b"short")


def test_the_secret_comes_from_readrate_id_secret_and_its_absence_is_a_config_error():
    assert Pseudonymizer.from_env({"READRATE_ID_SECRET": SECRET.decode()}).secret == SECRET
    with pytest.raises(ConfigError, match="READRATE_ID_SECRET is not set"):
        Pseudonymizer.from_env({})


def test_the_secret_is_not_shown_in_the_repr(ids):
    assert SECRET.decode() not in repr(ids)


@given(ip=st.ip_addresses().map(str), agent=st.text(max_size=300))
def test_any_address_and_user_agent_give_a_valid_voter_id(ip, agent):
    value = Pseudonymizer(SECRET).voter_id(ip, agent)
    assert Vote("article-1", 0, value, 4.0).voter == value
    assert ip not in value


def test_a_vote_keyed_by_ip_is_counted_per_reader_and_the_ip_reaches_neither_redis_nor_the_database(
        ids, settings, engine, redis):
    ip, other_ip = "198.51.100.23", "198.51.100.99"
    emitter = Emitter(redis, keys=settings.keys, scale=settings.rating_scale, strict=True)
    assert emitter.vote("article-1", 2, voter=ids.voter_id(ip, UA))
    assert emitter.vote("article-1", 5, voter=ids.voter_id(ip, UA))  # the same reader changes their mind
    assert emitter.vote("article-1", 4, voter=ids.voter_id(other_ip, UA))
    streams = b"".join(
        value for shard in range(settings.shards)
        for _id, fields in redis.xrange(settings.keys.stream(shard)) for value in fields.values()
    )
    assert ip.encode() not in streams and other_ip.encode() not in streams

    drained = run_cli(settings, "worker", "--burst", timeout=120)

    assert drained.returncode == 0, drained.stderr
    with engine.connect() as conn:
        stats = conn.execute(select(article_stats.c.votes, article_stats.c.rating_sum)).one()
        voters = set(conn.scalars(select(votes.c.voter_id)))
    assert (stats.votes, stats.rating_sum) == (2, 9.0)
    assert voters == {ids.voter_id(ip, UA), ids.voter_id(other_ip, UA)}
    assert not any(ip in v or other_ip in v for v in voters)
