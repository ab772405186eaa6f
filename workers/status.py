"""What `readrate status` reports: per shard the backlog, lag and committed offset; dead letters by
rule; RQ workers and failed drain jobs; Redis settings that put events at risk.

The pure rules come first: grouping dead-letter reasons by the rule they broke, the
Redis warnings, the `--check` verdict against `Thresholds`, the JSON document.
Then `gather()` and its helpers, the only I/O: Redis (streams, CONFIG, RQ's
registries) and the database (offsets, dead letters), read into plain values.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import redis as redis_lib
from redis import Redis
from rq import Queue, Worker
from rq.job import Job
from rq.registry import FailedJobRegistry
from rq.serializers import JSONSerializer
from rq.utils import utcparse
from sqlalchemy import Connection, Engine, func, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from events.errors import DatabaseUnavailable, ReadrateError
from events.settings import Settings
from events.wire import Keys

from .db import normalize_url, reachable
from .schema import rejected_events, stream_offsets

START_ID = "0-0"
# Failed jobs whose end time `status` looks up for the recent count; older ones only count in the total.
FAILED_JOBS_INSPECTED = 1000
RECENT_FAILURE_WINDOW = timedelta(hours=1)
# Entries at or before the offset are read in pages of this many (normally there are none: applied
# entries are trimmed right after the commit; a drain killed in between leaves at most one batch).
STALE_PAGE = 10_000


class SchemaMissing(ReadrateError):
    """Raised when the database has no readrate tables (migrations were never applied)."""


# -- the values ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ShardStatus:
    """One shard's stream against its committed offset."""

    shard: int
    backlog: int
    lag_s: float
    committed_offset: str
    oldest_unapplied_id: str | None = None
    offset_updated_at: datetime | None = None


@dataclass(frozen=True)
class WorkerInfo:
    """An RQ worker registered on readrate's queue."""

    name: str
    state: str
    current_job_id: str | None = None
    last_heartbeat: datetime | None = None


@dataclass(frozen=True)
class Thresholds:
    """What `--check` tolerates before it exits 1."""

    max_lag_s: float = 60.0
    max_failed_jobs: int = 0
    min_workers: int = 1


@dataclass(frozen=True)
class Status:
    """Everything `readrate status` shows, as plain values."""

    queue: str
    shards: list[ShardStatus]
    dead_letters: int
    dead_letter_reasons: list[tuple[str, int]]
    workers: list[WorkerInfo]
    failed_jobs: int
    failed_jobs_last_hour: int
    queued_jobs: int
    redis_config: dict[str, str] | None
    warnings: list[str] = field(default_factory=list)

    @property
    def backlog(self) -> int:
        return sum(s.backlog for s in self.shards)

    @property
    def lag_s(self) -> float:
        return max((s.lag_s for s in self.shards), default=0.0)


# -- pure rules ------------------------------------------------------------------------------------

# A repr()-quoted value ('9', "it's", '\x00…'), then the numbers that are values, not rules.
_QUOTED = re.compile(r"""'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*\"""")
_QUOTED_LIST = re.compile(r"'…'(?:, '…')+")
_VALUE_NUMBERS = [
    re.compile(r"(?<=event time )-?\d+"),
    re.compile(r"\b\d+(?= (?:s in the future|characters|bytes)\b)"),
]


def reason_rule(reason: str) -> str:
    """The rule a dead letter broke: its reason with the offending value taken out.

    "rating '9' is not on the scale 1-5; …" and "rating '7' is not on the scale 1-5; …"
    are one rule; so are article ids of 129 and of 300 characters.
    """
    rule = _QUOTED.sub("'…'", reason)
    rule = _QUOTED_LIST.sub("'…'", rule)
    for pattern in _VALUE_NUMBERS:
        rule = pattern.sub("N", rule)
    return rule


def group_reasons(counts: Iterable[tuple[str, int]]) -> list[tuple[str, int]]:
    """(rule, count) for (reason, count) pairs, most frequent rule first, then by rule."""
    rules: Counter[str] = Counter()
    for reason, count in counts:
        rules[reason_rule(reason)] += count
    return sorted(rules.items(), key=lambda item: (-item[1], item[0]))


def stream_id_ms(stream_id: str) -> int:
    return int(stream_id.partition("-")[0])


def lag_seconds(oldest_unapplied_id: str | None, now_ms: int) -> float:
    """Age of the oldest unapplied entry (0 when there is none), from its stream id's milliseconds."""
    if oldest_unapplied_id is None:
        return 0.0
    return max(0, now_ms - stream_id_ms(oldest_unapplied_id)) / 1000


