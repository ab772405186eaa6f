"""Faults: Redis crashes (SIGKILL) and restarts while pages emit and a worker drains.

A private redis-server with `appendonly yes` and `appendfsync always` stands in
for production's. Pages keep emitting through the outage with the default page
emitter (short timeouts, never raises). Every event the emitter reported as taken
must be counted, once; an event whose emit failed may or may not have reached
Redis, but is never counted twice. Each event gets an article of its own, so
the counters say exactly which events were counted.
"""

from __future__ import annotations

import time

from redis import Redis

from readrate.events import Emitter, Read, Vote
from helpers import RunningWorker, assert_same_state, snapshot, tally_events, wait_until

from .conftest import fault_settings, prepared_engine


HOUR_MS = 3_600_000


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Page:
    """Emits one event per call, like a page hook, and remembers what the emitter said."""

    def __init__(self, emitter: Emitter) -> None:
        self.emitter = emitter
        self.taken: list[Read | Vote] = []
        self.failed: list[Read | Vote] = []
        self.start_ms = now_ms() - 5 * HOUR_MS

    def emit(self, count: int) -> None:
        for _ in range(count):
            n = len(self.taken) + len(self.failed)
            at_ms = self.start_ms + n * 97
            if n % 4 == 3:
                event = Vote(f"vote-target-{n}", at_ms, f"voter-{n % 13}", float(1 + n % 5))
                ok = self.emitter.vote(event.article_id, event.rating, voter=event.voter, at=at_ms)
            else:
                event = Read(f"read-target-{n}", at_ms, f"visitor-{n % 31}")
                ok = self.emitter.read(event.article_id, visitor=event.visitor, at=at_ms)
            (self.taken if ok else self.failed).append(event)


def test_every_event_redis_acknowledged_is_counted_once_across_a_redis_crash_and_restart(aof_redis, tmp_path):
    settings = fault_settings(f"sqlite:///{tmp_path / 'readrate.db'}", redis_url=aof_redis.url,
                              batch_size=100, lease_ms=1_000)
    engine = prepared_engine(settings)
    page = Page(Emitter.from_settings(settings))
    try:
        with RunningWorker(settings, tmp_path / "worker.log") as worker:
            page.emit(3_000)
            wait_until(lambda: len(snapshot(engine)["stats"]) > 100, timeout=60,
                       message="the worker to count some events")
            aof_redis.crash()
            failed_before = len(page.failed)
            started = time.monotonic()
            page.emit(200)
            assert len(page.failed) - failed_before == 200, "a page emitted into a crashed Redis"
            # A page is never held up long by a dead Redis (generous: a busy 2-core machine).
            assert time.monotonic() - started < 30
            # While Redis is down the worker keeps trying to reconnect instead of exiting.
            wait_until(lambda: "Redis" in worker.log(), timeout=30, message="the worker to notice the crash")
            assert worker.alive(), worker.log()
            aof_redis.restart()
            page.emit(3_000)
            assert len(page.taken) >= 6_000 - 50, "the page emitter did not recover after the restart"
            taken = {e.article_id for e in page.taken}

            def all_taken_counted():
                return taken <= set(snapshot(engine)["stats"])

            wait_until(all_taken_counted, timeout=120, interval=0.2, message="every acknowledged event to be counted")
            with Redis.from_url(aof_redis.url) as redis:
                wait_until(lambda: sum(redis.xlen(settings.keys.stream(s)) for s in range(settings.shards)) == 0,
                           timeout=60, message="the streams to be drained")
            assert worker.alive(), worker.log()
        assert worker.process.returncode == 0, worker.log()
        state = snapshot(engine)
        counted = [e for e in page.taken + page.failed if e.article_id in state["stats"]]
        assert_same_state(state, tally_events(counted))
    finally:
        engine.dispose()
