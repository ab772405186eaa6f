"""`readrate worker`: an RQ worker that runs drain jobs, plus the sweep, until told to stop.

The worker is an RQ `SimpleWorker` (no fork per job): a drain job is long and
cheap to set up once, and the engine and Redis clients live as long as the
process. Only readrate's own drain job runs here — the JSON serializer refuses
pickled jobs, and `DrainJob` refuses any other function a job might name.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import threading
import time
import uuid

import redis as redis_lib
from redis import Redis
from rq import SimpleWorker
from rq.job import Job
from rq.exceptions import StopRequested
from sqlalchemy import text

from events.errors import DatabaseUnavailable, ReadrateError
from events.jobs import DRAIN_JOB, drain_queue
from events.settings import Settings

from .db import make_engine, reachable, upgrade
from .drain import Drainer, DrainTotals, current_drainer
from .sweep import Sweeper
from .writer import ensure_offsets

log = logging.getLogger("readrate.worker")
# Longest wait between attempts to reach Redis again after it dropped.
MAX_RECONNECT_WAIT_S = 10.0


class RefusedJob(ReadrateError):
    """Raised when a job on readrate's queue names a function other than the drain job."""


class DrainJob(Job):
    """A job that runs only if it names readrate's drain job (JSON data, never pickle)."""

    def _execute(self):
        if self.func_name != DRAIN_JOB:
            raise RefusedJob(f"job {self.id} names {self.func_name!r}; readrate workers run only {DRAIN_JOB}")
        return super()._execute()


class DrainWorker(SimpleWorker):
    """An RQ worker that hands its Drainer to each job and stops it between batches on SIGTERM."""

    def __init__(self, *args, drainer: Drainer, **kwargs) -> None:
        super().__init__(*args, job_class=DrainJob, **kwargs)
        self.drainer = drainer

    def execute_job(self, job, queue):
        token = current_drainer.set(self.drainer)
        try:
            return super().execute_job(job, queue)
        finally:
            current_drainer.reset(token)

    def request_stop(self, signum, frame):
        # The running drain finishes its current batch, hands the shard over and returns.
        self.drainer.stopping.set()
        try:
            return super().request_stop(signum, frame)
        except redis_lib.RedisError:
            # RQ asks Redis whether a job is in hand; with Redis down there is nothing to save: stop now
            # (otherwise the Redis error escapes the signal handler and the worker dies with exit code 3).
            raise StopRequested() from None

    def bootstrap(self, *args, **kwargs):
        # RQ registers the worker (it shows as started) before it installs its SIGTERM handler, and a
        # SIGTERM in between killed the process (exit -15). Until then a signal only asks for a stop,
        # which RQ's work loop checks before it takes its first job.
        def stop_soon(signum, frame):
            self.drainer.stopping.set()
            self._stop_requested = True

        signal.signal(signal.SIGTERM, stop_soon)
        signal.signal(signal.SIGINT, stop_soon)
        return super().bootstrap(*args, **kwargs)

    def register_birth(self):
        self._forget_own_stale_registration()
        return super().register_birth()

    def _forget_own_stale_registration(self) -> None:
        """RQ refuses to start a worker whose name is still registered, until that registration
        expires (7 to 11 minutes). A worker restarted under the same --name after a SIGKILL, or
        re-registering after a Redis crash, would be refused that long. Take the registration
        over when it is certainly this worker's own: same host, and its process is this one or gone."""
        hostname, pid, death = self.connection.hmget(self.key, "hostname", "pid", "death")
        if hostname is None or pid is None or death is not None or hostname.decode() != self.hostname:
            return
        pid = int(pid)
        if pid == os.getpid() or not _process_alive(pid):
            log.warning("worker %s: taking over the registration its previous run (pid %d) left behind",
                        self.name, pid)
            self.connection.delete(self.key)

    def dequeue_job_and_maintain_ttl(self, timeout, max_idle_time=None):
        while True:
            try:
                return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
            except (redis_lib.RedisError, StopRequested):
                raise
            except Exception as exc:  # an undecodable job (pickle, garbage): refuse it, keep working
                if getattr(exc, "job_id", None) is None:
                    raise
                self._refuse(exc)

    def _refuse(self, exc: Exception) -> None:
        job_id = getattr(exc, "job_id", None)
        queue = getattr(exc, "queue", None)
        log.error("refused job %s on %s: %s (only JSON drain jobs run here)", job_id, queue, exc)
        if job_id and queue is not None:
            try:
                queue.failed_job_registry.add(Job(job_id, connection=self.connection), exc_string=repr(exc))
            except Exception:  # the job may be unreadable enough that RQ cannot even file it
                self.connection.delete(Job.key_for(job_id))


def check_database(engine) -> None:
    with reachable(str(engine.url)), engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def backlog(redis: Redis, settings: Settings) -> int:
    """Entries waiting in all streams (applied ones are trimmed right after commit)."""
    pipe = redis.pipeline(transaction=False)
    for shard in range(settings.shards):
        pipe.xlen(settings.keys.stream(shard))
    return sum(pipe.execute())


class WorkerProcess:
    """Everything one `readrate worker` process runs: migrations, the RQ worker, the sweep."""

    def __init__(self, settings: Settings, *, name: str | None = None, logging_level: str = "WARNING") -> None:
        self.settings = settings
        # One RQ name for the life of the process: after a Redis outage the worker registers again
        # under it instead of leaving a second, dead-looking registration behind.
        self.name = name or uuid.uuid4().hex
        self.logging_level = logging_level
        self.engine = make_engine(settings.database_url)
        self.redis = Redis.from_url(settings.redis_url, socket_connect_timeout=5)
        self.drainer = Drainer(settings, engine=self.engine, redis=Redis.from_url(
            settings.redis_url, socket_connect_timeout=5, socket_timeout=30, health_check_interval=30))
        self.queue = drain_queue(self.redis, settings.keys)
        self.sweeper = Sweeper(Redis.from_url(settings.redis_url, socket_connect_timeout=5, socket_timeout=10),
                               settings.keys, self.queue)
        self.stop = threading.Event()

    def prepare(self) -> None:
        """Apply migrations, create offset rows, and enqueue drains for every shard with backlog."""
        upgrade(self.engine)
        with reachable(self.settings.database_url):
            ensure_offsets(self.engine, self.settings.shards)
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
                self._worker().work(burst=True, logging_level=self.logging_level)
                # Stopped by SIGTERM/SIGINT: the batch in hand was applied, the rest waits in Redis.
                # (Without this check a stopped burst worker went round this loop until the deadline.)
                if self.drainer.stopping.is_set() or not backlog(self.redis, self.settings):
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
                except redis_lib.RedisError as exc:
                    log.warning("Redis unavailable (%s); reconnecting in %.1f s", exc, wait_s)
                if worker._stop_requested or self.drainer.stopping.is_set() or _stopped_by_signal(worker):
                    break
                if time.monotonic() - started > MAX_RECONNECT_WAIT_S:
                    wait_s = 0.5  # it worked for a while: a new outage starts the backoff afresh
                self.drainer.stopping.wait(wait_s)
                wait_s = min(wait_s * 2, MAX_RECONNECT_WAIT_S)
        except StopRequested:
            pass  # SIGTERM/SIGINT between two RQ worker runs (reconnecting): no job is in hand
        finally:
            self.stop.set()
            sweep.join(timeout=5)
            self.close()

    def close(self) -> None:
        self.drainer.close()
        self.redis.close()


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _stopped_by_signal(worker: DrainWorker) -> bool:
    return worker._shutdown_requested_date is not None
