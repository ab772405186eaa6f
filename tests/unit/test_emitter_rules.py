"""The counting rules as `Emitter.read()` applies them, against the real Redis: repeats, bots, prefetches."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, date, datetime

import pytest
from conftest import REDIS_URL
from helpers import install, wait_until
from redis import Redis

from readrate.events import Emitter, Read, Settings
from readrate.events.rules import REPEAT_SHA, dropped_key, seen_key
from readrate.reports.localredis import RedisServer

AT_MS = 1_700_000_000_000  # 2023-11-14T22:13:20Z: a fixed day, so the dropped hash is known
DAY = date(2023, 11, 14)
GOOGLEBOT = "Googlebot/2.1"
CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/124.0.0.0 Safari/537.36")


@pytest.fixture
def settings(prefix, redis):
    """As in test_emitter.py: Redis only, the installation record published as a worker would."""
    return install(redis, Settings.from_env({}, redis_url=REDIS_URL, prefix=prefix))


@pytest.fixture
def emitter(settings, redis):
    return Emitter.from_settings(settings, redis=redis)


def emitter_with(settings: Settings, redis: Redis, read_interval_ms: int) -> Emitter:
    return Emitter.from_settings(replace(settings, read_interval_ms=read_interval_ms), redis=redis)


def stored(redis: Redis, settings: Settings, article_id: str) -> int:
    """XLEN of the article's shard stream."""
    return redis.xlen(settings.keys.stream(settings.keys.shard_of(article_id)))


def dropped(redis: Redis, settings: Settings, article_id: str, day: date = DAY) -> dict[str, int]:
    """The dropped-events hash of the article's shard for `day`, as {reason: count}."""
    key = dropped_key(settings.keys, settings.keys.shard_of(article_id), day)
    return {reason.decode(): int(count) for reason, count in redis.hgetall(key).items()}


# -- repeats within the read interval ---------------------------------------------------


def test_the_default_read_interval_is_thirty_minutes(emitter):
    assert emitter.read_interval_ms == 1_800_000


def test_a_visitors_first_read_is_stored_and_a_second_within_the_interval_is_dropped_as_repeat(emitter, redis,
                                                                                             settings):
    assert emitter.read("article-1", visitor="v-1", at=AT_MS) is True
    assert emitter.read("article-1", visitor="v-1", at=AT_MS + 1000) is False

    assert stored(redis, settings, "article-1") == 1
    assert (emitter.stats.emitted, emitter.stats.ignored, emitter.stats.failed) == (1, 1, 0)
    assert dropped(redis, settings, "article-1") == {"repeat": 1}


def test_every_further_repeat_is_counted(emitter, redis, settings):
    results = [emitter.read("article-1", visitor="v-1", at=AT_MS) for _ in range(5)]

    assert results == [True, False, False, False, False]
    assert dropped(redis, settings, "article-1") == {"repeat": 4}
    assert emitter.stats.ignored == 4


def test_the_mark_lives_on_the_articles_shard_for_the_interval(emitter, redis, settings):
    emitter.read("article-1", visitor="v-1", at=AT_MS)

    mark = seen_key(settings.keys, settings.keys.shard_of("article-1"), "v-1", "article-1")
    assert 1_790_000 < redis.pttl(mark) <= 1_800_000


def test_the_dropped_hash_is_kept_four_hundred_days(emitter, redis, settings):
    emitter.read("article-1", visitor="v-1", at=AT_MS)
    emitter.read("article-1", visitor="v-1", at=AT_MS)

    key = dropped_key(settings.keys, settings.keys.shard_of("article-1"), DAY)
    assert 400 * 86_400 - 5 <= redis.ttl(key) <= 400 * 86_400


def test_a_repeat_of_a_read_sent_now_is_counted_under_todays_utc_date(emitter, redis, settings):
    before = _utc_today()  # either side of midnight UTC: the read's day is one of the two
    emitter.read("article-1", visitor="v-1")
    emitter.read("article-1", visitor="v-1")
    after = _utc_today()

    counts = [dropped(redis, settings, "article-1", day) for day in sorted({before, after})]
    assert {"repeat": 1} in counts


def _utc_today() -> date:
    return datetime.now(UTC).date()


def test_another_visitor_or_another_article_counts(emitter, redis, settings):
    assert emitter.read("article-1", visitor="v-1", at=AT_MS) is True
    assert emitter.read("article-1", visitor="v-2", at=AT_MS) is True
    assert emitter.read("article-2", visitor="v-1", at=AT_MS) is True

    assert stored(redis, settings, "article-1") + stored(redis, settings, "article-2") == 3
    assert emitter.stats.ignored == 0


