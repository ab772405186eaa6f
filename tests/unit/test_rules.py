"""The counting rules (events/rules.py): which views count, the read interval, the commands for Redis."""

from __future__ import annotations

import hashlib
from datetime import date
from types import SimpleNamespace

import pytest
from redis.crc import key_slot

from readrate.events.errors import ConfigError, ReadrateError
from readrate.events.model import Read
from readrate.events.rules import (
    BOT, DEFAULT_READ_INTERVAL_MS, DROPPED_KEEP_DAYS, EXCLUDED, PREFETCH, REASONS, REPEAT, REPEAT_SCRIPT,
    REPEAT_SHA, days_back, drop_commands, dropped_counts, dropped_key, is_bot, is_speculative, parse_interval,
    purpose_of, read_command, screen, seen_key, with_script_text,
)
from readrate.events.settings import Settings
from readrate.events.transport import _owners
from readrate.events.wire import Keys

CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/124.0.0.0 Safari/537.36")
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
HEADLESS = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "HeadlessChrome/124.0.0.0 Safari/537.36")
KEYS = Keys("site", 4)
DAY = date(2023, 11, 14)
AT_MS = 1_700_000_000_000  # 2023-11-14T22:13:20Z


# -- bots ------------------------------------------------------------------------


@pytest.mark.parametrize("agent", [GOOGLEBOT, "Googlebot/2.1", "bingbot/2.0", "curl/8.5.0",
                                   "python-requests/2.31.0", HEADLESS])
def test_crawlers_tools_and_headless_browsers_are_bots(agent):
    assert is_bot(agent) is True


@pytest.mark.parametrize("agent", [CHROME, FIREFOX])
def test_ordinary_browsers_are_not_bots(agent):
    assert is_bot(agent) is False


@pytest.mark.parametrize("agent", ["", "   ", "\t"])
def test_an_empty_or_blank_user_agent_is_a_bots(agent):
    assert is_bot(agent) is True


def test_the_verdict_for_a_user_agent_is_cached():
    agent = CHROME + " rrt-cache-probe"
    is_bot(agent)
    hits = is_bot.cache_info().hits

    assert is_bot(agent) is False
    assert is_bot.cache_info().hits == hits + 1


# -- prefetches and the purpose headers ---------------------------------------------


@pytest.mark.parametrize("purpose", ["prefetch", "Prefetch", "prefetch;prerender",
                                     "prefetch;anonymous-client-ip", "preview", "prerender"])
def test_a_purpose_naming_prefetch_prerender_or_preview_is_speculative(purpose):
    assert is_speculative(purpose) is True


@pytest.mark.parametrize("purpose", [None, "", "navigate", "document"])
def test_no_purpose_or_another_purpose_is_not_speculative(purpose):
    assert is_speculative(purpose) is False


def test_purpose_of_finds_each_announcing_header_in_any_case():
    assert purpose_of({"Sec-Purpose": "prefetch"}) == "prefetch"
    assert purpose_of({"PURPOSE": "prefetch"}) == "prefetch"
    assert purpose_of({"x-purpose": "preview"}) == "preview"
    assert purpose_of({"X-Moz": "prefetch"}) == "prefetch"


def test_purpose_of_joins_several_announcements_and_skips_empty_ones():
    joined = purpose_of({"Sec-Purpose": "prefetch;prerender", "X-Moz": "prefetch", "Purpose": ""})

    assert joined == "prefetch;prerender,prefetch"


def test_purpose_of_headers_without_an_announcement_is_none():
    assert purpose_of({}) is None
    assert purpose_of({"User-Agent": CHROME, "Accept": "text/html"}) is None


# -- screen ------------------------------------------------------------------------


def test_a_browsers_ordinary_view_passes_the_screen():
    assert screen(CHROME) is None


def test_an_unknown_user_agent_is_not_judged_a_bot():
    assert screen(None) is None


def test_a_bots_view_is_screened_out_as_bot():
    assert screen(GOOGLEBOT) == BOT
    assert screen("") == BOT


@pytest.mark.parametrize("method", ["HEAD", "head"])
def test_a_head_request_is_screened_out_as_prefetch(method):
    assert screen(CHROME, method=method) == PREFETCH


def test_a_speculative_load_is_screened_out_as_prefetch_even_from_a_bot():
    assert screen(CHROME, purpose="prefetch") == PREFETCH
    assert screen(GOOGLEBOT, purpose="prefetch") == PREFETCH


def test_an_excluded_browser_is_screened_out_before_every_other_rule():
    assert screen(CHROME, excluded=True) == EXCLUDED
    assert screen(GOOGLEBOT, purpose="prefetch", method="HEAD", excluded=True) == EXCLUDED


