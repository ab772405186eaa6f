"""Faults: two workers on one shard, the first one's lease expiring in the middle of its batch.

The database is held (an exclusive lock on the SQLite file, a row lock on the
shard's offset in PostgreSQL) so the first drain is stuck inside its batch past
its lease. A second worker then takes the lease and reads the same entries from
the same offset. When the database lets go, one of them commits and the other's
offset compare-and-set finds the offset moved and rolls back: nothing is applied
twice — not the counters, not the dead letters.
"""

from __future__ import annotations

from dataclasses import replace

import sqlite3
import time

from sqlalchemy import create_engine, func, select, text

from readrate.events import Emitter
from readrate.events.jobs import drain_queue, enqueue_drain
from readrate.events.synthetic import traffic
from helpers import RunningWorker, backlog, tally_events, wait_for_state, wait_until
from readrate.workers.db import normalize_url
from readrate.workers.installation import change
from readrate.workers.schema import rejected_events


LEASE_MS = 300
BAD_ENTRIES = 7


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class DatabaseHold:
    """Holds the database so no drain can commit: BEGIN EXCLUSIVE on SQLite, the offset row lock on PostgreSQL."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._sqlite = None
        self._pg = None

    def __enter__(self) -> "DatabaseHold":
        if self.url.startswith("sqlite"):
            self._sqlite = sqlite3.connect(self.url.removeprefix("sqlite:///"), isolation_level=None, timeout=30)
            self._sqlite.execute("BEGIN EXCLUSIVE")
        else:
            self._pg = create_engine(normalize_url(self.url)).connect()
            self._pg.execute(text("SELECT last_id FROM stream_offsets WHERE shard = 0 FOR UPDATE"))
        return self

    def release(self) -> None:
        if self._sqlite is not None:
            self._sqlite.execute("ROLLBACK")
            self._sqlite.close()
            self._sqlite = None
        if self._pg is not None:
            self._pg.rollback()
            self._pg.engine.dispose()
            self._pg = None

    def __exit__(self, *exc_info) -> None:
        self.release()


def test_a_lease_that_expires_mid_batch_lets_a_second_worker_in_but_nothing_is_applied_twice(
        settings, engine, redis, tmp_path):
    # One shard, so both workers meet on it: the installation is set to one (`readrate config set shards 1`).
    change(engine, redis, settings, shards=1)
    settings = replace(settings, shards=1, batch_size=2_000, lease_ms=LEASE_MS)
    events = list(traffic(events=10_000, articles=200, days=2, now_ms=now_ms(), seed=21, vote_share=0.3))
    emitter = Emitter(redis, keys=settings.keys, scale=settings.rating_scale, strict=True, enqueue=False)
    stream, lease = settings.keys.stream(0), settings.keys.lease(0)
    queue = drain_queue(redis, settings.keys)
    with RunningWorker(settings, tmp_path / "a.log") as a, RunningWorker(settings, tmp_path / "b.log") as b:
        # Both workers are up (migrations done) before the database is held and the events arrive.
        wait_until(lambda: redis.scard(f"rq:workers:{queue.name}") == 2, timeout=60,
                   message="both workers to register")
        with DatabaseHold(settings.database_url) as hold:
            redis.xadd(stream, {"k": "read", "a": "bad-1", "t": "later"})
            assert emitter.emit_many(events[:5_000]) == 5_000
            for n in range(2, BAD_ENTRIES + 1):
                redis.xadd(stream, {"k": "read", "a": f"bad-{n}", "t": "later"})
            assert emitter.emit_many(events[5_000:]) == 5_000
            enqueue_drain(queue, 0)
            first = wait_until(lambda: redis.get(lease), timeout=30, interval=0.01,
                               message="a first drain to take the lease")
            wait_until(lambda: redis.get(lease) != first, timeout=30, interval=0.01,
                       message="the first drain's lease to expire inside its batch")
            enqueue_drain(queue, 0)
            second = wait_until(lambda: (redis.get(lease) or first) != first and redis.get(lease), timeout=30,
                                interval=0.01, message="a second drain to take the expired lease")
            assert second != first
            # The second drain is stuck in the same batch too once its own lease runs out.
            wait_until(lambda: redis.get(lease) != second, timeout=30, interval=0.01,
                       message="the second drain's lease to expire inside its batch")
            assert backlog(redis, settings) == len(events) + BAD_ENTRIES
            hold.release()
            wait_for_state(engine, tally_events(events), timeout=120)
            wait_until(lambda: backlog(redis, settings) == 0, timeout=60, message="the stream to be trimmed")
        assert a.alive() and b.alive(), a.log() + b.log()
    logs = a.log() + b.log()
    assert a.process.returncode == 0 and b.process.returncode == 0, logs
    # The scenario really happened: a drain found the offset moved by the other and rolled back.
    assert "offset moved under us" in logs, logs
    with engine.connect() as conn:
        dead = conn.execute(select(rejected_events.c.stream_id, func.count()).group_by(rejected_events.c.stream_id))
        assert sorted(n for _id, n in dead) == [1] * BAD_ENTRIES