def test_reads_without_a_visitor_all_count(emitter, redis, settings):
    assert [emitter.read("article-1", at=AT_MS) for _ in range(3)] == [True, True, True]

    assert stored(redis, settings, "article-1") == 3


def test_with_interval_zero_every_view_counts_and_no_mark_is_left(settings, redis):
    emitter = emitter_with(settings, redis, 0)

    assert [emitter.read("article-1", visitor="v-1", at=AT_MS) for _ in range(3)] == [True, True, True]

    assert stored(redis, settings, "article-1") == 3
    assert not redis.exists(seen_key(settings.keys, settings.keys.shard_of("article-1"), "v-1", "article-1"))
    assert dropped(redis, settings, "article-1") == {}


def test_once_the_mark_expires_the_visitors_read_counts_again(settings, redis):
    emitter = emitter_with(settings, redis, 200)
    mark = seen_key(settings.keys, settings.keys.shard_of("article-1"), "v-1", "article-1")

    assert emitter.read("article-1", visitor="v-1", at=AT_MS) is True
    assert redis.pttl(mark) <= 200  # set for the 200 ms interval (or already gone on a busy machine)
    wait_until(lambda: not redis.exists(mark), timeout=2, interval=0.02, message="the 200 ms mark to expire")

    assert emitter.read("article-1", visitor="v-1", at=AT_MS) is True
    assert stored(redis, settings, "article-1") == 2
    assert dropped(redis, settings, "article-1") == {}


def test_the_read_that_counts_is_stored_with_its_visitor(emitter, redis, settings):
    emitter.read("article-1", visitor="v-1", at=AT_MS)

    [(_id, fields)] = redis.xrange(settings.keys.stream(settings.keys.shard_of("article-1")))
    assert fields == {b"k": b"read", b"a": b"article-1", b"t": str(AT_MS).encode(), b"v": b"v-1"}


# -- bots and prefetches -------------------------------------------------------------------


def test_a_bots_read_is_dropped_and_counted_as_bot(emitter, redis, settings):
    assert emitter.read("article-1", visitor="v-1", at=AT_MS, user_agent=GOOGLEBOT) is False

    assert stored(redis, settings, "article-1") == 0
    assert dropped(redis, settings, "article-1") == {"bot": 1}
    assert (emitter.stats.emitted, emitter.stats.ignored) == (0, 1)


def test_a_bots_read_leaves_no_mark_so_the_visitors_real_read_still_counts(emitter, redis, settings):
    emitter.read("article-1", visitor="v-1", at=AT_MS, user_agent=GOOGLEBOT)

    assert emitter.read("article-1", visitor="v-1", at=AT_MS, user_agent=CHROME) is True


def test_an_empty_user_agent_is_dropped_as_bot(emitter, redis, settings):
    assert emitter.read("article-1", at=AT_MS, user_agent="") is False

    assert dropped(redis, settings, "article-1") == {"bot": 1}


def test_a_prefetch_is_dropped_and_counted_as_prefetch(emitter, redis, settings):
    assert emitter.read("article-1", visitor="v-1", at=AT_MS, user_agent=CHROME, purpose="prefetch") is False

    assert stored(redis, settings, "article-1") == 0
    assert dropped(redis, settings, "article-1") == {"prefetch": 1}
    assert emitter.stats.ignored == 1


def test_a_head_request_is_dropped_and_counted_as_prefetch(emitter, redis, settings):
    assert emitter.read("article-1", at=AT_MS, user_agent=CHROME, method="HEAD") is False

    assert dropped(redis, settings, "article-1") == {"prefetch": 1}


def test_a_browsers_read_with_its_user_agent_counts(emitter, redis, settings):
    assert emitter.read("article-1", at=AT_MS, user_agent=CHROME, purpose=None, method="GET") is True

    assert stored(redis, settings, "article-1") == 1


def test_a_dropped_read_does_not_ring_the_doorbell(emitter, redis, settings):
    emitter.read("article-1", at=AT_MS, user_agent=GOOGLEBOT)

    assert not redis.exists(settings.keys.doorbell(settings.keys.shard_of("article-1")))


