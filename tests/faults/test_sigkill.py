"""Faults: a worker SIGKILLed again and again at random moments while it drains 200,000 mixed events.

Reads and votes (re-votes among them) are emitted first; then a worker with small
batches and a short lease is started and killed with SIGKILL, more than twenty
times, each time at a random point of its work: some while it starts up, the
rest after it has committed some batches, anywhere inside the batch in hand. Now
and then the database is checked to hold exactly the entries up to each shard's
committed offset (no half-applied batch); at the end it must hold exactly what the
generator emitted: counters, hourly and daily buckets, and the votes table.
"""

from __future__ import annotations

from dataclasses import replace

import random
import time


from readrate.events import Emitter
from readrate.events.synthetic import traffic
from helpers import (
    assert_same_state,
    backlog,
    id_key,
    kill_hard,
    offsets,
    snapshot,
    start_logged_worker,
    stop,
    stream_entries,
    tally,
    tally_events,
    wait_for_state,
    wait_until,
)


EVENTS = 200_000
KILLS_MID_DRAIN = 20
KILLS_AT_START_UP = 3
BATCH_SIZE = 400
LEASE_MS = 500
# Every this many kills the partial state is compared with the entries up to the offsets.
CHECK_EVERY = 5


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def settled(engine) -> tuple[dict[int, str], dict]:
    """Offsets and counters read with no commit landing in between (a killed client's COMMIT may
    still be in flight when the kill returns)."""
    while True:
        before = offsets(engine)
        state = snapshot(engine)
        if offsets(engine) == before:
            return before, state


def test_counters_buckets_and_votes_are_exact_after_more_than_twenty_sigkills_mid_drain(
        settings, engine, redis, tmp_path):
    settings = replace(settings, batch_size=BATCH_SIZE, lease_ms=LEASE_MS)
    start_ms = now_ms()

    def generate():
        return traffic(events=EVENTS, articles=1_500, days=3, now_ms=start_ms, seed=2024, vote_share=0.25)

    emitter = Emitter(redis, keys=settings.keys, scale=settings.rating_scale, strict=True)
    assert emitter.emit_many(generate()) == EVENTS
    emitted = stream_entries(redis, settings)
    assert sum(len(e) for e in emitted.values()) == EVENTS
    rng = random.Random(99)
    log = tmp_path / "worker.log"
    plan = ["start-up"] * KILLS_AT_START_UP + ["mid-drain"] * KILLS_MID_DRAIN
    rng.shuffle(plan)
    kills_mid_drain = 0
    for number, moment in enumerate(plan, start=1):
        left = backlog(redis, settings)
        worker = start_logged_worker(settings, log)
        try:
            if moment == "start-up":
                # Somewhere in imports, migrations or the first sweep.
                started = time.monotonic()
                delay_s = rng.uniform(0.05, 1.0)
                wait_until(lambda: time.monotonic() - started > delay_s or worker.poll() is not None,
                           timeout=10, interval=0.01, message="the start-up kill moment")
            else:
                # Kill once this worker has committed a random share of what is fair for this kill,
                # so the backlog lasts for all of them; the poll lands anywhere in the next batch.
                kills_left = len(plan) - number + 1
                target = rng.randint(1, max(1, left // (kills_left + 1)))
                wait_until(lambda: backlog(redis, settings) <= left - target or worker.poll() is not None,
                           timeout=120, interval=0.005, message=f"worker {number} to commit {target} entries")
            kill_hard(worker)
        finally:
            if worker.poll() is None:
                kill_hard(worker)
        assert worker.returncode == -9, f"kill {number} found the worker already gone:\n{log.read_text()[-3000:]}"
        if moment == "mid-drain":
            committed = offsets(engine)
            pending = sum(1 for s, entries in emitted.items() for i, _ in entries
                          if id_key(i) > id_key(committed[s]))
            assert pending > 0, f"kill {number} came after the backlog was drained"
            kills_mid_drain += 1
            if kills_mid_drain % CHECK_EVERY == 0:
                committed, state = settled(engine)
                assert_same_state(state, tally(fields for s, entries in emitted.items() for i, fields in entries
                                               if id_key(i) <= id_key(committed[s])))
    assert kills_mid_drain >= 20

    worker = start_logged_worker(settings, log)
    try:
        wait_for_state(engine, tally_events(generate()), timeout=300)
        wait_until(lambda: backlog(redis, settings) == 0, timeout=60, message="the streams to be trimmed")
        assert offsets(engine) == {s: entries[-1][0] for s, entries in emitted.items()}
    finally:
        code = stop(worker)
    assert code == 0, log.read_text()[-3000:]
