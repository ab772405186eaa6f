"""The RQ job `drain_shard(shard)`: read a shard's stream in batches and apply each exactly once.

Per batch (DESIGN.md, "Aggregation, exactly once"): XRANGE after the committed
offset, `aggregate()`, apply in one transaction guarded by the offset CAS, then
XTRIM what was applied. The job holds the shard's lease while it works, keeps
going while the shard has entries (up to a time budget, then hands over to a
follow-up job), clears the doorbell and re-checks once so an event that raced
the clear is not stranded. Each choice is a pure function in `drainsteps`.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
import uuid
from dataclasses import asdict, dataclass, replace

import redis as redis_lib
from redis import Redis
from rq import get_current_job
from sqlalchemy import Connection, Engine

from readrate.events.clock import utc_now
from readrate.events.connections import WORKER, redis_client, stream_client
from readrate.events.errors import DatabaseUnavailable
from readrate.events.installation import RecordWatch
from readrate.events.jobs import drain_queue, enqueue_drain
from readrate.events.settings import Settings
from readrate.events.streamids import after, next_id

from .aggregate import Batch
from .archive import ArchiveRequired
from .db import make_engine, reachable, writing
from .drainsteps import Step, after_batch, check_shard, follow_up_needed, look_again, retry_hold_ms
from .lease import Lease
from .reader import BatchReader
from .writer import apply_batch, ensure_offsets, read_offset

log = logging.getLogger("readrate.drain")
# A drain job hands over after this long, so one busy shard cannot starve the others.
DRAIN_BUDGET_S = 5.0
# Extra lease time a failed job keeps past its retry interval, so its retry finds the lease its own.
RETRY_LEASE_SLACK_MS = 2_000


@dataclass
class DrainResult:
    """What one drain job did; RQ keeps it as the job's result."""

    shard: int
    entries: int = 0
    batches: int = 0
    rejected: int = 0
    conflicts: int = 0
    busy: bool = False
    handed_over: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class DrainTotals:
    """What a Drainer applied over its life, for the worker's closing line and benchmarks."""

    entries: int = 0
    rejected: int = 0


