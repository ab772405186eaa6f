"""Every place readrate reaches into RQ, in one module: the worker runtime's adapter.

RQ runs readrate's drain jobs, and a few of its behaviours do not fit a long-lived
worker that must never run foreign code nor die on a signal. Each override below
says what RQ does, why readrate needs otherwise, and which test holds it; they
reach RQ internals, so `pyproject.toml` pins RQ to the minor version they were
tested with. Nothing else in readrate subclasses RQ or reads its private attributes.
"""

from __future__ import annotations

import logging
import os
import signal
from datetime import datetime, timezone

import redis as redis_lib
from redis import Redis
from rq import Queue, SimpleWorker, Worker
from rq.exceptions import StopRequested
from rq.job import Job
from rq.registry import FailedJobRegistry
from rq.scheduler import RQScheduler
from rq.utils import utcparse

from readrate.events.errors import ReadrateError
from readrate.events.jobs import DRAIN_JOB

from .drain import Drainer, current_drainer

log = logging.getLogger("readrate.worker")
# Failed jobs whose end time is looked up for the recent count; older ones only count in the total.
FAILED_JOBS_INSPECTED = 1000


class RefusedJob(ReadrateError):
    """Raised when a job on readrate's queue names a function other than the drain job."""


class DrainJob(Job):
    """A job that runs only if it names readrate's drain job (JSON data, never pickle).

    Override of `Job._execute` (test: a JSON job naming `builtins.open` is refused).
    """

    def _execute(self):
        if self.func_name != DRAIN_JOB:
            raise RefusedJob(f"job {self.id} names {self.func_name!r}; readrate workers run only {DRAIN_JOB}")
        return super()._execute()


class DrainWorker(SimpleWorker):
    """An RQ worker (no fork per job) that hands its Drainer to each job and stops between batches."""

    def __init__(self, *args, drainer: Drainer, **kwargs) -> None:
        super().__init__(*args, job_class=DrainJob, **kwargs)
        self.drainer = drainer

    def execute_job(self, job, queue):
        """Override: the job finds the process's Drainer (engine, clients, reader) instead of building one.

        Test: a worker drains through its own Drainer (`drain_shard` under `current_drainer`)."""
        token = current_drainer.set(self.drainer)
        try:
            return super().execute_job(job, queue)
        finally:
            current_drainer.reset(token)
            if self.drainer.fatal is not None:  # this worker cannot drain at all: stop after this job
                self._stop_requested = True

    def request_stop(self, signum, frame):
        """Override: the running drain finishes its batch and hands over; with Redis down, stop at once.

        RQ asks Redis whether a job is in hand; with Redis down that raised out of the signal handler
        and the worker died with exit code 3. Test: SIGTERM while Redis is down exits 0."""
        self.drainer.stopping.set()
        try:
            return super().request_stop(signum, frame)
        except redis_lib.RedisError:
            raise StopRequested() from None

    def bootstrap(self, *args, **kwargs):
        """Override: a signal before RQ installs its handlers asks for a stop instead of killing.

        RQ registers the worker (it shows as started) before it installs its SIGTERM handler, and
        a SIGTERM in between killed the process (exit -15). Test: SIGTERM right after registration
        exits 0."""
        def stop_soon(signum, frame):
            self.drainer.stopping.set()
            self._stop_requested = True

        signal.signal(signal.SIGTERM, stop_soon)
        signal.signal(signal.SIGINT, stop_soon)
        return super().bootstrap(*args, **kwargs)

    def register_birth(self):
        """Override: take over this worker's own stale registration instead of refusing to start.

        RQ refuses a name that is still registered until the registration expires (7 to 11 minutes):
        a worker restarted under the same --name after a SIGKILL, or re-registering after a Redis
        crash, would wait that long. Taken over only when it is certainly this worker's own: same
        host, and its process is this one or gone. Test: a named worker SIGKILLed starts again at once."""
        hostname, pid, death = self.connection.hmget(self.key, "hostname", "pid", "death")
        if hostname is not None and pid is not None and death is None and hostname.decode() == self.hostname:
            pid = int(pid)
            if pid == os.getpid() or not process_alive(pid):
                log.warning("worker %s: taking over the registration its previous run (pid %d) left behind",
                            self.name, pid)
                self.connection.delete(self.key)
        return super().register_birth()

    def unsubscribe(self):
        """Override: the command thread's last moments, while the worker shuts down, print nothing.

        RQ's pub/sub thread waits up to 60 s for a command; on shutdown RQ waits only 1 s for it
        before closing its connection, and the thread, woken on a closed connection, raised out of
        RQ's handler and printed a traceback into the worker's log as the process exited.
        Test: an error in the command thread during shutdown ends the thread quietly."""
        self._unsubscribing = True
        return super().unsubscribe()

    def _pubsub_exception_handler(self, exc, pubsub, pubsub_thread):
        """Override (see `unsubscribe`): once the worker is shutting down, any error ends the thread."""
        if getattr(self, "_unsubscribing", False):
            pubsub_thread.stop()
            return None
        return super()._pubsub_exception_handler(exc, pubsub, pubsub_thread)

    def dequeue_job_and_maintain_ttl(self, timeout, max_idle_time=None):
        """Override: a job that cannot even be read (pickle, garbage) is refused and the worker goes on.

        RQ raises out of the work loop and the worker stops. Test: a pickled job is refused unread."""
        while True:
            try:
                return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
            except (redis_lib.RedisError, StopRequested):
                raise
            except Exception as exc:
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

    @property
    def stop_asked(self) -> bool:
        """True once a signal asked this worker to stop (RQ keeps it in private state)."""
        return self._stop_requested or self._shutdown_requested_date is not None


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


class RetryMover:
    """Moves RQ retries whose backoff is over back onto the queue.

    RQ parks a retry with a backoff in its scheduled registry, and one scheduler per
    queue moves it back when due. readrate does that from the sweep thread rather than
    in RQ's forked scheduler process, which a SIGKILLed worker would leave behind.
    """

    def __init__(self, redis: Redis, queue: Queue) -> None:
        self._scheduler = RQScheduler([queue], connection=redis, serializer=queue.serializer,
                                      logging_level=logging.WARNING)

    def move_due(self) -> None:
        self._scheduler.acquire_locks()
        if self._scheduler.acquired_locks:
            self._scheduler.enqueue_scheduled_jobs()

    def release(self) -> None:
        self._scheduler.release_locks()


def registered_workers(queue: Queue) -> list[Worker]:
    """The RQ workers registered on the queue (RQ drops a worker whose heartbeat key has expired)."""
    return sorted(Worker.all(queue=queue), key=lambda w: w.name)


def failed_jobs(queue: Queue, *, since: datetime) -> tuple[int, int]:
    """Jobs in the queue's failed registry: all of them, and those that ended at or after `since` (UTC)."""
    registry = FailedJobRegistry(queue=queue)
    ids = registry.get_job_ids(0, FAILED_JOBS_INSPECTED - 1, desc=True)
    pipe = queue.connection.pipeline(transaction=False)
    for job_id in ids:
        pipe.hget(Job.key_for(job_id), "ended_at")
    recent = 0
    for ended in pipe.execute() if ids else []:
        if ended is not None and utcparse(ended.decode()).replace(tzinfo=timezone.utc) >= since:
            recent += 1
    return registry.count, recent
