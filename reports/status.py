"""What `readrate status` reads: per shard the backlog, lag and committed offset; dead letters by
rule; RQ workers and failed drain jobs; the Redis settings that decide whether events survive.

`gather()` is the only I/O: Redis (streams, CONFIG, RQ's registries, through the
worker runtime's adapter) and the database (offsets, dead letters), read into the
plain values of `health.Status`; the verdict and the JSON document are `health`'s, pure.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import redis as redis_lib
from redis import Redis
from redis.cluster import RedisCluster
from sqlalchemy import Connection, Engine, func, inspect, select

from readrate.events.jobs import drain_queue
from readrate.events.settings import Settings
from readrate.workers.backlog import shard_statuses
from readrate.workers.db import SCHEMA_HINT, SchemaMissing, check_database, reachable
from readrate.workers.rqadapter import failed_jobs, registered_workers
from readrate.workers.installation import load as load_installation
from readrate.workers.schema import installation, rejected_events, stream_offsets

from .health import Memory, Status, WorkerInfo, memory_warnings, redis_warnings
from .reasons import group_reasons

RECENT_FAILURE_WINDOW = timedelta(hours=1)
# The Redis settings `health.redis_warnings` judges.
REDIS_SETTINGS = ("appendonly", "appendfsync", "save", "maxmemory-policy")


def gather(settings: Settings, redis: Redis, engine: Engine, queue_redis: Redis | None = None) -> Status:
    """Read everything `status` shows. Raises DatabaseUnavailable, SchemaMissing or a Redis error.

    `redis` holds the streams (a Redis or a Redis Cluster), `queue_redis` RQ's queue (default: `redis`).
    """
    check_database(engine)
    with reachable(settings.database_url), engine.connect() as conn:
        if not inspect(conn).has_table(installation.name):
            raise SchemaMissing(f"the database has no readrate tables yet (or not this version's); {SCHEMA_HINT}")
        offsets = read_offsets(conn)
        reasons = dead_letter_counts(conn)
        found = load_installation(conn)
    keys = settings.keys
    if found is not None and found[1] == settings.prefix:
        keys = found[0].keys(settings.prefix)  # every shard ever written to, as the workers drain them
    seconds, micros = (queue_redis or redis).time()
    queue = drain_queue(queue_redis or redis, keys)
    failed, recent = failed_jobs(queue, since=datetime.fromtimestamp(seconds, timezone.utc) - RECENT_FAILURE_WINDOW)
    config = redis_config(redis)
    memory = redis_memory(redis)
    return Status(
        queue=keys.queue,
        shards=shard_statuses(redis, keys, offsets, now_ms=seconds * 1000 + micros // 1000),
        dead_letters=sum(n for _r, n in reasons),
        dead_letter_reasons=group_reasons(reasons),
        workers=[_worker_info(w) for w in registered_workers(queue)],
        failed_jobs=failed,
        failed_jobs_last_hour=recent,
        queued_jobs=queue.count,
        redis_config=config,
        warnings=redis_warnings(config) + memory_warnings(memory),
        memory=memory,
        installation_id=found[0].id if found else None,
    )


def read_offsets(conn: Connection) -> dict[int, tuple[str, datetime | None]]:
    rows = conn.execute(select(stream_offsets.c.shard, stream_offsets.c.last_id, stream_offsets.c.updated_at))
    return {r.shard: (r.last_id, r.updated_at) for r in rows}


def dead_letter_counts(conn: Connection) -> list[tuple[str, int]]:
    rows = conn.execute(select(rejected_events.c.reason, func.count()).group_by(rejected_events.c.reason))
    return [(reason, int(count)) for reason, count in rows]


def _worker_info(worker) -> WorkerInfo:
    state = worker.get_state()
    return WorkerInfo(name=worker.name, state=str(getattr(state, "value", state)),
                      current_job_id=worker.get_current_job_id(), last_heartbeat=worker.last_heartbeat)


def redis_config(redis: Redis) -> dict[str, str] | None:
    """The Redis settings that decide whether events survive; None if CONFIG is not allowed.

    On a cluster every master has its own settings, and one that may lose events loses
    its shards' events: the master whose settings draw the most warnings is shown.
    """
    per_node: dict[str, dict[str, str]] = {}
    try:
        for name in REDIS_SETTINGS:
            for node, answer in _per_master(redis, redis.config_get(name, **_masters(redis))).items():
                per_node.setdefault(node, {}).update({_decoded(k): _decoded(v) for k, v in answer.items()})
    except redis_lib.ResponseError:
        return None
    return max(per_node.values(), key=lambda config: len(redis_warnings(config)), default={})


def redis_memory(redis: Redis) -> Memory | None:
    """Memory used against maxmemory; on a cluster, the fullest master's (each master has its own limit)."""
    try:
        per_node = _per_master(redis, redis.info("memory", **_masters(redis)))
    except redis_lib.ResponseError:
        return None
    found = [Memory(int(i.get("used_memory", 0)), int(i.get("maxmemory", 0))) for i in per_node.values()]
    return max(found, key=lambda m: (m.share or 0.0, m.used_bytes), default=None)


def _masters(redis: Redis) -> dict:
    """Options that send a server command to every master of a cluster (by default a cluster client asks one)."""
    return {"target_nodes": RedisCluster.PRIMARIES} if isinstance(redis, RedisCluster) else {}


def _per_master(redis: Redis, reply) -> dict:
    """A reply to `_masters` by node: a cluster client answers {node name: reply}, but a lone node just the reply."""
    if isinstance(redis, RedisCluster) and len(redis.get_primaries()) > 1:
        return reply
    return {"": reply}


def _decoded(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