def redis_warnings(config: dict[str, str] | None) -> list[str]:
    """Warnings for Redis settings under which events could be lost before they are counted."""
    if config is None:
        return ["could not read the Redis configuration (CONFIG GET is not allowed); make sure it persists "
                "with appendonly yes and never evicts (maxmemory-policy noeviction)"]
    warnings = []
    aof = config.get("appendonly", "").lower() == "yes"
    save = config.get("save", "").strip()
    if not aof and not save:
        warnings.append("Redis has no persistence (appendonly no, save ''): a restart loses every event "
                        "not yet counted; set appendonly yes")
    elif not aof:
        warnings.append(f"Redis persists only by snapshots (appendonly no, save '{save}'): a crash loses the "
                        "events since the last one; set appendonly yes")
    elif config.get("appendfsync", "").lower() == "no":
        warnings.append("Redis writes its append-only file without fsync (appendfsync no): a machine crash "
                        "can lose about 30 s of events; use everysec or always")
    policy = config.get("maxmemory-policy")
    if policy is not None and policy.lower() != "noeviction":
        warnings.append(f"Redis may evict keys when full (maxmemory-policy {policy}): events could vanish before "
                        "they are counted; set maxmemory-policy noeviction")
    return warnings


def problems(status: Status, thresholds: Thresholds) -> list[str]:
    """Why `--check` fails, one sentence each; empty when everything is within the thresholds."""
    found = []
    if status.lag_s > thresholds.max_lag_s:
        worst = max(status.shards, key=lambda s: s.lag_s)
        found.append(f"lag {status.lag_s:.1f} s on shard {worst.shard} exceeds {thresholds.max_lag_s:g} s")
    if status.failed_jobs_last_hour > thresholds.max_failed_jobs:
        found.append(f"{status.failed_jobs_last_hour} drain job(s) failed in the last hour; "
                     f"accepted: at most {thresholds.max_failed_jobs}")
    if len(status.workers) < thresholds.min_workers:
        found.append(f"{len(status.workers)} worker(s) alive on queue {status.queue!r}; "
                     f"accepted: at least {thresholds.min_workers}")
    return found


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def as_document(status: Status, found: list[str] | None = None) -> dict:
    """The JSON document of `status --format json` (stable snake_case keys)."""
    doc = {
        "queue": status.queue,
        "backlog": status.backlog,
        "lag_s": status.lag_s,
        "shards": [
            {"shard": s.shard, "backlog": s.backlog, "lag_s": s.lag_s, "committed_offset": s.committed_offset,
             "oldest_unapplied_id": s.oldest_unapplied_id, "offset_updated_at": _iso(s.offset_updated_at)}
            for s in status.shards
        ],
        "dead_letters": status.dead_letters,
        "dead_letters_by_reason": [{"reason": r, "count": n} for r, n in status.dead_letter_reasons],
        "workers_alive": len(status.workers),
        "workers": [
            {"name": w.name, "state": w.state, "current_job_id": w.current_job_id,
             "last_heartbeat": _iso(w.last_heartbeat)}
            for w in status.workers
        ],
        "queued_jobs": status.queued_jobs,
        "failed_jobs": status.failed_jobs,
        "failed_jobs_last_hour": status.failed_jobs_last_hour,
        "warnings": list(status.warnings),
    }
    if found is not None:
        doc["check"] = {"ok": not found, "problems": list(found)}
    return doc


# -- the I/O ---------------------------------------------------------------------------------------

def gather(settings: Settings, redis: Redis, engine: Engine) -> Status:
    """Read everything `status` shows. Raises DatabaseUnavailable, SchemaMissing or a Redis error."""
    check_database(settings.database_url)
    ping_database(engine)
    with reachable(settings.database_url):
        with engine.connect() as conn:
            if not inspect(conn).has_table(stream_offsets.name):
                raise SchemaMissing("the database has no readrate tables yet; run `readrate db upgrade` "
                                    "(or start a worker, which applies the migrations)")
            offsets = read_offsets(conn)
            reasons = dead_letter_counts(conn)
    seconds, micros = redis.time()
    now_ms = seconds * 1000 + micros // 1000
    keys = settings.keys
    shards = shard_statuses(redis, keys, offsets, now_ms=now_ms)
    queue = Queue(keys.queue, connection=redis, serializer=JSONSerializer)
    failed, recent = failed_jobs(queue, now=datetime.fromtimestamp(seconds, timezone.utc))
    config = redis_config(redis)
    return Status(
        queue=keys.queue,
        shards=shards,
        dead_letters=sum(n for _r, n in reasons),
        dead_letter_reasons=group_reasons(reasons),
        workers=workers(queue),
        failed_jobs=failed,
        failed_jobs_last_hour=recent,
        queued_jobs=queue.count,
        redis_config=config,
        warnings=redis_warnings(config),
    )