def test_the_reasons_are_the_four_the_collector_contract_names():
    assert set(REASONS) == {"bot", "prefetch", "repeat", "excluded"}


# -- READRATE_READ_INTERVAL ---------------------------------------------------------


@pytest.mark.parametrize("text, ms", [
    ("30m", 1_800_000), ("1h", 3_600_000), ("90s", 90_000), ("1d", 86_400_000), ("500ms", 500),
    ("0", 0), ("0s", 0), ("0ms", 0), (" 30M ", 1_800_000), ("2H", 7_200_000),
])
def test_an_interval_is_read_as_milliseconds(text, ms):
    assert parse_interval(text) == ms


def test_the_default_interval_is_thirty_minutes():
    assert DEFAULT_READ_INTERVAL_MS == 1_800_000 == parse_interval("30m")


@pytest.mark.parametrize("text", ["", "   ", "30", "5", "m", "30x", "-5m", "1.5h", "half an hour",
                                  "30 minutes", "ms", "1h30m"])
def test_a_bad_interval_is_refused_quoting_it_and_naming_the_variable(text):
    with pytest.raises(ConfigError) as caught:
        parse_interval(text)

    message = str(caught.value)
    assert "READRATE_READ_INTERVAL" in message
    assert repr(text) in message
    assert "30m" in message and "0" in message
    assert isinstance(caught.value, ReadrateError)


@pytest.mark.parametrize("text", ["²", "²m"])
def test_an_interval_of_non_ascii_digits_is_refused_as_a_config_error(text):
    with pytest.raises(ConfigError, match="READRATE_READ_INTERVAL"):
        parse_interval(text)


def test_settings_read_the_interval_from_readrate_read_interval():
    assert Settings.from_env({}).read_interval_ms == 1_800_000
    assert Settings.from_env({"READRATE_READ_INTERVAL": ""}).read_interval_ms == 1_800_000
    assert Settings.from_env({"READRATE_READ_INTERVAL": "1h"}).read_interval_ms == 3_600_000
    assert Settings.from_env({"READRATE_READ_INTERVAL": "0"}).read_interval_ms == 0
    assert Settings.from_env({"READRATE_READ_INTERVAL": "1h"}, read_interval_ms=500).read_interval_ms == 500


def test_settings_refuse_a_bad_readrate_read_interval_quoting_it():
    with pytest.raises(ConfigError, match="READRATE_READ_INTERVAL='soon' is not a duration"):
        Settings.from_env({"READRATE_READ_INTERVAL": "soon"})


# -- the keys of the rules ---------------------------------------------------------


def test_the_seen_mark_and_the_dropped_hash_are_on_the_slot_of_their_shards_stream():
    for shard in range(4):
        stream_slot = key_slot(KEYS.stream(shard).encode())
        mark = seen_key(KEYS, shard, "visitor-1", "article-1")
        dropped = dropped_key(KEYS, shard, DAY)

        assert mark.startswith(KEYS.tag(shard) + ":seen:")
        assert dropped == f"{KEYS.tag(shard)}:dropped:2023-11-14"
        assert key_slot(mark.encode()) == key_slot(dropped.encode()) == stream_slot


def test_the_seen_mark_is_one_per_visitor_and_article_and_holds_neither_in_clear():
    mark = seen_key(KEYS, 1, "visitor-1", "article-1")

    assert mark == seen_key(KEYS, 1, "visitor-1", "article-1")
    assert mark != seen_key(KEYS, 1, "visitor-2", "article-1")
    assert mark != seen_key(KEYS, 1, "visitor-1", "article-2")
    assert mark != seen_key(KEYS, 1, "article-1", "visitor-1")
    assert "visitor-1" not in mark and "article-1" not in mark


def test_a_seen_mark_takes_any_characters_an_id_may_hold():
    assert seen_key(KEYS, 0, "vïsitor {x} \ud800", "artícle:1") != seen_key(KEYS, 0, "visitor", "article:1")


# -- the read command ---------------------------------------------------------------


def test_a_read_without_a_visitor_is_a_plain_xadd_whatever_the_interval():
    event = Read("article-1", AT_MS)

    command = read_command(KEYS, 2, event, 1_800_000)

    assert command == ("XADD", "{site:2}:events", "*", "k", "read", "a", "article-1", "t", str(AT_MS))


def test_a_visitors_read_with_interval_zero_is_a_plain_xadd():
    event = Read("article-1", AT_MS, "visitor-1")

    command = read_command(KEYS, 2, event, 0)

    assert command == ("XADD", "{site:2}:events", "*", "k", "read", "a", "article-1", "t", str(AT_MS),
                       "v", "visitor-1")


