"""The dead-letter table: list it, replay what the current rules accept, purge what is no longer wanted.

Replay re-validates each stored entry with today's rules (`payload_fields` +
`decode`, with the configured rating scale and the current clock): an entry
that now passes is emitted again with an XADD to its shard's stream, and its row
is deleted; one that still fails stays, with the reason it fails for now.

Redis and the database share no transaction, so a replay is made idempotent
instead: the XADDs of a chunk travel in one MULTI/EXEC per shard together with a marker
per row (`{PREFIX:SHARD}:replayed:{stream id}`), inside the database transaction that
locks and deletes those rows. If the process dies after EXEC but before COMMIT,
the rows are still there but their markers say they were emitted: the next replay
deletes them without emitting them again. Nothing is replayed twice, nothing lost.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from redis import Redis
from sqlalchemy import Connection, Engine, delete, func, select, update

from readrate.events.errors import InvalidEvent, ReadrateError
from readrate.events.settings import Settings
from readrate.events.wire import Keys, decode, encode, payload_fields

from .db import writing
from .schema import rejected_events

# Rows replayed per database transaction and Redis MULTI.
REPLAY_CHUNK = 500
# How long a replay marker outlives its row's deletion (a crashed replay is re-run well within it).
MARKER_TTL_S = 7 * 24 * 3600
TRUNCATED = "_truncated"


class NoSuchDeadLetter(ReadrateError):
    """Raised when a dead letter asked for by id is not in the table (never there, replayed or purged)."""


@dataclass(frozen=True)
class DeadLetter:
    """One row of the dead-letter table."""

    id: int
    shard: int
    stream_id: str
    reason: str
    payload: str
    received_at: datetime

    def as_dict(self) -> dict:
        return {"id": self.id, "shard": self.shard, "stream_id": self.stream_id, "reason": self.reason,
                "payload": self.payload, "received_at": self.received_at}


@dataclass
class ReplayResult:
    """What a replay did: how many rows went back into the streams, and the ones that still fail."""

    replayed: int = 0
    still_failing: list[DeadLetter] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"replayed": self.replayed, "still_failing": len(self.still_failing),
                "rows": [row.as_dict() for row in self.still_failing]}


def _row(r) -> DeadLetter:
    return DeadLetter(r.id, r.shard, r.stream_id, r.reason, r.payload, r.received_at)


def _filtered(query, *, ids: Sequence[int] | None = None, reason: str | None = None,
              before: datetime | None = None):
    if ids is not None:
        query = query.where(rejected_events.c.id.in_(list(ids)))
    if reason:
        # Case-insensitive substring, with LIKE's wildcards taken literally.
        escaped = reason.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(func.lower(rejected_events.c.reason).like(f"%{escaped}%", escape="\\"))
    if before is not None:
        query = query.where(rejected_events.c.received_at < before)
    return query


def count_dead(engine: Engine, *, reason: str | None = None) -> int:
    with engine.connect() as conn:
        return conn.scalar(_filtered(select(func.count()).select_from(rejected_events), reason=reason)) or 0


def list_dead(engine: Engine, *, reason: str | None = None, limit: int = 50) -> list[DeadLetter]:
    """The newest dead letters first (optionally only those whose reason contains `reason`)."""
    query = _filtered(select(rejected_events), reason=reason)
    query = query.order_by(rejected_events.c.received_at.desc(), rejected_events.c.id.desc()).limit(limit)
    with engine.connect() as conn:
        return [_row(r) for r in conn.execute(query)]


def purge_dead(engine: Engine, *, before: datetime | None = None, reason: str | None = None,
               ids: Sequence[int] | None = None) -> int:
    """Delete dead letters received before `before` (and matching `reason`/`ids`); returns how many."""
    with writing(engine.connect()) as conn, conn.begin():
        return conn.execute(_filtered(delete(rejected_events), ids=ids, reason=reason, before=before)).rowcount


def missing_ids(engine: Engine, ids: Sequence[int]) -> list[int]:
    """The ids among `ids` that no dead letter has, in the order given."""
    with engine.connect() as conn:
        found = set(conn.scalars(select(rejected_events.c.id).where(rejected_events.c.id.in_(list(ids)))))
    return [i for i in dict.fromkeys(ids) if i not in found]


def marker_key(keys: Keys, row: DeadLetter) -> str:
    """The row's replay marker, beside the stream it came from (one hash slot: one MULTI on a cluster)."""
    return f"{keys.tag(row.shard)}:replayed:{row.stream_id}"


