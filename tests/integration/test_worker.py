"""Integration: the `readrate worker --burst` process drains every shard and exits 0.

Refused jobs and signals are the fault suite's (tests/faults/test_refused_jobs.py,
tests/faults/test_worker_resilience.py).
"""

from __future__ import annotations

import os
import time

import pytest

from readrate.events import Emitter, Read, Vote
from helpers import (
    assert_same_state,
    backlog,
    offsets,
    run_cli,
    snapshot,
    stream_entries,
    tally_events,
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
