"""What `readrate status` shows and its verdict, pure: the `Status` values, Redis settings that put
events at risk, the `--check` problems against `Thresholds`, and the JSON document (stable snake_case
keys). `status.gather()` reads the values; nothing here does I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from readrate.workers.backlog import ShardStatus

from .render import plural



@dataclass(frozen=True)
class WorkerInfo:
    """An RQ worker registered on readrate's queue."""

    name: str
    state: str
    current_job_id: str | None = None
    last_heartbeat: datetime | None = None


# `status` warns from this share of maxmemory, and `status --check` fails from MEMORY_FAIL.
MEMORY_WARN = 0.80
MEMORY_FAIL = 0.90


@dataclass(frozen=True)
class Memory:
    """Redis memory in use against its `maxmemory` limit."""

    used_bytes: int
    max_bytes: int  # 0: no limit

    @property
    def share(self) -> float | None:
        return self.used_bytes / self.max_bytes if self.max_bytes else None

    def describe(self) -> str:
        if not self.max_bytes:
            return f"{_mb(self.used_bytes)} used (no maxmemory limit)"
        return f"{_mb(self.used_bytes)} of {_mb(self.max_bytes)} maxmemory ({self.share:.0%})"


def _mb(n: int) -> str:
    return f"{n / 1_048_576:,.1f} MB"


def memory_warnings(memory: Memory | None) -> list[str]:
    """A warning from MEMORY_WARN of maxmemory: at the limit Redis refuses new events (noeviction)."""
    if memory is None or memory.share is None or memory.share < MEMORY_WARN:
        return []
    return [f"Redis memory is at {memory.describe()}: at the limit it refuses new events; add workers (draining "
            "frees memory), or raise maxmemory"]


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
    # Redis memory (the streams' Redis; on a cluster the fullest master's); maxmemory 0 means no limit.
    memory: Memory | None = None
    installation_id: str | None = None

    @property
    def backlog(self) -> int:
        return sum(s.backlog for s in self.shards)

    @property
    def lag_s(self) -> float:
        return max((s.lag_s for s in self.shards), default=0.0)


@dataclass(frozen=True)
class Thresholds:
    """What `--check` tolerates before it exits 1."""

    max_lag_s: float = 60.0
    max_failed_jobs: int = 0
    min_workers: int = 1


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
        found.append(f"{plural(status.failed_jobs_last_hour, 'drain job')} failed in the last hour; "
                     f"accepted: at most {thresholds.max_failed_jobs}")
    if status.memory is not None and status.memory.share is not None and status.memory.share >= MEMORY_FAIL:
        found.append(f"Redis memory at {status.memory.describe()}; accepted: below {MEMORY_FAIL:.0%}")
    if len(status.workers) < thresholds.min_workers:
        found.append(f"{plural(len(status.workers), 'worker')} alive on queue {status.queue!r}; "
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
        "installation_id": status.installation_id,
        "memory": None if status.memory is None else {
            "used_bytes": status.memory.used_bytes, "max_bytes": status.memory.max_bytes,
            "share": status.memory.share},
    }
    if found is not None:
        doc["check"] = {"ok": not found, "problems": list(found)}
    return doc
