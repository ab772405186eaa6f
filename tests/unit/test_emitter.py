"""The page hook API against the real Redis: what `Emitter` writes, when it enqueues, how it fails."""

from __future__ import annotations

from dataclasses import replace

import json
import logging
import socket
import time
import zlib
from datetime import UTC, datetime

import pytest
from conftest import REDIS_URL
from redis import Redis
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer

from readrate.events import EmitError, Emitter, InvalidEvent, RatingScale, Read, ReadrateError, Settings, Vote
from readrate.events.emitter import EVENTS_PER_ROUND_TRIP as CHUNK
from readrate.reports.localredis import RedisServer, free_port
from helpers import install

GENEROUS_S = 2.0  # a page must not hang on a dead Redis; the real cost is well under this


@pytest.fixture
def settings(prefix, redis):
    """Emitter tests need Redis only: no database; the installation record is published as a worker would."""
    return install(redis, Settings.from_env({}, redis_url=REDIS_URL, prefix=prefix))


@pytest.fixture
def emitter(settings, redis):
    return Emitter.from_settings(settings, redis=redis)


def entries(redis, settings, article_id: str) -> list[dict[bytes, bytes]]:
    stream = settings.keys.stream(settings.keys.shard_of(article_id))
    return [fields for _id, fields in redis.xrange(stream)]


def drain_jobs(redis, settings) -> list[Job]:
    queue = Queue(settings.keys.queue, connection=redis, serializer=JSONSerializer)
    return [Job.fetch(job_id, connection=redis, serializer=JSONSerializer) for job_id in queue.job_ids]


def all_stream_lengths(redis, settings) -> int:
    return sum(redis.xlen(settings.keys.stream(s)) for s in range(settings.shards))


# -- what a read and a vote write ------------------------------------------------


def test_a_read_is_one_xadd_with_the_contract_fields_to_its_shard_stream(emitter, redis, settings):
    assert emitter.read("article-42", visitor="v-9", at=1_700_000_000_123) is True

    stream = f"{{{settings.prefix}:{zlib.crc32(b'article-42') % 4}}}:events"
    assert [fields for _id, fields in redis.xrange(stream)] == [
        {b"k": b"read", b"a": b"article-42", b"t": b"1700000000123", b"v": b"v-9"}
    ]
    assert all_stream_lengths(redis, settings) == 1
    assert emitter.stats.emitted == 1


def test_a_read_without_visitor_or_time_carries_now_and_no_v_field(emitter, redis, settings):
    before_ms = time.time_ns() // 1_000_000
    emitter.read("a")
    after_ms = time.time_ns() // 1_000_000

    [fields] = entries(redis, settings, "a")
    assert set(fields) == {b"k", b"a", b"t"}
    assert before_ms <= int(fields[b"t"]) <= after_ms


def test_a_vote_carries_voter_and_rating_as_decimal_strings(emitter, redis, settings):
    at = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)

    assert emitter.vote("article-7", 4, voter="user-1001", at=at) is True

    assert entries(redis, settings, "article-7") == [
        {b"k": b"vote", b"a": b"article-7", b"t": b"1748779200000", b"v": b"user-1001", b"r": b"4"}
    ]


def test_a_half_star_emitter_writes_half_star_ratings(settings, redis):
    half = install(redis, replace(settings, prefix=f"{settings.prefix}-half",
                                  rating_scale=RatingScale.parse("0.5-5/0.5")))
    emitter = Emitter.from_settings(half, redis=redis)

    assert emitter.vote("a", "3.5", voter="u") is True
    assert entries(redis, half, "a")[0][b"r"] == b"3.5"


def test_each_article_goes_to_the_stream_of_its_crc32_shard(emitter, redis, settings):
    articles = [f"article-{i}" for i in range(40)]
    for article in articles:
        emitter.read(article)

    for shard in range(settings.shards):
        in_stream = [f[b"a"].decode() for _id, f in redis.xrange(settings.keys.stream(shard))]
        assert sorted(in_stream) == sorted(a for a in articles if zlib.crc32(a.encode()) % 4 == shard)


