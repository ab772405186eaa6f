"""The sweep: every half second, make sure each shard with backlog has a drain job coming.

Producers that cannot enqueue RQ jobs (a PHP page, `redis-cli`) only XADD; the
sweep rings the doorbell for them and enqueues the drain. It also rescues a
shard whose job was lost (a worker killed mid-job): if the doorbell has been
ringing for a while and nobody holds the lease, it enqueues again. Duplicate
jobs are harmless — the second finds the lease held or the stream empty.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import redis as redis_lib
from redis import Redis
from rq import Queue

from readrate.events.installation import RecordWatch, publish
from readrate.events.jobs import enqueue_drain
from readrate.events.wire import DOORBELL_TTL_MS, Keys

from .rqadapter import RetryMover

log = logging.getLogger("readrate.sweep")
# A doorbell older than this with no lease held means the job that should drain the shard is gone.
STALE_DOORBELL_MS = 3_000
# While Redis is down the sweep says so at most this often.
OUTAGE_LOG_INTERVAL_S = 30.0


class Sweeper:
    """Enqueues drains for shards with backlog, and moves due RQ retries back onto the queue."""

    def __init__(self, redis: Redis, keys: Keys, queue: Queue, *, stale_ms: int = STALE_DOORBELL_MS,
                 watch: RecordWatch | None = None, direct: Callable[[int], object] | None = None) -> None:
        self.redis = redis
        self.keys = keys
        self.queue = queue
        self.stale_ms = stale_ms
        # Drains a shard in this process when Redis is too full to ring its doorbell or queue its job.
        self.direct = direct
        # The installation record: followed for `config set shards`, published again if Redis lost it.
        self.watch = watch
        self._retries = RetryMover(queue.connection, queue)

    def follow(self) -> Keys:
        """The shards to sweep, as the installation record has them now."""
        if self.watch is None:
            return self.keys
        record = self.watch.current()
        if record is not None:
            if self.watch.missing:  # a Redis restarted without persistence: producers need the record back
                publish(self.redis, self.keys, record)
                self.watch.missing = False
            self.keys = record.keys(self.keys.prefix)
        return self.keys

    def sweep_once(self, *, force: bool = False) -> list[int]:
        """One pass over all shards; returns the shards a drain was enqueued for.

        `force` enqueues for every shard with backlog whatever its doorbell says
        (a worker starting up after a crash does this).
        """
        keys = self.follow()
        pipe = self.redis.pipeline(transaction=False)
        for shard in keys.drained:
            pipe.xlen(keys.stream(shard))
            pipe.pttl(keys.doorbell(shard))
            pipe.exists(keys.lease(shard))
        replies = pipe.execute()
        enqueued = []
        for shard in keys.drained:
            backlog, doorbell_ttl_ms, leased = replies[3 * shard: 3 * shard + 3]
            if not backlog:
                continue
            try:
                if self._ring(keys, shard, doorbell_ttl_ms, leased, force):
                    enqueued.append(shard)
            except redis_lib.OutOfMemoryError:
                # Redis is full (maxmemory, noeviction): no doorbell, no job can be written, but a drain
                # only reads, deletes and trims, which Redis still allows, and so frees the memory.
                if self.direct is None:
                    raise
                self.direct(shard)
        try:
            self._retries.move_due()
        except redis_lib.OutOfMemoryError:
            pass  # retries wait until Redis has room again; their shards are drained directly meanwhile
        return enqueued

    def _ring(self, keys: Keys, shard: int, doorbell_ttl_ms: int, leased: int, force: bool) -> bool:
        """Ring the shard's doorbell and enqueue its drain, unless a drain is already coming; True if enqueued."""
        doorbell = keys.doorbell(shard)
        if doorbell_ttl_ms == -2:  # no doorbell: nobody has asked for a drain yet
            if not self.redis.set(doorbell, 1, nx=True, px=DOORBELL_TTL_MS):
                return False
        elif not force and (leased or DOORBELL_TTL_MS - doorbell_ttl_ms < self.stale_ms):
            return False
        else:
            self.redis.set(doorbell, 1, px=DOORBELL_TTL_MS)
        enqueue_drain(self.queue, shard)
        return True

    def release(self) -> None:
        self._retries.release()

    def run(self, stop: threading.Event, interval_s: float) -> None:
        """Sweep every `interval_s` until `stop` is set; Redis outages are logged and waited out."""
        down_since = last_said = None
        while not stop.wait(interval_s):
            try:
                self.sweep_once()
            except redis_lib.RedisError as exc:
                # Twice a second for the whole outage would bury the log: say it once, then now and then.
                now = time.monotonic()
                down_since = down_since or now
                if last_said is None or now - last_said >= OUTAGE_LOG_INTERVAL_S:
                    last_said = now
                    log.warning("sweep: Redis unavailable for %.0f s (%s); retrying", now - down_since, exc)
                continue
            except Exception:  # a bug here must not silently stop the sweep for good
                log.exception("sweep failed; retrying")
            if down_since is not None:
                log.warning("sweep: Redis is back after %.0f s", time.monotonic() - down_since)
                down_since = last_said = None
        try:
            self.release()
        except redis_lib.RedisError:
            pass
