"""Integration: the `readrate worker` process — burst mode, refused jobs, and SIGTERM.

A burst worker drains every shard and exits 0. Only readrate's own JSON drain
job runs: a JSON job naming another function, or a pickled job on the same
queue, is refused without running anything (each tries to create a directory,
so running it would show) and the worker goes on counting. SIGTERM during a
large drain stops the worker (a running one or a --burst one) with exit code 0
between batches: the database then holds exactly the entries up to each
committed offset, and a restarted worker counts the rest.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer

from events import Emitter, Read, Vote
from events.synthetic import traffic
from helpers import (
    RunningWorker,
    applied_entries,
    assert_same_state,
    backlog,
    offsets,
    pending_entries,
    run_cli,
    snapshot,
    stop,
    stream_entries,
    tally,
    tally_events,
    wait_for_listening_worker,
    wait_for_state,
    wait_until,
)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class MakesDirectoryWhenUnpickled:
    """An argument whose unpickling creates a directory: proof that nobody unpickled it."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return os.mkdir, (self.path,)


@pytest.fixture
def emitter(settings, redis):
    return Emitter(redis, keys=settings.keys, scale=settings.rating_scale, strict=True)


def some_events(count: int, *, offset: int = 0) -> list:
    """Reads and votes on articles spread over every shard."""
    t = now_ms() - 3_600_000
    return [
        Vote(f"article-{i % 17}", t + i, f"voter-{i % 5}", float(1 + i % 5)) if i % 4 == 0
        else Read(f"article-{i % 17}", t + i, None)
        for i in range(offset, offset + count)
    ]


def test_a_burst_worker_exits_zero_after_draining_every_shard(settings, engine, redis, emitter):
    events = some_events(2_000)
    assert emitter.emit_many(events) == len(events)
    emitted = stream_entries(redis, settings)
    assert all(emitted[s] for s in range(settings.shards)), "every shard has a backlog"

    drained = run_cli(settings, "worker", "--burst", timeout=300)

    assert drained.returncode == 0, drained.stderr
    assert "drained 2,000 events (0 rejected" in drained.stderr
    assert backlog(redis, settings) == 0
    assert offsets(engine) == {s: entries[-1][0] for s, entries in emitted.items()}
    assert_same_state(snapshot(engine), tally_events(events))


def test_a_burst_worker_with_nothing_to_drain_exits_zero(settings, engine):
    drained = run_cli(settings, "worker", "--burst", timeout=300)

    assert drained.returncode == 0, drained.stderr
    assert "drained 0 events" in drained.stderr


@pytest.mark.faults
def test_a_job_naming_another_function_is_refused_and_kept_in_the_failed_registry(
    settings, engine, redis, emitter, tmp_path
):
    marker = tmp_path / "made-by-a-foreign-job"
    queue = Queue(settings.keys.queue, connection=redis, serializer=JSONSerializer)
    with RunningWorker(settings, tmp_path / "worker.log") as worker:
        wait_for_listening_worker(redis, settings)

        # The job id carries the test's prefix, so the prefix fixture deletes its keys afterwards.
        job = queue.enqueue("os.mkdir", str(marker), job_id=f"{settings.prefix}-foreign")

        wait_until(lambda: job.id in queue.failed_job_registry.get_job_ids(), timeout=120,
                   message="the foreign job in the failed registry")
        assert not marker.exists()
        failed = Job.fetch(job.id, connection=redis, serializer=JSONSerializer)
        assert "workers.drain.drain_shard" in (failed.latest_result().exc_string or "")
        events = some_events(50)
        assert emitter.emit_many(events) == len(events)
        wait_for_state(engine, tally_events(events))
        assert worker.alive(), worker.log()
    assert not marker.exists()


@pytest.mark.faults
def test_a_pickled_job_is_refused_unread_and_the_worker_keeps_counting(
    settings, engine, redis, emitter, tmp_path
):
    run_marker, unpickle_marker = tmp_path / "made-by-running-it", tmp_path / "made-by-unpickling-it"
    pickling = Queue(settings.keys.queue, connection=redis)  # RQ's default serializer: pickle
    assert pickling.serializer is not JSONSerializer
    with RunningWorker(settings, tmp_path / "worker.log") as worker:
        wait_for_listening_worker(redis, settings)

        job = pickling.enqueue(os.mkdir, str(run_marker), MakesDirectoryWhenUnpickled(str(unpickle_marker)),
                               job_id=f"{settings.prefix}-pickled")

        json_queue = Queue(settings.keys.queue, connection=redis, serializer=JSONSerializer)
        wait_until(lambda: job.id in json_queue.failed_job_registry.get_job_ids(), timeout=120,
                   message="the pickled job in the failed registry")
        assert job.id not in json_queue.get_job_ids()
        events = some_events(50)
        assert emitter.emit_many(events) == len(events)
        wait_for_state(engine, tally_events(events))
        assert worker.alive(), worker.log()
    assert not run_marker.exists()
    assert not unpickle_marker.exists()


@pytest.mark.faults
def test_sigterm_stops_a_worker_that_has_just_registered_with_exit_code_zero(
    settings, engine, redis, tmp_path
):
    with RunningWorker(settings, tmp_path / "worker.log") as worker:
        # Polled tightly, so the signal lands in the first moments after the worker shows up in RQ.
        wait_for_listening_worker(redis, settings, interval=0.001)

        code = stop(worker.process, signal.SIGTERM, timeout=60)

        assert code == 0, worker.log()


@pytest.mark.faults
@pytest.mark.parametrize("mode", [(), ("--burst",)], ids=["running", "burst"])
def test_sigterm_mid_drain_exits_zero_between_batches_and_a_restart_counts_the_rest(
    mode, settings, engine, redis, emitter, tmp_path
):
    settings = settings.but(batch_size=500, lease_ms=1_000)
    events = list(traffic(events=30_000, articles=300, days=2, now_ms=now_ms(), seed=11, vote_share=0.2))
    assert emitter.emit_many(events) == len(events)
    emitted = stream_entries(redis, settings)
    left = backlog(redis, settings)

    with RunningWorker(settings, tmp_path / "worker.log", *mode) as worker:
        wait_until(lambda: backlog(redis, settings) <= left - 1_000 or not worker.alive(), timeout=180,
                   interval=0.01, message="the worker to commit a few batches")

        code = stop(worker.process, signal.SIGTERM, timeout=120)

        assert code == 0, worker.log()

    committed = offsets(engine)
    pending = pending_entries(emitted, committed)
    assert 0 < pending < len(events), f"SIGTERM did not land mid-drain: {pending} pending"
    assert_same_state(snapshot(engine), tally(applied_entries(emitted, committed)))

    with RunningWorker(settings, tmp_path / "worker.log") as worker:
        wait_for_state(engine, tally_events(events), timeout=300)
        assert stop(worker.process, signal.SIGTERM, timeout=120) == 0, worker.log()