# -- the doorbell and the drain job ----------------------------------------------


def test_the_first_event_rings_the_shards_doorbell_with_a_thirty_second_ttl(emitter, redis, settings):
    emitter.read("article-42")

    doorbell = f"{{{settings.prefix}:2}}:doorbell"
    assert redis.get(doorbell) == b"1"
    assert 0 < redis.pttl(doorbell) <= 30_000


def test_a_newly_rung_doorbell_enqueues_one_json_drain_job_on_the_prefix_queue(emitter, redis, settings):
    emitter.read("article-42")

    [job] = drain_jobs(redis, settings)
    assert job.func_name == "readrate.workers.drain.drain_shard"
    assert job.args == [2] or job.args == (2,)
    assert job.origin == settings.prefix
    # The stored job data is JSON (never pickle), so a non-Python worker could read it too.
    raw = redis.hget(f"rq:job:{job.id}", "data")
    assert json.loads(zlib.decompress(raw)) == ["readrate.workers.drain.drain_shard", None, [2], {}]


def test_no_drain_job_is_enqueued_while_the_doorbell_is_still_ringing(emitter, redis, settings):
    for _ in range(5):
        emitter.read("article-42")

    assert len(drain_jobs(redis, settings)) == 1
    assert redis.xlen(settings.keys.stream(2)) == 5


def test_a_drain_job_is_enqueued_again_once_the_doorbell_was_cleared(emitter, redis, settings):
    emitter.read("article-42")
    redis.delete(settings.keys.doorbell(2))  # what a drain job does when the shard is empty
    emitter.read("article-42")

    assert [job.args[0] for job in drain_jobs(redis, settings)] == [2, 2]


def test_each_shard_gets_its_own_drain_job(emitter, redis, settings):
    articles = ["article-42", "a", "b", "c", "d", "e", "f", "g"]
    for article in articles:
        emitter.read(article)

    shards = sorted({settings.keys.shard_of(a) for a in articles})
    assert sorted(job.args[0] for job in drain_jobs(redis, settings)) == shards


def test_an_emitter_built_not_to_enqueue_only_writes_the_stream_and_rings(settings, redis):
    emitter = Emitter(redis, keys=settings.keys, enqueue=False)

    assert emitter.read("article-42") is True
    assert drain_jobs(redis, settings) == []
    assert redis.exists(settings.keys.doorbell(2))


# -- emit_many -----------------------------------------------------------------


def test_emit_many_writes_every_event_and_returns_how_many_redis_took(emitter, redis, settings):
    events = [Read(f"article-{i % 25}", 1_000 + i, f"v{i}") for i in range(CHUNK * 2 + 123)]
    events += [Vote(f"article-{i}", 5_000 + i, f"u{i}", 4.0) for i in range(30)]

    assert emitter.emit_many(events) == len(events)

    assert all_stream_lengths(redis, settings) == len(events)
    assert emitter.stats.emitted == len(events)
    assert len(drain_jobs(redis, settings)) == settings.shards


def test_emit_many_keeps_each_shards_events_in_order(emitter, redis, settings):
    events = [Read("article-42", at) for at in range(100, 200)]
    emitter.emit_many(events)

    assert [int(f[b"t"]) for f in entries(redis, settings, "article-42")] == list(range(100, 200))


def test_emit_many_of_nothing_sends_nothing(emitter, redis, settings):
    assert emitter.emit_many([]) == 0
    assert all_stream_lengths(redis, settings) == 0
    assert drain_jobs(redis, settings) == []


def test_emit_many_skips_and_counts_invalid_events_and_sends_the_rest(emitter, redis, settings):
    future_ms = time.time_ns() // 1_000_000 + 3_600_000
    events = [Read("a", 1), Vote("a", 1, "u", 9.0), Read("a", future_ms), "not an event", Read("b", 2)]

    assert emitter.emit_many(events) == 2

    assert emitter.stats.rejected == 3
    assert all_stream_lengths(redis, settings) == 2


