"""Faults: how a `readrate worker` stops, restarts and rides out Redis going away.

SIGTERM finishes the batch in hand and exits 0, leaving whole batches only (a
running worker and a --burst one); it also stops a worker cleanly while Redis is
down, or in the first moments after it registered with RQ. A worker started with `--name`
(as docker-compose runs them) comes back under the same name at once after a
SIGKILL or a Redis crash, instead of being refused by RQ for minutes because its
previous registration has not expired yet.
"""

from __future__ import annotations

import signal
import time
from dataclasses import replace

import pytest
from redis import Redis

from readrate.events import Emitter
from readrate.events.synthetic import traffic
from helpers import (
    RunningWorker,
    assert_same_state,
    backlog,
    id_key,
    kill_hard,
    offsets,
    snapshot,
    stop,
    stream_entries,
    tally,
    tally_events,
    wait_for_listening_worker,
    wait_for_state,
    wait_until,
)

from .conftest import fault_settings, prepared_engine


EVENTS = 60_000


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def workers_named(redis: Redis, settings, name: str) -> bool:
    return redis.sismember(f"rq:workers:{settings.keys.queue}", f"rq:worker:{name}")


def emit_backlog(redis: Redis, settings, seed: int, events: int = EVENTS):
    generated = list(traffic(events=events, articles=300, days=2, now_ms=now_ms(), seed=seed, vote_share=0.3))
    assert Emitter(redis, keys=settings.keys, scale=settings.rating_scale, strict=True).emit_many(generated) == events
    return generated


def test_sigterm_right_after_a_worker_registers_stops_it_with_exit_code_0(settings, engine, redis, tmp_path):
    with RunningWorker(settings, tmp_path / "worker.log") as worker:
        # Polled tightly, so the signal lands in the first moments after the worker shows up in RQ.
        wait_for_listening_worker(redis, settings, interval=0.001)

        code = stop(worker.process, signal.SIGTERM, timeout=60)

        assert code == 0, worker.log()


@pytest.mark.parametrize("mode", [(), ("--burst",)], ids=["running", "burst"])
def test_sigterm_mid_drain_finishes_the_batch_in_hand_exits_0_and_another_worker_finishes_the_rest(
        mode, settings, engine, redis, tmp_path):
    settings = replace(settings, batch_size=300, lease_ms=1_000)
    events = emit_backlog(redis, settings, seed=31)
    emitted = stream_entries(redis, settings)
    with RunningWorker(settings, tmp_path / "first.log", *mode) as first:
        wait_until(lambda: backlog(redis, settings) < EVENTS - 3_000, timeout=60, interval=0.01,
                   message="the worker to commit some batches")
        code = stop(first.process, signal.SIGTERM, timeout=30)
    assert code == 0, first.log()
    committed = offsets(engine)
    pending = sum(1 for s, entries in emitted.items() for i, _ in entries if id_key(i) > id_key(committed[s]))
    assert pending > 0, "the worker drained everything before SIGTERM; the test proves nothing"
    assert_same_state(snapshot(engine), tally(f for s, entries in emitted.items() for i, f in entries
                                              if id_key(i) <= id_key(committed[s])))
    with RunningWorker(settings, tmp_path / "second.log") as second:
        wait_for_state(engine, tally_events(events), timeout=120)
    assert second.process.returncode == 0, second.log()


@pytest.fixture
def aof_settings(aof_redis, tmp_path):
    settings = fault_settings(f"sqlite:///{tmp_path / 'readrate.db'}", redis_url=aof_redis.url,
                              batch_size=100, lease_ms=1_000)
    engine = prepared_engine(settings)
    yield settings, engine
    engine.dispose()


@pytest.mark.parametrize("busy", [False, True], ids=["idle", "mid-drain"])
def test_sigterm_while_redis_is_down_stops_the_worker_with_exit_code_0(aof_redis, aof_settings, tmp_path, busy):
    settings, engine = aof_settings
    redis = Redis.from_url(aof_redis.url)
    if busy:
        emit_backlog(redis, settings, seed=32)
    with RunningWorker(settings, tmp_path / "worker.log") as worker:
        wait_until(lambda: redis.scard(f"rq:workers:{settings.keys.queue}") == 1, timeout=60,
                   message="the worker to register")
        if busy:
            wait_until(lambda: backlog(redis, settings) < EVENTS - 500, timeout=60, interval=0.01,
                       message="the worker to be draining")
        aof_redis.crash()
        # Idle, RQ's dequeue retries by itself; mid-drain, the job fails and the worker reconnects.
        noticed = "reconnecting" if busy else "could not connect to Redis"
        wait_until(lambda: noticed in worker.log(), timeout=30, message="the worker to notice the crash")
        assert worker.alive(), worker.log()
        code = stop(worker.process, signal.SIGTERM, timeout=30)
    redis.close()
    assert code == 0, worker.log()


def test_a_named_worker_killed_with_sigkill_starts_again_at_once_under_the_same_name(settings, engine, redis, tmp_path):
    settings = replace(settings, lease_ms=1_000)
    events = emit_backlog(redis, settings, seed=33, events=5_000)
    first = RunningWorker(settings, tmp_path / "first.log", "--name", f"{settings.prefix}-w1")
    with first:
        wait_until(lambda: workers_named(redis, settings, f"{settings.prefix}-w1"), timeout=60,
                   message="the worker to register under its name")
        kill_hard(first.process)
    more = emit_backlog(redis, settings, seed=34, events=5_000)
    with RunningWorker(settings, tmp_path / "second.log", "--name", f"{settings.prefix}-w1") as second:
        wait_for_state(engine, tally_events(events + more), timeout=120)
        assert second.alive(), second.log()
        assert workers_named(redis, settings, f"{settings.prefix}-w1")
    assert second.process.returncode == 0, second.log()


def test_a_named_worker_rides_out_a_redis_crash_mid_drain_and_keeps_its_name(aof_redis, aof_settings, tmp_path):
    settings, engine = aof_settings
    name = f"{settings.prefix}-w1"
    redis = Redis.from_url(aof_redis.url)
    events = emit_backlog(redis, settings, seed=35)
    with RunningWorker(settings, tmp_path / "worker.log", "--name", name) as worker:
        wait_until(lambda: backlog(redis, settings) < EVENTS - 500, timeout=60, interval=0.01,
                   message="the worker to be draining")
        aof_redis.crash()
        wait_until(lambda: "reconnecting" in worker.log(), timeout=30, message="the worker to notice the crash")
        aof_redis.restart()
        wait_for_state(engine, tally_events(events), timeout=120)
        assert worker.alive(), worker.log()
        assert workers_named(redis, settings, name)
    redis.close()
    assert worker.process.returncode == 0, worker.log()
