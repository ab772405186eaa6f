"""Integration, faults: `readrate worker` processes SIGKILLed in the middle of draining.

A large mixed backlog (reads and votes, re-votes among them) is emitted first and
recorded entry by entry from the streams. Workers with small batches and a short
lease drain it and are killed with SIGKILL while the offsets have moved but entries
are still pending. After a kill the database must hold exactly the entries up to
each shard's committed offset (no half-applied batch); after a restart, or with a
second worker carrying on, exactly every event emitted. A drain killed between its
commit and its XTRIM must not leave a backlog that never drains.
"""

from __future__ import annotations

from dataclasses import replace

import time

from rq import Worker

from readrate.events import Emitter, Read, Vote
from readrate.events.synthetic import traffic
from helpers import (
    assert_same_state,
    backlog,
    kill_hard,
    offsets,
    pending_entries,
    run_cli,
    snapshot,
    start_logged_worker,
    stop,
    stream_entries,
    tally,
    wait_for_state,
    wait_until,
)
from readrate.workers.aggregate import aggregate
from readrate.workers.db import writing
from readrate.events.clock import utc_now
from readrate.workers.writer import apply_batch


EVENTS = 40_000
BATCH_SIZE = 500
LEASE_MS = 1_000
# Entries trimmed before each SIGKILL: the first kill comes right after the first commit.
PROGRESS_BEFORE_KILL = [1, 3 * BATCH_SIZE]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def settled(engine) -> tuple[dict[int, str], dict]:
    """The committed offsets and the counters, read when no commit lands between the two reads.

    A killed client's COMMIT may already sit in PostgreSQL's socket buffer and still land
    after the kill; reading the offsets before and after the counters catches that.
    """
    while True:
        before = offsets(engine)
        state = snapshot(engine)
        if offsets(engine) == before:
            return before, state


def emit_backlog(settings, redis, seed: int):
    """EVENTS mixed events emitted before any worker runs; returns them and the stream entries."""
    emitter = Emitter(redis, keys=settings.keys, scale=settings.rating_scale, strict=True)
    events = list(traffic(events=EVENTS, articles=400, days=3, now_ms=now_ms(), seed=seed, vote_share=0.3))
    assert emitter.emit_many(events) == EVENTS
    emitted = stream_entries(redis, settings)
    assert sum(len(e) for e in emitted.values()) == EVENTS
    assert all(len(emitted[s]) > 4 * BATCH_SIZE for s in emitted), "every shard needs several batches"
    return events, emitted


def test_counters_are_exact_when_one_of_two_workers_is_killed_mid_drain(settings, engine, redis, tmp_path):
    settings = replace(settings, batch_size=BATCH_SIZE, lease_ms=LEASE_MS)
    _events, emitted = emit_backlog(settings, redis, seed=8)
    expected = tally(fields for entries in emitted.values() for _id, fields in entries)
    left = backlog(redis, settings)
    victim_name = f"victim-{settings.prefix}"
    victim = start_logged_worker(settings, tmp_path / "victim.log", "--name", victim_name)
    survivor = start_logged_worker(settings, tmp_path / "survivor.log")

    def victim_is_draining() -> bool:
        worker = Worker.find_by_key(Worker.redis_worker_namespace_prefix + victim_name, connection=redis)
        return worker is not None and worker.get_current_job_id() is not None

    try:
        wait_until(lambda: victim.poll() is not None
                   or (backlog(redis, settings) <= left - 2 * BATCH_SIZE and victim_is_draining()),
                   timeout=180, interval=0.01, message="the victim to be draining after some commits")
        kill_hard(victim)
        assert victim.returncode == -9, (tmp_path / "victim.log").read_text()
        committed = offsets(engine)
        assert pending_entries(emitted, committed) > 0, "the kill came after the drain ended"
        # The survivor takes the dead worker's shards once their leases lapse.
        wait_for_state(engine, expected, timeout=300)
        wait_until(lambda: backlog(redis, settings) == 0, timeout=60, message="the streams to be trimmed")
    finally:
        kill_hard(victim)
        code = stop(survivor)
    assert code == 0, (tmp_path / "survivor.log").read_text()
    assert offsets(engine) == {s: entries[-1][0] for s, entries in emitted.items()}


def test_a_drain_killed_between_commit_and_trim_leaves_no_backlog_that_never_drains(settings, engine, redis):
    emitter = Emitter(redis, keys=settings.keys, scale=settings.rating_scale, strict=True, enqueue=False)
    start = now_ms() - 3_600_000
    events = [Read(f"article-{i % 7}", start + i, None) for i in range(300)]
    events += [Vote(f"article-{i % 7}", start + i, f"voter-{i % 13}", float(1 + i % 5)) for i in range(120)]
    assert emitter.emit_many(events) == len(events)
    emitted = stream_entries(redis, settings)
    # What a drain SIGKILLed right after its COMMIT leaves: counters and offsets moved, entries not
    # yet trimmed. The window is too narrow to hit on purpose with a signal, so the batch is applied
    # here with the worker's own writer, which is exactly the drain up to its XTRIM.
    for shard, entries in emitted.items():
        batch = aggregate([(i.encode(), f) for i, f in entries], scale=settings.rating_scale, now_ms=now_ms())
        with writing(engine.connect()) as conn:
            assert apply_batch(conn, shard, "0-0", batch, received_at=utc_now())
    expected = tally(fields for entries in emitted.values() for _id, fields in entries)
    assert_same_state(snapshot(engine), expected)
    assert backlog(redis, settings) == len(events)

    drained = run_cli(settings, "worker", "--burst", timeout=120)

    assert drained.returncode == 0, drained.stderr
    assert "drained 0 events" in drained.stderr
    assert backlog(redis, settings) == 0
    assert_same_state(snapshot(engine), expected)