def test_a_strict_emitter_refuses_an_invalid_event_in_emit_many(settings, redis):
    emitter = Emitter.from_settings(settings, strict=True, redis=redis)

    with pytest.raises(InvalidEvent, match="'9.0'"):
        emitter.emit_many([Vote("a", 1, "u", 9.0)])


# -- invalid input ---------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda e: e.read(""),
        lambda e: e.read("a" * 129),
        lambda e: e.read("a\x00"),
        lambda e: e.read("a", visitor="v" * 129),
        lambda e: e.read("a", at="yesterday"),
        lambda e: e.read("a", at=time.time_ns() // 1_000_000 + 600_000),
        lambda e: e.vote("a", 7, voter="u"),
        lambda e: e.vote("a", "NaN", voter="u"),
        lambda e: e.vote("a", 4, voter=""),
        lambda e: e.vote("a", 4, voter=None),
    ],
)
def test_an_invalid_event_returns_false_counts_as_rejected_and_writes_nothing(emitter, redis, settings, call):
    assert call(emitter) is False

    assert emitter.stats.rejected == 1
    assert emitter.stats.emitted == 0
    assert all_stream_lengths(redis, settings) == 0


def test_a_strict_emitter_raises_invalid_event_quoting_the_value(settings, redis):
    emitter = Emitter.from_settings(settings, strict=True, redis=redis)

    with pytest.raises(InvalidEvent, match="'7'") as caught:
        emitter.vote("a", 7, voter="u")

    assert isinstance(caught.value, ReadrateError)
    assert emitter.stats.rejected == 1


# -- Redis down --------------------------------------------------------------------


def local(port: int, prefix: str) -> Settings:
    return Settings.from_env({}, redis_url=f"redis://127.0.0.1:{port}/0", prefix=prefix)


def installed(server: RedisServer, prefix: str) -> None:
    """Publish an installation record on a private Redis, as a worker would at start-up."""
    client = Redis.from_url(server.url)
    install(client, local(server.port, prefix))
    client.close()


@pytest.fixture
def dead_settings(prefix):
    """Settings pointing at a port nothing listens on."""
    return Settings.from_env({}, redis_url=f"redis://127.0.0.1:{free_port()}/0", prefix=prefix)


def test_with_redis_down_a_read_returns_false_quickly_and_counts_the_failure(dead_settings):
    emitter = Emitter.from_settings(dead_settings)

    started = time.monotonic()
    result = emitter.read("article-42")
    elapsed = time.monotonic() - started

    assert result is False
    assert elapsed < GENEROUS_S
    assert emitter.stats.failed == 1
    assert emitter.stats.emitted == 0


def test_with_redis_down_emit_many_returns_zero_and_counts_every_event_failed(dead_settings):
    emitter = Emitter.from_settings(dead_settings)

    assert emitter.emit_many([Read("a", 1), Read("b", 2), Vote("c", 3, "u", 1.0)]) == 0
    assert emitter.stats.failed == 3


def test_with_redis_down_a_strict_emitter_raises_emit_error(dead_settings):
    emitter = Emitter.from_settings(dead_settings, strict=True)

    with pytest.raises(EmitError, match="Redis did not take 1 event") as caught:
        emitter.vote("a", 4, voter="u")

    assert isinstance(caught.value, ReadrateError)
    assert emitter.stats.failed == 1


def test_with_redis_down_a_page_logs_at_most_about_one_warning_a_second(dead_settings, caplog):
    emitter = Emitter.from_settings(dead_settings)

    with caplog.at_level(logging.WARNING, logger="readrate.emitter"):
        for _ in range(30):
            emitter.read("a")

    warnings = [r for r in caplog.records if r.name == "readrate.emitter"]
    assert 1 <= len(warnings) <= 5
    assert emitter.stats.failed == 30


def test_a_redis_that_accepts_but_never_answers_costs_a_page_well_under_a_second_or_two(prefix):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        emitter = Emitter.from_settings(local(port, prefix))

        started = time.monotonic()
        result = emitter.read("a")
        elapsed = time.monotonic() - started

    assert result is False
    assert elapsed < GENEROUS_S
    assert emitter.stats.failed == 1


