"""Visitor ids (events/visitors.py): address and user agent hashed under a daily salt shared through Redis."""

from __future__ import annotations

import re
from datetime import date

import pytest

from readrate.events.validator import check_person
from readrate.events.visitors import SALT_BYTES, SALT_TTL_S, DailySalt, salt_key, visitor_id

SALT = bytes(range(32))
OTHER_SALT = bytes(range(1, 33))
CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/124.0.0.0 Safari/537.36"
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"
DAY = date(2025, 6, 1)
NEXT_DAY = date(2025, 6, 2)


# -- visitor_id ----------------------------------------------------------------------


def test_the_same_address_and_agent_under_one_salt_give_the_same_id():
    assert visitor_id(SALT, "203.0.113.7", CHROME) == visitor_id(SALT, "203.0.113.7", CHROME)


def test_the_id_is_a_versioned_25_character_id_the_wire_format_accepts():
    vid = visitor_id(SALT, "203.0.113.7", CHROME)

    assert vid.startswith("d1-")
    assert len(vid) == 25
    assert check_person(vid, "visitor", required=True) == vid


def test_another_days_salt_gives_another_id():
    assert visitor_id(SALT, "203.0.113.7", CHROME) != visitor_id(OTHER_SALT, "203.0.113.7", CHROME)


def test_another_user_agent_or_address_gives_another_id():
    vid = visitor_id(SALT, "203.0.113.7", CHROME)

    assert vid != visitor_id(SALT, "203.0.113.7", FIREFOX)
    assert vid != visitor_id(SALT, "203.0.113.8", CHROME)
    assert vid != visitor_id(SALT, "203.0.113.7", None)


def test_an_ipv4_mapped_ipv6_address_is_the_same_client_as_its_ipv4_address():
    assert visitor_id(SALT, "::ffff:1.2.3.4", CHROME) == visitor_id(SALT, "1.2.3.4", CHROME)


def test_an_ipv6_address_is_the_same_client_in_every_spelling():
    assert visitor_id(SALT, "2001:DB8:0:0::1", CHROME) == visitor_id(SALT, "2001:db8::1", CHROME)


def test_surrounding_spaces_in_the_user_agent_do_not_change_the_id():
    assert visitor_id(SALT, "1.2.3.4", f"  {CHROME} ") == visitor_id(SALT, "1.2.3.4", CHROME)
    assert visitor_id(SALT, "1.2.3.4", "") == visitor_id(SALT, "1.2.3.4", None)


@pytest.mark.parametrize("address", ["203.0.113.7", "2001:db8::1", "::ffff:10.1.2.3", "unknown"])
def test_the_id_never_contains_the_address(address):
    vid = visitor_id(SALT, address, CHROME)

    assert address not in vid and "10.1.2.3" not in vid
    assert re.fullmatch(r"d1-[A-Za-z0-9_-]{22}", vid)  # no dot or colon: no address can hide in it


# -- DailySalt against the real Redis ---------------------------------------------------


def test_two_processes_get_the_same_salt_for_a_day(redis, prefix):
    first, second = DailySalt(redis, prefix), DailySalt(redis, prefix)

    salt = first.for_day(DAY)

    assert len(salt) == SALT_BYTES
    assert second.for_day(DAY) == salt
    assert redis.get(salt_key(prefix, DAY)) == salt


def test_different_days_get_different_salts(redis, prefix):
    salts = DailySalt(redis, prefix)

    assert salts.for_day(DAY) != salts.for_day(NEXT_DAY)


def test_the_salt_key_expires_a_day_after_its_day_ends(redis, prefix):
    DailySalt(redis, prefix).for_day(DAY)

    key = salt_key(prefix, DAY)
    assert key == f"{{{prefix}}}:salt:2025-06-01"
    assert SALT_TTL_S - 5 <= redis.ttl(key) <= SALT_TTL_S == 2 * 86_400


def test_a_days_salt_is_fetched_from_redis_once_per_process(redis, prefix):
    salts = DailySalt(redis, prefix)
    salt = salts.for_day(DAY)
    redis.delete(salt_key(prefix, DAY))

    # Asked again, the process keeps its salt and sends nothing: the deleted key stays deleted.
    assert salts.for_day(DAY) == salt
    assert not redis.exists(salt_key(prefix, DAY))


def test_a_new_day_is_fetched_again_and_an_existing_salt_is_never_replaced(redis, prefix):
    salts = DailySalt(redis, prefix)
    salts.for_day(DAY)
    redis.set(salt_key(prefix, NEXT_DAY), b"s" * SALT_BYTES)  # set by another process first

    assert salts.for_day(NEXT_DAY) == b"s" * SALT_BYTES
    assert redis.get(salt_key(prefix, NEXT_DAY)) == b"s" * SALT_BYTES


def test_the_same_client_has_one_id_across_processes_and_another_the_next_day(redis, prefix):
    one, two = DailySalt(redis, prefix), DailySalt(redis, prefix)

    today = visitor_id(one.for_day(DAY), "198.51.100.4", CHROME)

    assert visitor_id(two.for_day(DAY), "::ffff:198.51.100.4", CHROME) == today
    assert visitor_id(two.for_day(NEXT_DAY), "198.51.100.4", CHROME) != today
