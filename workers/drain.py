"""The RQ job `drain_shard(shard)`: read a shard's stream in batches and apply each exactly once.

Per batch (DESIGN.md, "Aggregation, exactly once"): XRANGE after the committed
offset, `aggregate()`, apply in one transaction guarded by the offset CAS, then
XTRIM what was applied. The job holds the shard's lease while it works, keeps
going while the shard has entries (up to a time budget, then hands over to a
follow-up job), clears the doorbell and re-checks once so an event that raced
the clear is not stranded.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass

from redis import Redis
from rq import get_current_job
from sqlalchemy import Engine

from events.emitter import now_ms
from events.errors import DatabaseUnavailable
from events.jobs import drain_queue, enqueue_drain
from events.settings import Settings
from events.wire import Decoder

from .aggregate import Batch, aggregate
from .db import make_engine, reachable, writing
from .lease import Lease
from .timeconv import utc_now
from .writer import apply_batch, read_offset

log = logging.getLogger("readrate.drain")
# A drain job hands over after this long, so one busy shard cannot starve the others.
DRAIN_BUDGET_S = 5.0
# Extra lease time a failed job keeps past its retry interval, so its retry finds the lease its own.
RETRY_LEASE_SLACK_MS = 2_000


def _settle(future: Future) -> None:
    """Wait for a read nobody will use (so two never run at once); its errors do not matter."""
    try:
        future.result()
    except Exception:  # noqa: BLE001 - the read was speculative
        pass


def _raw(response, **_options):
    return response


def next_id(stream_id: str) -> str:
    """The smallest stream id after `stream_id` (XTRIM MINID keeps ids >= it)."""
    ms, _, seq = stream_id.partition("-")
    return f"{ms}-{int(seq or 0) + 1}"


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
    """Drains shards into the database; one per worker process, holding its engine and Redis client."""

    def __init__(self, settings: Settings, *, engine: Engine, redis: Redis, budget_s: float = DRAIN_BUDGET_S) -> None:
        self.settings = settings
        self.keys = settings.keys
        self.engine = engine
        self.redis = redis
        self.budget_s = budget_s
        self.stopping = threading.Event()
        self.totals = DrainTotals()
        self.decoder = Decoder(settings.rating_scale)  # used by the reader thread only
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="readrate-reader")
        # Raw XRANGE replies (flat field lists): aggregate() builds the dicts itself, once.
        redis.set_response_callback("XRANGE", _raw)
        self._queue = drain_queue(redis, self.keys)

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs) -> Drainer:
        redis = Redis.from_url(settings.redis_url, socket_connect_timeout=5, socket_timeout=30, health_check_interval=30)
        return cls(settings, engine=make_engine(settings.database_url), redis=redis, **kwargs)

    def close(self) -> None:
        self._reader.shutdown(wait=True)
        self.engine.dispose()
        self.redis.close()

    def __enter__(self) -> Drainer:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def drain(self, shard: int, *, token: str | None = None) -> DrainResult:
        """Drain `shard` until it is empty, the budget runs out, or the worker is stopping."""
        if not 0 <= shard < self.settings.shards:
            raise ValueError(f"shard {shard} is out of range; accepted: 0-{self.settings.shards - 1}")
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
            except BaseException:
                lease.release()
                raise
            lease.release()
            # An event that arrived while we held the lease may have had its own job turned away as
            # busy: look once more after letting go, and take the shard back if it has entries.
            if result.handed_over or self.stopping.is_set() or not self._pending(shard, self._offset(shard)):
                return result
        result.busy = result.batches == 0
        return result

    def _drain(self, shard: int, lease: Lease, result: DrainResult, deadline: float) -> None:
        stream = self.keys.stream(shard)
        offset = self._offset(shard)
        # The next batch is read and folded in a second thread while this one is applied: the
        # database works with the GIL released, so XRANGE and aggregate() overlap with it
        # (measured: +25-40% events/s). It reads from where this batch ends; if the offset
        # CAS fails, that read is thrown away and the shard re-read from the committed offset.
        ahead = self._reader.submit(self._read, stream, offset)
        try:
            with writing(self.engine.connect()) as conn:
                while not self.stopping.is_set():
                    batch = ahead.result()
                    if batch is None:
                        # Entries a drain killed between commit and XTRIM left behind are applied: trim
                        # them, or they count as backlog forever (the sweep re-enqueues, --burst never ends).
                        self.redis.xtrim(stream, minid=next_id(offset), approximate=False)
                        self.redis.delete(self.keys.doorbell(shard))
                        if self._pending(shard, offset):
                            ahead = self._reader.submit(self._read, stream, offset)
                            continue
                        return
                    ahead = self._reader.submit(self._read, stream, batch.last_id)
                    if apply_batch(conn, shard, offset, batch, received_at=utc_now()):
                        offset = batch.last_id
                        # Exact: redis-py's default `MINID ~` evicts at most 10,000 entries a call.
                        self.redis.xtrim(stream, minid=next_id(offset), approximate=False)
                        self._count(result, batch)
                    else:
                        result.conflicts += 1
                        log.warning("shard %d: offset moved under us (another drain applied it); re-reading", shard)
                        offset = self._offset(shard)
                        _settle(ahead)
                        ahead = self._reader.submit(self._read, stream, offset)
                    if not lease.extend():
                        log.warning("shard %d: lease lost to another drain; leaving the shard to it", shard)
                        return
                    if time.monotonic() > deadline:
                        break
        finally:
            _settle(ahead)
        if self._pending(shard, offset):
            enqueue_drain(self._queue, shard)
            result.handed_over = True

    def _read(self, stream: str, offset: str) -> Batch | None:
        """The next batch after `offset`, folded; None if there is none."""
        entries = self.redis.xrange(stream, min=f"({offset}", count=self.settings.batch_size)
        return aggregate(entries, decoder=self.decoder, now_ms=now_ms()) if entries else None

    def _count(self, result: DrainResult, batch: Batch) -> None:
        result.entries += batch.entries
        result.batches += 1
        result.rejected += len(batch.rejected)
        self.totals.entries += batch.entries
        self.totals.rejected += len(batch.rejected)

    def _offset(self, shard: int) -> str:
        with self.engine.connect() as conn:
            return read_offset(conn, shard)

    def _pending(self, shard: int, offset: str) -> bool:
        return bool(self.redis.xrange(self.keys.stream(shard), min=f"({offset}", count=1))

    def _hold_for_retry(self, lease: Lease) -> None:
        """Keep the lease through the RQ retry's backoff: the retry (same job id) takes it back,
        and the sweep, seeing it held, does not pile more jobs onto an unreachable database."""
        job = get_current_job()
        if job is None or not job.retries_left:
            lease.release()
            return
        lease.extend(job.get_retry_interval() * 1000 + RETRY_LEASE_SLACK_MS)


# The Drainer of the worker process running the current job; set by workers.runner.
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