def revalidate(row: DeadLetter, settings: Settings, now_ms: int):
    """The entry as an event if today's rules accept it; raises InvalidEvent with today's reason otherwise."""
    if isinstance(json.loads(row.payload).get(TRUNCATED), list):
        # Only the first bytes of an oversized field were kept: what was sent cannot be rebuilt.
        raise InvalidEvent(row.reason)
    return decode(payload_fields(row.payload), scale=settings.rating_scale, now_ms=now_ms)


def replay_dead(engine: Engine, redis: Redis, settings: Settings, *, now_ms: int,
                ids: Sequence[int] | None = None, reason: str | None = None) -> ReplayResult:
    """Re-validate the chosen rows (`ids`, or all; optionally by `reason`) and re-emit what passes.

    Raises NoSuchDeadLetter, before replaying anything, when one of `ids` is not in the table.
    """
    if ids:
        missing = missing_ids(engine, ids)
        if missing:
            which = ", ".join(str(i) for i in missing)
            said = f"no dead letter with id {which}" if len(missing) == 1 else f"no dead letters with ids {which}"
            raise NoSuchDeadLetter(f"{said}; nothing was replayed (`readrate dead list` shows the ids there are)")
    result = ReplayResult()
    after = 0
    while True:
        with writing(engine.connect()) as conn, conn.begin():
            rows = _lock_chunk(conn, after, ids, reason)
            if not rows:
                return result
            after = rows[-1].id
            _replay_chunk(conn, redis, settings, rows, now_ms, result)


def _lock_chunk(conn: Connection, after: int, ids: Sequence[int] | None, reason: str | None) -> list[DeadLetter]:
    query = _filtered(select(rejected_events), ids=ids, reason=reason)
    query = query.where(rejected_events.c.id > after).order_by(rejected_events.c.id).limit(REPLAY_CHUNK)
    if conn.dialect.name == "postgresql":
        # Two replays at once: the second waits for these rows (SQLite's BEGIN IMMEDIATE already serializes).
        query = query.with_for_update()
    return [_row(r) for r in conn.execute(query)]


def _replay_chunk(conn: Connection, redis: Redis, settings: Settings, rows: list[DeadLetter], now_ms: int,
                  result: ReplayResult) -> None:
    keys = settings.keys
    passing, failing = [], []
    for row in rows:
        try:
            passing.append((row, revalidate(row, settings, now_ms)))
        except InvalidEvent as exc:
            failing.append((row, str(exc)))
    if passing:
        lookup = redis.pipeline(transaction=False)
        for row, _event in passing:
            lookup.get(marker_key(keys, row))
        by_shard: dict[int, list[tuple[DeadLetter, object]]] = {}
        for (row, event), marked in zip(passing, lookup.execute()):
            if marked is None:
                by_shard.setdefault(row.shard, []).append((row, event))
        # Back into the stream it came from: every shard below max_shards is drained, whatever the shard
        # count is now, and the stream and the markers share a hash slot, so each MULTI is one node's.
        for shard, group in sorted(by_shard.items()):
            pipe = redis.pipeline(transaction=True)
            for row, event in group:
                pipe.xadd(keys.stream(shard), encode(event))
                pipe.set(marker_key(keys, row), 1, ex=MARKER_TTL_S)
            pipe.execute()
        conn.execute(delete(rejected_events).where(rejected_events.c.id.in_([row.id for row, _ in passing])))
        result.replayed += len(passing)
    for row, reason in failing:
        if reason != row.reason:
            conn.execute(update(rejected_events).where(rejected_events.c.id == row.id).values(reason=reason))
        result.still_failing.append(DeadLetter(row.id, row.shard, row.stream_id, reason, row.payload,
                                               row.received_at))
