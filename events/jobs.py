"""How producers hand a shard to the workers: the RQ queue and the drain job, by name.

`events` never imports `workers`; it names the job by its import path, which
RQ resolves in the worker process. Jobs carry only a shard number, serialized
as JSON — never pickled data from pages.
"""

from __future__ import annotations

import re
import uuid

from redis import Redis
from rq import Queue, Retry
from rq.serializers import JSONSerializer

from .wire import Keys

DRAIN_JOB = "readrate.workers.drain.drain_shard"
# Backoff when the database is unreachable: the events wait in Redis meanwhile.
RETRY_INTERVALS_S = [1, 2, 5, 10, 30, 60]
# A drain job hands over after a few seconds; this only bounds a stuck one. RQ lists a worker as alive
# for this long plus a minute after it last beat, so it also bounds how long a killed worker shows.
DRAIN_TIMEOUT_S = 120
# RQ job ids allow only these characters.
_SAFE = re.compile(r"[^A-Za-z0-9_-]")


def drain_queue(redis: Redis, keys: Keys) -> Queue:
    """The RQ queue drain jobs for this installation go through (JSON serializer only)."""
    return Queue(keys.queue, connection=redis, serializer=JSONSerializer)


def enqueue_drains(queue: Queue, shards: list[int]) -> None:
    """Enqueue a drain job for each of `shards` in one round trip on the queue's own connection (with a
    Redis Cluster or READRATE_QUEUE_URL it is not the streams'). Raises the RedisError if that fails:
    the events are already stored, and the workers' sweep enqueues within a second."""
    if not shards:
        return
    with queue.connection.pipeline() as pipe:
        for shard in shards:
            enqueue_drain(queue, shard, pipeline=pipe)
        pipe.execute()


def enqueue_drain(queue: Queue, shard: int, *, pipeline=None):
    """Enqueue one `drain_shard(shard)` job, retried with backoff if it fails."""
    return queue.enqueue(
        DRAIN_JOB,
        shard,
        # Job ids carry the queue name, so one installation's jobs can be told from another's.
        job_id=f"{_SAFE.sub('_', queue.name)}-drain-{shard}-{uuid.uuid4().hex}",
        retry=Retry(max=len(RETRY_INTERVALS_S), interval=RETRY_INTERVALS_S),
        job_timeout=DRAIN_TIMEOUT_S,
        result_ttl=60,
        failure_ttl=7 * 24 * 3600,
        description=f"drain shard {shard}",
        pipeline=pipeline,
    )
