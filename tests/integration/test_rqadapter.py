"""The worker runtime's adapter (workers/rqadapter.py), one test per RQ override, in-process against a
real Redis: what RQ would do without the override is what each test rules out.

The overrides that only show in a whole process are tested there too: SIGTERM in the first
moments after registration (bootstrap) and SIGTERM with Redis down (request_stop) in
tests/faults/test_worker_resilience.py, refused jobs in tests/faults/test_refused_jobs.py.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from redis.client import PubSub
from rq import Queue, Retry
from rq.exceptions import StopRequested
from rq.job import Job
from rq.registry import FailedJobRegistry, ScheduledJobRegistry
from rq.serializers import JSONSerializer, PickleSerializer
from rq.worker import WorkerStatus

from readrate.events import Emitter
from readrate.events.jobs import DRAIN_JOB, drain_queue, enqueue_drain
from readrate.reports.localredis import RedisServer
from readrate.workers.drain import Drainer, current_drainer
from readrate.workers.rqadapter import DrainJob, DrainWorker, RefusedJob, RetryMover, failed_jobs
from helpers import counters


@pytest.fixture
def drainer(settings, engine, redis):
    with Drainer(settings, engine=engine, redis=redis.__class__.from_url(settings.redis_url)) as made:
        yield made


@pytest.fixture(autouse=True)
def default_signal_handlers():
    """RQ installs handlers in this process; put Python's back after each test."""
    saved = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    yield
    signal.signal(signal.SIGTERM, saved[0])
    signal.signal(signal.SIGINT, saved[1])


def worker_for(settings, redis, drainer, **kwargs) -> DrainWorker:
    queue = drain_queue(redis, settings.keys)
    return DrainWorker([queue], connection=redis, drainer=drainer, serializer=JSONSerializer,
                       name=f"{settings.prefix}-w", **kwargs)


def test_a_job_naming_any_function_but_the_drain_job_is_refused_before_it_runs(settings, redis, tmp_path):
    queue = Queue(settings.keys.queue, connection=redis, serializer=JSONSerializer)
    marker = tmp_path / "made"
    job = queue.enqueue("os.mkdir", str(marker), job_id=f"{settings.prefix}-foreign")
    refused = DrainJob.fetch(job.id, connection=redis, serializer=JSONSerializer)

    with pytest.raises(RefusedJob, match=f"readrate workers run only {DRAIN_JOB}"):
        refused.perform()

    assert not marker.exists()


def test_a_burst_worker_runs_drain_jobs_with_the_processes_drainer_and_lets_go_of_it_after(
        settings, engine, redis, drainer):
    emitter = Emitter(redis, keys=settings.keys, scale=settings.rating_scale, strict=True, enqueue=False)
    assert emitter.read("adapter-article")
    shard = settings.keys.shard_of("adapter-article")
    job = enqueue_drain(drain_queue(redis, settings.keys), shard)

    assert worker_for(settings, redis, drainer).work(burst=True) is True

    assert counters(engine) == {"adapter-article": (1, 0, 0.0)}
    result = Job.fetch(job.id, connection=redis, serializer=JSONSerializer).latest_result().return_value
    assert result["entries"] == 1 and result["shard"] == shard
    assert drainer.totals.entries == 1  # counted by the process's Drainer, not one built for the job
    assert current_drainer.get(None) is None


def test_a_stop_asked_while_redis_is_down_stops_the_worker_instead_of_raising_a_redis_error(
        settings, engine, drainer):
    server = RedisServer().start()
    try:
        from redis import Redis

        private = Redis.from_url(server.url)
        worker = worker_for(settings, private, drainer)
        worker.set_state(WorkerStatus.BUSY)  # RQ then writes the request to Redis, which is gone
        server.stop()

        with pytest.raises(StopRequested):
            worker.request_stop(signal.SIGTERM, None)

        assert drainer.stopping.is_set()
        assert worker.stop_asked
    finally:
        server.stop()


def test_a_worker_is_not_stopping_until_asked(settings, redis, drainer):
    worker = worker_for(settings, redis, drainer)
    assert not worker.stop_asked
    with pytest.raises(StopRequested):  # idle: RQ stops at once
        worker.request_stop(signal.SIGTERM, None)
    assert worker.stop_asked


def test_a_signal_during_bootstrap_asks_for_a_stop_instead_of_killing_the_process(settings, redis, drainer):
    # A client of its own: bootstrap starts RQ's pubsub thread on it, which may outlive the test by
    # up to a minute, and must not find the shared client closed under it.
    worker = worker_for(settings, redis.__class__.from_url(settings.redis_url), drainer)
    seen = {}

    def register_birth():  # the moment RQ shows the worker as started, before its own handlers exist
        signal.raise_signal(signal.SIGTERM)
        seen["stopping"] = drainer.stopping.is_set()
        seen["stop_requested"] = worker._stop_requested

    worker.register_birth = register_birth
    try:
        worker.bootstrap(logging_level="WARNING")
    finally:
        worker.unsubscribe()

    assert seen == {"stopping": True, "stop_requested": True}


