"""Scenario 2, Aggregate: events per second one worker counts into the database, against one RQ job per event.

readrate: a backlog of the workload is filled into the streams (untimed), then one
`Drainer` — what a `readrate worker` runs — drains every shard in turn into a fresh
database, timed from the first XRANGE to the last shard found empty; the
database's totals are then checked against the events.

Baseline: the naive design (bench/naive.py) — one RQ job per event, run by RQ's
`SimpleWorker` in burst mode in this process, each job upserting its article row
in its own transaction. It is slow, so it runs on the first few thousand events of
the same workload; events per second is a fair figure to compare at any size.
Both run against the same Redis and the same database, one after the other.
"""

from __future__ import annotations

import signal
import time

from readrate.workers.db import make_engine

from . import naive, workload
from .harness import Outcome, Row, at_least, quiet_heap, rate, ratio_at_least, skipped
from .resources import Env, Unavailable

NAME = "aggregate"
TITLE = "2. Aggregate"
TARGETS = {"sqlite": 100_000, "postgresql": 50_000}
LABELS = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


def sizes(quick: bool) -> dict:
    return {"drain": 20_000, "naive": 300} if quick else {"drain": 500_000, "naive": 3_000}


def run(env: Env, quick: bool) -> Outcome:
    n = sizes(quick)
    raw: dict = {"sizes": n, "workload": workload.DESCRIPTION}
    rows = []
    for backend in ("sqlite", "postgresql"):
        checks = (at_least(TARGETS[backend]), ratio_at_least(300, "≥ 300× naive"))
        scenario = f"{TITLE} · one worker, {LABELS[backend]}"
        try:
            url = env.database_url(backend, "agg")
        except Unavailable as exc:
            rows.append(skipped(scenario, str(exc), "ev/s", checks))
            continue
        try:
            ours, check = drain(env, url, n["drain"])
            theirs, naive_detail = naive_rate(env, url, n["naive"])
        finally:
            env.drop_database(url)
        raw[backend] = {"readrate": check, "naive": naive_detail}
        row = Row(scenario, ours, theirs, "ev/s", "naive RQ job per event", checks)
        problems = list(check["problems"])
        if not naive_detail["ok"]:
            problems.append("naive: counts differ from the jobs")
        if problems:
            row.invalid = True
            row.note = "; ".join(problems)
        rows.append(row)
    return Outcome(rows, raw, __doc__)


def drain(env: Env, url: str, count: int) -> tuple[float, dict]:
    settings = env.settings("agg", url)
    engine = workload.prepared_engine(settings)
    try:
        started = time.perf_counter()
        backlog = workload.fill(env.redis, settings, count)
        fill_s = time.perf_counter() - started
        seconds, entries, rejected = workload.drain_in_process(settings, engine)
        check = workload.verify(engine, backlog)
        left = workload.pending(env.redis, settings)
    finally:
        engine.dispose()
        env.clear(settings.prefix)
    check.update(backlog=backlog.as_dict(), fill_s=round(fill_s, 3), drain_s=round(seconds, 3),
                 entries=entries, rejected=rejected, left_in_redis=left, batch_size=settings.batch_size,
                 ev_s=round(rate(entries, seconds)))
    check["problems"] = workload.problems(check, count, entries, left)
    check["ok"] = not check["problems"]
    return rate(entries, seconds), check


def naive_rate(env: Env, url: str, count: int) -> tuple[float, dict]:
    settings = env.settings("naive", url)
    # The naive design keeps a table of its own in the same database: no readrate installation.
    engine = make_engine(settings.database_url, create=True)
    queue_name = settings.prefix
    events = list(workload.events(count))
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        naive.create_table(engine)
        queue = naive.queue(env.redis, queue_name)
        naive.enqueue(queue, settings.database_url, events, settings.prefix)
        worker = naive.worker(env.redis, queue_name, f"{settings.prefix}-naive")
        with quiet_heap():
            started = time.perf_counter()
            worker.work(burst=True, logging_level="WARNING")
            seconds = time.perf_counter() - started
        found = naive.totals(engine)
        failed = queue.failed_job_registry.count
    finally:
        for sig, handler in handlers.items():  # RQ installs its own; give ours back
            signal.signal(sig, handler)
        naive.dispose_engines()
        engine.dispose()
        env.clear(settings.prefix)
    reads = sum(workload.is_read(e) for e in events)
    detail = {"jobs": count, "seconds": round(seconds, 3), "ev_s": round(rate(count, seconds), 1),
              "found": found, "expected": {"reads": reads, "votes": count - reads}, "failed_jobs": failed}
    detail["ok"] = found == detail["expected"] and failed == 0
    return rate(count, seconds), detail