class Drainer:
    """Drains shards into the database; one per worker process, holding its engine, Redis client and reader."""

    def __init__(self, settings: Settings, *, engine: Engine, redis: Redis, reader: BatchReader | None = None,
                 budget_s: float = DRAIN_BUDGET_S, queue_redis: Redis | None = None,
                 watch: RecordWatch | None = None) -> None:
        self.settings = settings
        self.keys = settings.keys
        self.engine = engine
        self.redis = redis
        self.reader = reader or BatchReader.connect(settings, batch_size=settings.batch_size,
                                                    scale=settings.rating_scale)
        self.budget_s = budget_s
        self.stopping = threading.Event()
        # Set when this drainer must not go on at all (the installation archives and it cannot): the worker
        # stops and says why, rather than fail every job.
        self.fatal: ArchiveRequired | None = None
        self.totals = DrainTotals()
        self._queue_redis = queue_redis
        self._queue = drain_queue(queue_redis or redis, self.keys)
        # Follows `config set`: a shard added, a new rating scale. None: the settings' layout is fixed.
        self.watch = watch

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs) -> Drainer:
        redis = stream_client(settings.redis_url, WORKER, cluster=settings.cluster)
        return cls(settings, engine=make_engine(settings.database_url, create=True), redis=redis,
                   queue_redis=redis_client(settings.queue_redis_url, WORKER), watch=RecordWatch(redis, settings.keys), **kwargs)

    def close(self) -> None:
        self.reader.close()
        self.engine.dispose()
        self.redis.close()
        if self._queue_redis is not None:
            self._queue_redis.close()

    def follow(self, *, force: bool = False) -> None:
        """Take up the installation record's current shards and rating scale (read at most every few seconds)."""
        if self.watch is None:
            return
        record = self.watch.refresh() if force else self.watch.current()
        if record is None:
            return
        self.keys = record.keys(self.keys.prefix)
        self.reader.rescale(record.rating_scale)

    def __enter__(self) -> Drainer:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def drain(self, shard: int, *, token: str | None = None) -> DrainResult:
        """Drain `shard` until it is empty, the budget runs out, or the worker is stopping."""
        self.follow(force=shard not in self.keys.drained)
        check_shard(shard, len(self.keys.drained))
        lease = Lease(self.redis, self.keys.lease(shard), token or uuid.uuid4().hex, self.settings.lease_ms)
        result = DrainResult(shard)
        deadline = time.monotonic() + self.budget_s
        while lease.acquire():
            try:
                with reachable(self.settings.database_url):
                    self._drain(shard, lease, result, deadline)
            except DatabaseUnavailable:
                self._hold_for_retry(lease)
                raise
            except ArchiveRequired as exc:
                self.fatal = exc
                self.stopping.set()
                lease.release()
                raise
            except BaseException:
                lease.release()
                raise
            lease.release()
            if not look_again(handed_over=result.handed_over, stopping=self.stopping.is_set(),
                              pending=self._pending(shard, self._offset(shard))):
                return result
        return replace(result, busy=result.batches == 0)

    def _drain(self, shard: int, lease: Lease, result: DrainResult, deadline: float) -> None:
        stream = self.keys.stream(shard)
        offset = self._offset(shard)
        self.reader.start(stream, offset, shard, first=True)
        try:
            with writing(self.engine.connect()) as conn:
                while not self.stopping.is_set():
                    batch = self.reader.take()
                    if batch is None:
                        self._ran_dry(shard, offset)
                        if not self._pending(shard, offset):
                            return
                        # an entry raced the doorbell's clearing
                        self.reader.start(stream, offset, shard, first=True)
                        continue
                    self.reader.start(stream, batch.last_id, shard)
                    offset = self._apply(conn, shard, offset, batch, result)
                    step = after_batch(lease_held=lease.extend(), out_of_time=time.monotonic() > deadline,
                                       stopping=self.stopping.is_set())
                    if step is Step.LEAVE:
                        log.warning("shard %d: lease lost to another drain; leaving the shard to it", shard)
                        return
                    if step is Step.HAND_OVER:
                        break
        finally:
            self.reader.drop()
        if follow_up_needed(pending=self._pending(shard, offset)):
            try:
                enqueue_drain(self._queue, shard)
            except redis_lib.RedisError as exc:  # a full queue Redis: the sweep asks again
                log.warning("shard %d: could not enqueue the follow-up drain (%s); the sweep will", shard, exc)
            result.handed_over = True

    def _apply(self, conn: Connection, shard: int, offset: str, batch: Batch, result: DrainResult) -> str:
        """Apply one batch; the offset the next batch follows (re-read if another drain got there first)."""
        # On an error the batch's archive files stay: the commit may have gone through all the same,
        # and clean() removes them later only if no committed batch names them.
        archive = self.reader.archive
        if apply_batch(conn, shard, offset, batch, received_at=utc_now(),
                       archive_root=None if archive is None else str(archive.root)):
            # Exact: redis-py's default `MINID ~` evicts at most 10,000 entries a call.
            self.redis.xtrim(self.keys.stream(shard), minid=next_id(batch.last_id), approximate=False)
            self._count(result, batch)
            return batch.last_id
        # Certainly not committed: another drain applied these entries.
        self.reader.discard(batch)
        result.conflicts += 1
        log.warning("shard %d: offset moved under us (another drain applied it); re-reading", shard)
        offset = self._offset(shard)
        self.reader.start(self.keys.stream(shard), offset, shard)
        return offset

    def _ran_dry(self, shard: int, offset: str) -> None:
        # Entries a drain killed between commit and XTRIM left behind are applied: trim them, or they
        # count as backlog forever (the sweep re-enqueues, --burst never ends).
        self.redis.xtrim(self.keys.stream(shard), minid=next_id(offset), approximate=False)
        self.redis.delete(self.keys.doorbell(shard))

    def _count(self, result: DrainResult, batch: Batch) -> None:
        result.entries += batch.entries
        result.batches += 1
        result.rejected += len(batch.rejected)
        self.totals.entries += batch.entries
        self.totals.rejected += len(batch.rejected)

    def _offset(self, shard: int) -> str:
        with self.engine.connect() as conn:
            offset = read_offset(conn, shard)
        if offset is None:  # a shard added by `config set shards` since this database was set up
            ensure_offsets(self.engine, shard + 1)
            return self._offset(shard)
        return offset

    def _pending(self, shard: int, offset: str) -> bool:
        return bool(self.redis.xrange(self.keys.stream(shard), min=after(offset), count=1))

    def _hold_for_retry(self, lease: Lease) -> None:
        job = get_current_job()
        hold_ms = None if job is None else retry_hold_ms(
            retries_left=job.retries_left, retry_interval_s=job.get_retry_interval(), slack_ms=RETRY_LEASE_SLACK_MS)
        if hold_ms is None:
            lease.release()
        else:
            lease.extend(hold_ms)


# The Drainer of the worker process running the current job; set by the worker runtime (rqadapter).
current_drainer: contextvars.ContextVar[Drainer] = contextvars.ContextVar("readrate_drainer")


def drain_shard(shard: int) -> dict:
    """RQ job: drain one shard. Carries only the shard number (JSON)."""
    job = get_current_job()
    token = job.id if job is not None else None
    drainer = current_drainer.get(None)
    if drainer is not None:
        return drainer.drain(int(shard), token=token).as_dict()
    # Under a plain `rq worker`: build a drainer from the environment for this one job.
    with Drainer.from_settings(Settings.from_env()) as drainer:
        return drainer.drain(int(shard), token=token).as_dict()