class BrokenCommandThread:
    """RQ's command (pub/sub) thread, polling quickly, whose reads fail once `broken` is set.

    During a shutdown the failure comes while RQ unsubscribes, before it stops the thread: what a
    read on a connection closed under the thread did on a loaded machine."""

    def __init__(self, monkeypatch) -> None:
        self.broken = threading.Event()
        self.printed: list[BaseException] = []
        get_message, unsubscribe = PubSub.get_message, PubSub.unsubscribe
        broken = self.broken

        def failing_get_message(pubsub, **kwargs):
            if broken.is_set():
                raise RuntimeError("pubsub connection not set")
            return get_message(pubsub, ignore_subscribe_messages=True, timeout=0.02)

        def unsubscribe_slowly(pubsub, *args):
            broken.set()
            time.sleep(0.3)  # the thread fails while it is still meant to run
            return unsubscribe(pubsub, *args)

        monkeypatch.setattr(PubSub, "get_message", failing_get_message)
        monkeypatch.setattr(PubSub, "unsubscribe", unsubscribe_slowly)
        monkeypatch.setattr(threading, "excepthook", lambda args: self.printed.append(args.exc_value))


def test_an_error_in_rqs_command_thread_while_the_worker_shuts_down_ends_the_thread_quietly(
        settings, redis, drainer, monkeypatch):
    thread = BrokenCommandThread(monkeypatch)
    worker = worker_for(settings, redis.__class__.from_url(settings.redis_url), drainer)
    worker.subscribe()
    worker.unsubscribe()
    worker.pubsub_thread.join(timeout=5)
    assert not worker.pubsub_thread.is_alive()
    assert thread.printed == []


def test_an_error_in_rqs_command_thread_while_the_worker_runs_is_still_rqs_to_report(
        settings, redis, drainer, monkeypatch):
    thread = BrokenCommandThread(monkeypatch)
    worker = worker_for(settings, redis.__class__.from_url(settings.redis_url), drainer)
    worker.subscribe()
    thread.broken.set()
    worker.pubsub_thread.join(timeout=5)
    assert [type(e) for e in thread.printed] == [RuntimeError]
    worker.pubsub.close()


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_registration_left_by_this_workers_dead_previous_run_is_taken_over(settings, redis, drainer):
    worker = worker_for(settings, redis, drainer)
    redis.hset(worker.key, mapping={"hostname": socket.gethostname(), "pid": _dead_pid(), "birth": "x"})

    worker.register_birth()  # RQ alone: ValueError "There exists an active worker named …"

    assert redis.hget(worker.key, "pid").decode() != "0"
    worker.register_death()


def test_a_registration_of_a_live_process_under_the_same_name_is_still_refused(settings, redis, drainer):
    worker = worker_for(settings, redis, drainer)
    redis.hset(worker.key, mapping={"hostname": socket.gethostname(), "pid": 1, "birth": "x"})  # init: alive

    with pytest.raises(ValueError, match="active worker"):
        worker.register_birth()


def test_a_job_that_cannot_even_be_read_is_refused_and_the_worker_takes_the_next_one(settings, redis, drainer):
    queue = drain_queue(redis, settings.keys)
    garbage = f"{settings.prefix}-garbage"
    redis.hset(Job.key_for(garbage), mapping={"data": b"\x00not a job", "status": "queued", "created_at": "never"})
    redis.rpush(queue.key, garbage)
    follower = enqueue_drain(queue, 0)
    worker = worker_for(settings, redis, drainer)

    dequeued = worker.dequeue_job_and_maintain_ttl(timeout=1)  # RQ alone raises out of the work loop

    assert dequeued is not None and dequeued[0].id == follower.id
    assert garbage in FailedJobRegistry(queue=queue).get_job_ids() or not redis.exists(Job.key_for(garbage))


def test_a_pickled_job_is_refused_when_its_data_is_read_never_unpickled_by_the_drain_job_check(
        settings, redis, drainer):
    pickled = Queue(settings.keys.queue, connection=redis, serializer=PickleSerializer)
    job = pickled.enqueue("builtins.print", "hello", job_id=f"{settings.prefix}-pickled")

    assert worker_for(settings, redis, drainer).work(burst=True) is True

    assert job.id in FailedJobRegistry(queue=drain_queue(redis, settings.keys)).get_job_ids()


def test_due_retries_are_moved_back_onto_the_queue_and_not_counted_as_failed(settings, redis):
    queue = drain_queue(redis, settings.keys)
    job = queue.enqueue_at(datetime.now(timezone.utc) - timedelta(seconds=5), DRAIN_JOB, 0,
                           job_id=f"{settings.prefix}-due", retry=Retry(max=1))
    assert job.id in ScheduledJobRegistry(queue=queue).get_job_ids()
    mover = RetryMover(redis, queue)
    try:
        mover.move_due()
    finally:
        mover.release()

    assert job.id in queue.get_job_ids()
    assert failed_jobs(queue, since=datetime.now(timezone.utc) - timedelta(hours=1)) == (0, 0)
