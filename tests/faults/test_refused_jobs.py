"""Faults: jobs on readrate's queue that are not JSON drain jobs are refused, never executed.

A page or an attacker with access to Redis could put any RQ job on the queue.
readrate workers read jobs with the JSON serializer only, so a pickled job is
never unpickled (unpickling alone can run code), and a JSON job naming any
function but the drain job is refused. Each job here would create a marker file
if it ran, or — for the booby-trapped pickle — if it were merely unpickled.
"""

from __future__ import annotations

import os

import pytest
from rq import Queue
from rq.registry import FailedJobRegistry
from rq.serializers import JSONSerializer, PickleSerializer

from readrate.events import Emitter
from readrate.events.settings import Settings
from helpers import RunningWorker, counters, wait_until

from .conftest import REDIS_URL, prepared_engine



class Trap:
    """Unpickling this runs a shell command: what a malicious pickled job would carry."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


@pytest.fixture
def worker_settings(prefix, sqlite_url):
    return Settings.from_env({}, redis_url=REDIS_URL, database_url=sqlite_url, prefix=prefix)


def test_pickled_jobs_and_jobs_naming_other_functions_are_refused_and_never_run(
        worker_settings, redis, prefix, tmp_path):
    settings = worker_settings
    engine = prepared_engine(settings)
    opened, trapped, named = tmp_path / "opened", tmp_path / "trapped", tmp_path / "named"
    pickled = Queue(settings.keys.queue, connection=redis, serializer=PickleSerializer)
    as_json = Queue(settings.keys.queue, connection=redis, serializer=JSONSerializer)
    try:
        with RunningWorker(settings, tmp_path / "worker.log") as worker:
            jobs = [
                pickled.enqueue("builtins.open", str(opened), "w", job_id=f"{prefix}-pickled-open"),
                pickled.enqueue("builtins.print", Trap(trapped), job_id=f"{prefix}-pickled-trap"),
                as_json.enqueue("builtins.open", str(named), "w", job_id=f"{prefix}-json-open"),
            ]
            failed = FailedJobRegistry(queue=as_json)
            wait_until(lambda: {j.id for j in jobs} <= set(failed.get_job_ids()), timeout=60,
                       message="the three jobs to be refused into the failed registry")
            assert not opened.exists(), "a pickled job was executed"
            assert not trapped.exists(), "a pickled job was unpickled"
            assert not named.exists(), "a job naming another function was executed"
            assert worker.alive(), worker.log()
            # The worker still does its real work afterwards.
            emitter = Emitter(redis, keys=settings.keys, scale=settings.rating_scale, strict=True)
            assert emitter.read("after-the-refusals")
            wait_until(lambda: counters(engine).get("after-the-refusals") == (1, 0, 0.0), timeout=60,
                       message="an event emitted after the refusals to be counted")
        assert worker.process.returncode == 0, worker.log()
        assert "names 'builtins.open'" in worker.log()
    finally:
        engine.dispose()
