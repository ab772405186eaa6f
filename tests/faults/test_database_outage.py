"""Faults: the database goes away for several seconds while a worker drains.

PostgreSQL: a private cluster is stopped mid-run. Drain jobs fail with the
database unreachable, RQ parks their retries with backoff (the sweep moves them
back when due), the events wait in Redis, and once the cluster is back every
event is counted exactly once. SQLite: another connection holds an exclusive
lock on the file; the worker waits for it and then counts everything.
"""

from __future__ import annotations

import sqlite3
import time

from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer

from readrate.events import Emitter
from readrate.events.synthetic import traffic
from helpers import RunningWorker, backlog, offsets, tally_events, wait_for_state, wait_until

from .conftest import delete_keys, fault_settings, prepared_engine


EVENTS = 20_000


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def parked_retries(redis, settings) -> list[Job]:
    """The drain jobs RQ has parked for a retry with backoff."""
    queue = Queue(settings.keys.queue, connection=redis, serializer=JSONSerializer)
    return [Job.fetch(job_id, connection=redis, serializer=JSONSerializer)
            for job_id in queue.scheduled_job_registry.get_job_ids()]


def test_events_wait_in_redis_while_postgresql_is_down_and_are_all_counted_after_it_returns(
        pg_cluster, redis, tmp_path):
    settings = fault_settings(pg_cluster.url, batch_size=250, lease_ms=1_000)
    engine = prepared_engine(settings)
    events = list(traffic(events=EVENTS, articles=300, days=2, now_ms=now_ms(), seed=11, vote_share=0.3))
    emitter = Emitter(redis, keys=settings.keys, scale=settings.rating_scale, strict=True)
    first, second = events[:EVENTS // 2], events[EVENTS // 2:]
    try:
        with RunningWorker(settings, tmp_path / "worker.log") as worker:
            assert emitter.emit_many(first) == len(first)
            wait_until(lambda: any(o != "0-0" for o in offsets(engine).values()), timeout=60,
                       message="the worker to commit a first batch")
            pg_cluster.stop()
            engine.dispose()
            assert emitter.emit_many(second) == len(second)
            # Two failed attempts in a row (1 s, then 2 s of backoff) prove the outage lasted and was
            # met with retries, not with lost events.
            wait_until(lambda: any(job.retries_left <= 4 for job in parked_retries(redis, settings)), timeout=60,
                       interval=0.1, message="a drain job to be retried twice with backoff")
            # A parked retry keeps its shard's lease, so the sweep piles no more jobs onto the outage.
            for job in parked_retries(redis, settings):
                assert redis.get(settings.keys.lease(job.args[0])) == job.id.encode()
            assert worker.alive(), worker.log()
            assert backlog(redis, settings) >= len(second), "entries were trimmed without a commit"
            pg_cluster.start()
            wait_for_state(engine, tally_events(events), timeout=120)
            wait_until(lambda: backlog(redis, settings) == 0, timeout=30, message="the streams to be trimmed")
            assert worker.alive(), worker.log()
        assert worker.process.returncode == 0, worker.log()
        assert "unreachable" in worker.log()
    finally:
        engine.dispose()
        delete_keys(redis, settings.prefix)


def test_events_wait_while_another_process_holds_the_sqlite_file_locked_and_are_all_counted_after(
        redis, tmp_path):
    path = tmp_path / "readrate.db"
    settings = fault_settings(f"sqlite:///{path}", batch_size=250, lease_ms=1_000)
    engine = prepared_engine(settings)
    events = list(traffic(events=EVENTS, articles=300, days=2, now_ms=now_ms(), seed=12, vote_share=0.3))
    emitter = Emitter(redis, keys=settings.keys, scale=settings.rating_scale, strict=True)
    first, second = events[:EVENTS // 2], events[EVENTS // 2:]
    lock = sqlite3.connect(path, isolation_level=None, timeout=30)
    try:
        with RunningWorker(settings, tmp_path / "worker.log") as worker:
            assert emitter.emit_many(first) == len(first)
            wait_until(lambda: any(o != "0-0" for o in offsets(engine).values()), timeout=60,
                       message="the worker to commit a first batch")
            lock.execute("BEGIN EXCLUSIVE")
            held = offsets(engine)
            locked_at = time.monotonic()
            assert emitter.emit_many(second) == len(second)
            # Several seconds of lock: the worker can read but not commit.
            wait_until(lambda: time.monotonic() - locked_at > 4, timeout=10, interval=0.2,
                       message="the lock to be held for four seconds")
            assert offsets(engine) == held
            assert backlog(redis, settings) >= len(second)
            lock.execute("ROLLBACK")
            wait_for_state(engine, tally_events(events), timeout=120)
            wait_until(lambda: backlog(redis, settings) == 0, timeout=30, message="the streams to be trimmed")
            assert worker.alive(), worker.log()
        assert worker.process.returncode == 0, worker.log()
    finally:
        lock.close()
        engine.dispose()
        delete_keys(redis, settings.prefix)
