"""`readrate worker`: the process that runs drain jobs (through the RQ adapter) and the sweep.

The worker is an RQ `SimpleWorker` (no fork per job): a drain job is long and
cheap to set up once, and the engine, Redis clients and batch reader live as long
as the process. Only readrate's own drain job runs here — the JSON serializer
refuses pickled jobs, and the adapter's `DrainJob` refuses any other function.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
import uuid

import redis as redis_lib
from rq.exceptions import StopRequested

from readrate.events.connections import SWEEP, WORKER, redis_client, stream_client
from readrate.events.errors import DatabaseUnavailable, ReadrateError
from readrate.events.installation import RecordWatch
from readrate.events.jobs import drain_queue
from readrate.events.settings import Settings

from . import archive
from .backlog import backlog
from .db import check_database, make_engine, upgrade
from .drain import Drainer, DrainTotals
from .installation import establish
from .rqadapter import DrainWorker
from .sweep import OUTAGE_LOG_INTERVAL_S, Sweeper

log = logging.getLogger("readrate.worker")
# Longest wait between attempts to reach Redis again after it dropped.
MAX_RECONNECT_WAIT_S = 10.0
# RQ's worker blocks on BLPOP for up to its dequeue timeout (405 s by default): its socket waits longer.
RQ_SOCKET_TIMEOUT_S = 500


class WorkerProcess:
    """Everything one `readrate worker` process runs: migrations, the RQ worker, the sweep."""

    def __init__(self, settings: Settings, *, name: str | None = None, logging_level: str = "WARNING") -> None:
        self.settings = settings
        # One RQ name for the life of the process: after a Redis outage the worker registers again
        # under it instead of leaving a second, dead-looking registration behind.
        self.name = name or uuid.uuid4().hex
        self.logging_level = logging_level
        self.engine = make_engine(settings.database_url, create=True)
        # RQ's own connection (the queue Redis): it blocks on BLPOP longer than any profile.
        self.redis = redis_client(settings.queue_redis_url, WORKER, socket_timeout_s=RQ_SOCKET_TIMEOUT_S)
        self.streams = stream_client(settings.redis_url, WORKER, cluster=settings.cluster)
        self.queue = drain_queue(self.redis, settings.keys)
        self.drainer = Drainer(settings, engine=self.engine, redis=self.streams,
                               queue_redis=redis_client(settings.queue_redis_url, WORKER),
                               watch=RecordWatch(self.streams, settings.keys))
        sweep_streams = stream_client(settings.redis_url, SWEEP, cluster=settings.cluster)
        self.sweeper = Sweeper(sweep_streams, settings.keys,
                               drain_queue(redis_client(settings.queue_redis_url, SWEEP), settings.keys),
                               watch=RecordWatch(sweep_streams, settings.keys), direct=self._drain_here)
        # The sweep thread's own drainer, for a full Redis (made when first needed).
        self._sweep_drainer: Drainer | None = None
        self._full_since: float | None = None
        self.stop = threading.Event()
        self.prepared = False

    # -- a full Redis ------------------------------------------------------------------------------
    # At `maxmemory` with `noeviction` Redis refuses every command that may grow memory: RQ cannot
    # register, dequeue or enqueue, no doorbell can be rung. A drain only reads, trims and deletes (its
    # lease script is flagged allow-oom), so the sweep drains shards with backlog right here instead,
    # which frees the memory; RQ picks up again once there is room.

    def _drain_here(self, shard: int) -> None:
        """Drain `shard` in the calling thread (start-up or --burst: no RQ job is running)."""
        self._drain_directly(self.drainer, shard)

    def _drain_in_sweep(self, shard: int) -> None:
        """Drain `shard` in the sweep thread, with a drainer of its own (the RQ loop keeps the other)."""
        if self._sweep_drainer is None:
            streams = stream_client(self.settings.redis_url, WORKER, cluster=self.settings.cluster)
            self._sweep_drainer = Drainer(self.settings, engine=self.engine, redis=streams,
                                          queue_redis=redis_client(self.settings.queue_redis_url, WORKER),
                                          watch=RecordWatch(streams, self.settings.keys))
        self._drain_directly(self._sweep_drainer, shard)

    def _drain_directly(self, drainer: Drainer, shard: int) -> None:
        now = time.monotonic()
        if self._full_since is None or now - self._full_since > OUTAGE_LOG_INTERVAL_S:
            log.warning("Redis is full (maxmemory, noeviction): draining shard %d here, without RQ, to free "
                        "memory", shard)
            self._full_since = now
        try:
            drainer.drain(shard)
        except DatabaseUnavailable as exc:
            log.warning("shard %d: the database is unreachable (%s); the events wait in Redis", shard, exc)

    def prepare(self) -> None:
        """Apply migrations, check the installation record, and enqueue drains for every shard with backlog."""
        if self.prepared:
            return
        self.prepared = True
        upgrade(self.engine)
        self.settings = establish(self.engine, self.streams, self.settings)
        archive.prepare(self.engine, self.settings.archive)
        self.drainer.follow(force=True)
        # A worker that died mid-job left no job behind: start-up cannot tell, so it asks for all.
        self.sweeper.sweep_once(force=True)
        # Everything loaded so far (SQLAlchemy, RQ, Alembic: a few hundred thousand objects) lives as
        # long as the process: keep it out of the collector's way, so each collection during a batch
        # only walks what the batch allocated.
        gc.collect()
        gc.freeze()

    def _worker(self) -> DrainWorker:
        worker = DrainWorker([self.queue], connection=self.redis, drainer=self.drainer, name=self.name,
                             serializer=self.queue.serializer)
        worker.log.setLevel(self.logging_level)
        return worker

    def run_burst(self, *, timeout_s: float = 3600.0) -> DrainTotals:
        """Drain every shard until no backlog is left, then return."""
        self.prepare()
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                try:
                    self._worker().work(burst=True, logging_level=self.logging_level)
                except redis_lib.OutOfMemoryError:
                    pass  # RQ cannot register in a full Redis: the sweep below drains directly
                if self.drainer.fatal is not None:
                    raise self.drainer.fatal
                # Stopped by SIGTERM/SIGINT: the batch in hand was applied, the rest waits in Redis.
                if self.drainer.stopping.is_set() or not backlog(self.streams, self.sweeper.follow()):
                    return self.drainer.totals
                check_database(self.engine)  # a failed drain because the database is down: say so
                if time.monotonic() > deadline:
                    raise ReadrateError(f"burst drain gave up after {timeout_s:.0f} s with a backlog left")
                # Another drain (or a dead worker's lease) holds a shard: wait, then ask again.
                time.sleep(0.2)
                self.sweeper.sweep_once(force=True)
        except StopRequested:  # a signal between two RQ runs: no job is in hand
            return self.drainer.totals

    def run_forever(self) -> None:
        """Work until SIGTERM/SIGINT; reconnect when Redis drops."""
        self.prepare()
        self.sweeper.direct = self._drain_in_sweep
        sweep = threading.Thread(target=self.sweeper.run, name="readrate-sweep",
                                 args=(self.stop, self.settings.sweep_interval_ms / 1000), daemon=True)
        sweep.start()
        wait_s = 0.5
        try:
            while not self.stop.is_set() and not self.drainer.stopping.is_set():
                worker = self._worker()
                started = time.monotonic()
                try:
                    worker.work(logging_level=self.logging_level)
                except redis_lib.OutOfMemoryError:
                    log.info("Redis is full: RQ waits for room; the sweep drains shards directly meanwhile")
                except redis_lib.RedisError as exc:
                    log.warning("Redis unavailable (%s); reconnecting in %.1f s", exc, wait_s)
                if worker.stop_asked or self.drainer.stopping.is_set():
                    break
                if time.monotonic() - started > MAX_RECONNECT_WAIT_S:
                    wait_s = 0.5  # it worked for a while: a new outage starts the backoff afresh
                self.drainer.stopping.wait(wait_s)
                wait_s = min(wait_s * 2, MAX_RECONNECT_WAIT_S)
        except StopRequested:
            pass  # SIGTERM/SIGINT between two RQ worker runs (reconnecting): no job is in hand
        finally:
            self.stop.set()
            if self._sweep_drainer is not None:
                self._sweep_drainer.stopping.set()
            sweep.join(timeout=10)
            self.close()
        if self.drainer.fatal is not None:
            raise self.drainer.fatal

    def close(self) -> None:
        if self._sweep_drainer is not None:
            self._sweep_drainer.close()
        self.drainer.close()
        self.sweeper.redis.close()
        self.sweeper.queue.connection.close()
        self.streams.close()
        self.redis.close()