def test_a_visitors_read_under_an_interval_is_the_repeat_script_on_the_shards_keys():
    event = Read("article-1", AT_MS, "visitor-1")

    command = read_command(KEYS, 2, event, 1_800_000)

    assert command == (
        "EVALSHA", REPEAT_SHA, 3,
        "{site:2}:events", seen_key(KEYS, 2, "visitor-1", "article-1"), "{site:2}:dropped:2023-11-14",
        1_800_000, DROPPED_KEEP_DAYS * 86_400, "*",
        "k", "read", "a", "article-1", "t", str(AT_MS), "v", "visitor-1",
    )


def test_the_repeat_scripts_sha_is_the_one_redis_computes(redis):
    assert REPEAT_SHA == hashlib.sha1(REPEAT_SCRIPT.encode()).hexdigest()
    assert redis.script_load(REPEAT_SCRIPT) == REPEAT_SHA


class SlotRouter:
    """What a RedisCluster's get_node_from_key answers for three masters splitting the 16384 slots evenly."""

    def get_node_from_key(self, key: str) -> SimpleNamespace:
        return SimpleNamespace(name=f"master-{key_slot(key.encode()) * 3 // 16384}")


def test_on_a_cluster_the_repeat_script_goes_to_the_master_of_its_shards_slot():
    keys = Keys("site", 16)
    router = SlotRouter()
    commands = [read_command(keys, shard, Read("article-1", AT_MS, "v-1"), 1_000) for shard in range(16)]
    commands += [with_script_text(command) for command in commands]

    owners = _owners(router, commands, 1)

    expected = [router.get_node_from_key(keys.stream(shard)).name for shard in range(16)] * 2
    assert owners == expected


def test_with_script_text_turns_the_repeat_evalsha_into_eval_with_the_same_arguments():
    command = read_command(KEYS, 2, Read("article-1", AT_MS, "visitor-1"), 1_000)

    again = with_script_text(command)

    assert again[:2] == ("EVAL", REPEAT_SCRIPT)
    assert again[2:] == command[2:]


def test_with_script_text_leaves_every_other_command_alone():
    xadd = read_command(KEYS, 2, Read("article-1", AT_MS), 1_000)
    other_script = ("EVALSHA", "0" * 40, 0)

    assert with_script_text(xadd) is xadd
    assert with_script_text(other_script) is other_script


# -- counting dropped events --------------------------------------------------------


def test_drop_commands_count_a_reason_in_the_days_hash_and_keep_it_four_hundred_days():
    assert drop_commands(KEYS, 3, BOT, DAY, 5) == [
        ("HINCRBY", "{site:3}:dropped:2023-11-14", "bot", 5),
        ("EXPIRE", "{site:3}:dropped:2023-11-14", 400 * 86_400),
    ]
    assert drop_commands(KEYS, 3, PREFETCH, DAY)[0][-1] == 1


def test_dropped_counts_sum_every_shard_per_day_and_reason(redis, prefix):
    keys = Keys(prefix, 2, 4)  # shards 2 and 3 were used before a `config set shards 2`: still summed
    other_day = date(2023, 11, 15)
    for shard, reason, day, count in [(0, BOT, DAY, 2), (1, BOT, DAY, 3), (3, REPEAT, DAY, 4),
                                      (2, PREFETCH, other_day, 1), (0, EXCLUDED, other_day, 6)]:
        for command in drop_commands(keys, shard, reason, day, count):
            redis.execute_command(*command)

    counts = dropped_counts(redis, keys, [DAY, other_day, date(2023, 11, 16)])

    assert counts == {
        DAY: {"bot": 5, "repeat": 4},
        other_day: {"prefetch": 1, "excluded": 6},
        date(2023, 11, 16): {},
    }
    assert 0 < redis.ttl(dropped_key(keys, 0, DAY)) <= 400 * 86_400


def test_dropped_counts_of_no_days_is_empty(redis, prefix):
    assert dropped_counts(redis, Keys(prefix, 4), []) == {}


def test_days_back_lists_the_days_up_to_today_oldest_first():
    assert days_back(date(2024, 3, 1), 3) == [date(2024, 2, 28), date(2024, 2, 29), date(2024, 3, 1)]
    assert days_back(DAY, 1) == [DAY]
    assert days_back(DAY, 0) == []


def test_an_interval_longer_than_a_year_is_refused_before_redis_would_refuse_every_read():
    with pytest.raises(ConfigError, match="365d"):
        parse_interval("1000000000000d")
    assert parse_interval("365d") == 365 * 86_400_000