def test_an_emitter_carries_on_when_its_redis_comes_back(prefix):
    port = free_port()
    emitter = Emitter.from_settings(local(port, prefix))
    with RedisServer(port=port) as server:
        installed(server, prefix)
        assert emitter.read("a") is True
    assert emitter.read("a") is False
    with RedisServer(port=port) as server:
        assert emitter.read("a") is True
        client = Redis.from_url(server.url)
        assert client.xlen(f"{{{prefix}:{zlib.crc32(b'a') % 4}}}:events") == 1
        client.close()

    assert (emitter.stats.emitted, emitter.stats.failed) == (2, 1)


def test_the_first_event_after_a_redis_restart_is_not_lost_to_a_stale_connection(prefix):
    port = free_port()
    emitter = Emitter.from_settings(local(port, prefix))
    with RedisServer(port=port) as server:
        installed(server, prefix)
        assert emitter.read("a") is True  # leaves a pooled connection to a server that then goes away
    with RedisServer(port=port) as server:
        assert emitter.read("a") is True
        client = Redis.from_url(server.url)
        assert client.xlen(f"{{{prefix}:{zlib.crc32(b'a') % 4}}}:events") == 1
        client.close()

    assert (emitter.stats.emitted, emitter.stats.failed) == (2, 0)


# -- what the emitter reports is what Redis did ------------------------------------


def test_an_event_redis_stored_is_reported_stored_even_when_the_doorbell_after_it_is_refused(settings, redis):
    """A Redis user that may XADD but not SET: the XADD lands, the doorbell is refused (NOPERM)."""
    user = f"{settings.prefix}-nodoorbell"
    redis.execute_command("ACL", "SETUSER", user, "on", ">pw-0123456789", "~*", "&*", "+@all", "-set")
    try:
        limited = Settings.from_env({}, redis_url=f"redis://{user}:pw-0123456789@127.0.0.1:6379/0",
                                    prefix=settings.prefix)
        emitter = Emitter.from_settings(limited)

        # No visitor: a visitor's read is the repeat script, whose SET this user may not run at all.
        assert emitter.read("article-42") is True
        assert emitter.emit_many([emitter.make_read(f"a-{i}") for i in range(50)]) == 50

        assert (emitter.stats.emitted, emitter.stats.failed) == (51, 0)
        assert all_stream_lengths(redis, settings) == 51
        assert not redis.exists(settings.keys.doorbell(settings.keys.shard_of("article-42")))
    finally:
        redis.execute_command("ACL", "DELUSER", user)


def test_events_redis_refused_are_reported_failed_and_the_stored_ones_counted(settings, redis):
    """A Redis user that may not XADD to one shard's stream: only that shard's events fail."""
    user = f"{settings.prefix}-noshard0"
    keys = settings.keys
    allowed = [f"~{keys.stream(s)}" for s in range(1, 4)] + ["~*doorbell", "~*installation", "~rq:*"]
    redis.execute_command("ACL", "SETUSER", user, "on", ">pw-0123456789", *allowed, "&*", "+@all")
    try:
        limited = Settings.from_env({}, redis_url=f"redis://{user}:pw-0123456789@127.0.0.1:6379/0",
                                    prefix=settings.prefix)
        emitter = Emitter.from_settings(limited)
        events = [emitter.make_read(f"article-{i}") for i in range(200)]
        to_shard_0 = sum(1 for e in events if keys.shard_of(e.article_id) == 0)

        stored = emitter.emit_many(events)

        assert 0 < to_shard_0 < 200
        assert stored == 200 - to_shard_0 == all_stream_lengths(redis, settings)
        assert (emitter.stats.emitted, emitter.stats.failed) == (stored, to_shard_0)
        strict = Emitter.from_settings(limited, strict=True)
        with pytest.raises(EmitError, match="took only") as caught:
            strict.emit_many(events)
        assert caught.value.stored == 200 - to_shard_0
    finally:
        redis.execute_command("ACL", "DELUSER", user)