def check_database(url: str) -> None:
    """Raise DatabaseUnavailable for a SQLite file that is not there (opening it would create an empty one)."""
    parsed = make_url(normalize_url(url))
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        if not Path(parsed.database).expanduser().exists():
            raise DatabaseUnavailable(f"database file {parsed.database!r} does not exist; check DATABASE_URL")


def read_offsets(conn: Connection) -> dict[int, tuple[str, datetime | None]]:
    rows = conn.execute(select(stream_offsets.c.shard, stream_offsets.c.last_id, stream_offsets.c.updated_at))
    return {r.shard: (r.last_id, r.updated_at) for r in rows}


def dead_letter_counts(conn: Connection) -> list[tuple[str, int]]:
    rows = conn.execute(select(rejected_events.c.reason, func.count()).group_by(rejected_events.c.reason))
    return [(reason, int(count)) for reason, count in rows]


def shard_statuses(redis: Redis, keys: Keys, offsets: dict[int, tuple[str, datetime | None]], *,
                   now_ms: int) -> list[ShardStatus]:
    """Backlog, lag and offset of every shard: entries after the offset, and the age of the first of them."""
    pipe = redis.pipeline(transaction=False)
    for shard in range(keys.shards):
        stream, (offset, _at) = keys.stream(shard), offsets.get(shard, (START_ID, None))
        pipe.xlen(stream)
        pipe.xrange(stream, count=1)
        pipe.xrange(stream, min=f"({offset}", count=1)
    replies = pipe.execute()
    found = []
    for shard in range(keys.shards):
        offset, updated_at = offsets.get(shard, (START_ID, None))
        length, first, pending = replies[3 * shard:3 * shard + 3]
        oldest = _id(pending[0][0]) if pending else None
        stale = 0
        if first and offset != START_ID and _key(_id(first[0][0])) <= _key(offset):
            stale = _count_until(redis, keys.stream(shard), offset)
        found.append(ShardStatus(shard=shard, backlog=max(0, length - stale), lag_s=lag_seconds(oldest, now_ms),
                                 committed_offset=offset, oldest_unapplied_id=oldest, offset_updated_at=updated_at))
    return found


def _count_until(redis: Redis, stream: str, offset: str) -> int:
    """Entries at or before `offset` (applied, not yet trimmed)."""
    count, start = 0, "-"
    while True:
        page = redis.xrange(stream, min=start, max=offset, count=STALE_PAGE)
        count += len(page)
        if len(page) < STALE_PAGE:
            return count
        start = f"({_id(page[-1][0])}"


def _id(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def _key(stream_id: str) -> tuple[int, int]:
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)


def workers(queue: Queue) -> list[WorkerInfo]:
    """The RQ workers registered on the queue (RQ drops a worker whose heartbeat key has expired)."""
    found = []
    for worker in Worker.all(queue=queue):
        state = worker.get_state()
        found.append(WorkerInfo(name=worker.name, state=str(getattr(state, "value", state)),
                                current_job_id=worker.get_current_job_id(), last_heartbeat=worker.last_heartbeat))
    return sorted(found, key=lambda w: w.name)


def failed_jobs(queue: Queue, *, now: datetime) -> tuple[int, int]:
    """Jobs in the queue's failed registry: all of them, and those that ended within the last hour."""
    registry = FailedJobRegistry(queue=queue)
    ids = registry.get_job_ids(0, FAILED_JOBS_INSPECTED - 1, desc=True)
    pipe = queue.connection.pipeline(transaction=False)
    for job_id in ids:
        pipe.hget(Job.key_for(job_id), "ended_at")
    since = now - RECENT_FAILURE_WINDOW
    recent = 0
    for ended in pipe.execute() if ids else []:
        if ended is not None and utcparse(_id(ended)).replace(tzinfo=timezone.utc) >= since:
            recent += 1
    return registry.count, recent


def redis_config(redis: Redis) -> dict[str, str] | None:
    """The Redis settings that decide whether events survive; None if CONFIG is not allowed."""
    config: dict[str, str] = {}
    try:
        for name in ("appendonly", "appendfsync", "save", "maxmemory-policy"):
            config.update({_id(k): _id(v) for k, v in redis.config_get(name).items()})
    except redis_lib.ResponseError:
        return None
    return config


def ping_database(engine: Engine) -> None:
    """Raise DatabaseUnavailable if no connection can be made (any error while connecting counts)."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except DBAPIError as exc:
        raise DatabaseUnavailable(f"the database is unreachable: {exc.orig}") from exc