def test_drops_of_every_reason_are_summed_in_one_hash_per_shard_and_day(emitter, redis, settings):
    emitter.read("article-1", visitor="v-1", at=AT_MS)
    emitter.read("article-1", visitor="v-1", at=AT_MS)
    emitter.read("article-1", at=AT_MS, user_agent=GOOGLEBOT)
    emitter.read("article-1", at=AT_MS, user_agent="bingbot/2.0")
    emitter.read("article-1", at=AT_MS, method="HEAD")

    assert dropped(redis, settings, "article-1") == {"repeat": 1, "bot": 2, "prefetch": 1}
    assert emitter.stats.ignored == 4


# -- emit_many applies no rules --------------------------------------------------------------


def test_emit_many_stores_every_read_as_given(emitter, redis, settings):
    events = [Read("article-1", AT_MS, "v-1") for _ in range(5)]

    assert emitter.emit_many(events) == 5

    assert stored(redis, settings, "article-1") == 5
    assert dropped(redis, settings, "article-1") == {}
    assert not redis.exists(seen_key(settings.keys, settings.keys.shard_of("article-1"), "v-1", "article-1"))


# -- races ---------------------------------------------------------------------------------


def race(calls: list) -> list:
    """Run every call at once, one thread each; their results in order."""
    start = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(i: int) -> None:
        start.wait()
        results[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    return results


def test_many_threads_reading_the_same_article_for_one_visitor_store_exactly_one(settings, redis):
    # One Emitter per thread (an Emitter is not shared between threads), all on one client's pool.
    emitters = [Emitter.from_settings(settings, redis=redis) for _ in range(16)]

    results = race([lambda e=e: e.read("article-1", visitor="v-1", at=AT_MS) for e in emitters])

    assert results.count(True) == 1 and results.count(False) == 15
    assert stored(redis, settings, "article-1") == 1
    assert dropped(redis, settings, "article-1") == {"repeat": 15}
    assert sum(e.stats.failed for e in emitters) == 0


def test_many_emitters_with_clients_of_their_own_store_exactly_one_read_of_one_visitor(settings, redis):
    # Each with a client of its own, as separate processes have (no page timeouts: the machine may be busy).
    emitters = [Emitter.from_settings(settings, redis=Redis.from_url(REDIS_URL)) for _ in range(8)]

    results = race([lambda e=e: e.read("article-1", visitor="v-1", at=AT_MS) for e in emitters])

    assert results.count(True) == 1
    assert stored(redis, settings, "article-1") == 1
    assert dropped(redis, settings, "article-1") == {"repeat": 7}
    assert sum(e.stats.emitted for e in emitters) == 1
    assert sum(e.stats.ignored for e in emitters) == 7
    for e in emitters:
        e.redis.close()


# -- a Redis that forgot the script --------------------------------------------------------


@pytest.fixture
def private_redis():
    """A redis-server of this test's own: SCRIPT FLUSH is server-wide, so never on the shared one."""
    with RedisServer() as server:
        client = Redis.from_url(server.url)
        yield server, client
        client.close()


def test_after_script_flush_the_next_read_still_counts_by_sending_the_script_text(private_redis, prefix):
    server, client = private_redis
    local = install(client, Settings.from_env({}, redis_url=server.url, prefix=prefix))
    emitter = Emitter.from_settings(local, redis=client)
    assert emitter.read("article-1", visitor="v-1", at=AT_MS) is True
    assert client.script_exists(REPEAT_SHA) == [True]

    client.script_flush()
    assert client.script_exists(REPEAT_SHA) == [False]

    assert emitter.read("article-1", visitor="v-2", at=AT_MS) is True
    assert emitter.read("article-1", visitor="v-2", at=AT_MS) is False
    assert client.xlen(local.keys.stream(local.keys.shard_of("article-1"))) == 2
    assert dropped(client, local, "article-1") == {"repeat": 1}
    assert client.script_exists(REPEAT_SHA) == [True]
    assert (emitter.stats.emitted, emitter.stats.ignored, emitter.stats.failed) == (2, 1, 0)


def test_a_repeat_answered_after_noscript_is_not_stored_twice(private_redis, prefix):
    server, client = private_redis
    local = install(client, Settings.from_env({}, redis_url=server.url, prefix=prefix))
    emitter = Emitter.from_settings(local, redis=client)
    emitter.read("article-1", visitor="v-1", at=AT_MS)

    client.script_flush()

    assert emitter.read("article-1", visitor="v-1", at=AT_MS) is False
    assert client.xlen(local.keys.stream(local.keys.shard_of("article-1"))) == 1
    assert dropped(client, local, "article-1") == {"repeat": 1}
