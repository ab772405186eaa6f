"""The demo: synthetic traffic through the real pipeline (Emitter → Redis → `readrate worker` → SQL),
a check that every event was counted exactly once, and a popularity report."""

from __future__ import annotations

import dataclasses
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import click
from redis import Redis
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import func, select

from readrate.events.clock import now_ms
from readrate.events.connections import CLI, redis_client
from readrate.events.emitter import Emitter
from readrate.events.errors import ReadrateError, RedisUnavailable
from readrate.events.settings import Settings
from readrate.events.synthetic import Expected, article_id, title, traffic
from readrate.events.urls import redact
from readrate.workers.articles import upsert_articles
from readrate.workers.backlog import backlog
from readrate.workers.db import make_engine, sqlite_file, upgrade
from readrate.workers.schema import article_stats, metadata
from readrate.workers.installation import establish

from .localredis import HOW_TO_GET_REDIS, RedisServer, answers
from .queries import TopQuery, top
from .render import render
from .views import TOP_COLUMNS

DEMO_PREFIX = "readrate-demo"
# The workers' log, in the folder the demo runs in (beside its database), not a fixed /tmp path.
LOG_FILE = "readrate-demo-workers.log"
# Events emitted between two redraws of the progress bars.
EVENTS_PER_STEP = 5_000
# The demo waits this long for the workers to count everything before it calls the run failed.
DRAIN_TIMEOUT_S = 600


@dataclass(frozen=True)
class DemoPlan:
    events: int = 200_000
    articles: int = 2_000
    days: int = 30
    workers: int = 2
    seed: int = 42


def run_demo(settings: Settings, plan: DemoPlan, database_url: str) -> None:
    err = Console(stderr=True)
    server = None
    if answers(settings.redis_url):
        redis_url = settings.redis_url
        err.print(f"Redis: using {redact(redis_url)}")
    else:
        try:
            server = RedisServer().start()
        except RedisUnavailable:
            raise RedisUnavailable(HOW_TO_GET_REDIS.format(url=redact(settings.redis_url))) from None
        redis_url = server.url
        err.print(f"Redis: none at {redact(settings.redis_url)}; started a private redis-server at {redis_url}")
    demo = dataclasses.replace(settings, redis_url=redis_url, database_url=database_url, prefix=DEMO_PREFIX)
    redis = redis_client(redis_url, CLI)
    try:
        _clear_keys(redis, demo)
        _run(demo, redis, plan, err)
    finally:
        _clear_keys(redis, demo)  # a shared Redis keeps nothing of the demo's
        redis.close()
        if server is not None:
            server.stop()


def _run(settings: Settings, redis: Redis, plan: DemoPlan, err: Console) -> None:
    engine = _fresh_database(settings.database_url)
    err.print(f"Database: {redact(settings.database_url)} (emptied for the demo)")
    settings = establish(engine, redis, settings)
    rng = random.Random(plan.seed)
    upsert_articles(engine, [{"article_id": article_id(i), "title": title(rng), "url": None}
                             for i in range(plan.articles)])

    workers, log_path = _start_workers(settings, plan.workers)
    err.print(f"Workers: {plan.workers} `readrate worker` processes (log: {log_path})")
    expected = Expected()
    emitter = Emitter(redis, keys=settings.keys, scale=settings.rating_scale, strict=True)
    started = time.monotonic()
    try:
        with _progress(err) as progress:
            emitting = progress.add_task("emitting events", total=plan.events)
            counting = progress.add_task("counted by workers", total=plan.events)
            events = traffic(events=plan.events, articles=plan.articles, days=plan.days, now_ms=now_ms(),
                             seed=plan.seed)
            chunk = []
            for order, event in enumerate(events):
                expected.add(event, order)
                chunk.append(event)
                if len(chunk) == EVENTS_PER_STEP:
                    emitter.emit_many(chunk)
                    chunk = []
                    progress.update(emitting, advance=EVENTS_PER_STEP)
                    progress.update(counting, completed=_counted(engine))
            emitter.emit_many(chunk)
            progress.update(emitting, completed=plan.events)
            deadline = time.monotonic() + DRAIN_TIMEOUT_S
            while backlog(redis, settings.keys):
                _check_alive(workers, log_path)
                if time.monotonic() > deadline:
                    raise ReadrateError(f"workers did not count everything in {DRAIN_TIMEOUT_S} s; see {log_path}")
                progress.update(counting, completed=_counted(engine))
                time.sleep(0.1)
            progress.update(counting, completed=plan.events)
        seconds = time.monotonic() - started
    finally:
        _stop_workers(workers)
    _verify(engine, expected, err)
    err.print(f"{plan.events:,} events emitted and counted in {seconds:.1f} s "
              f"({plan.events / seconds:,.0f} events/s end to end)\n")
    most_read = []
    with engine.connect() as conn:
        for by, query in (("reads", TopQuery("reads", 10)), ("rating", TopQuery("rating", 10, min_votes=5))):
            rows = top(conn, query)
            most_read = rows if by == "reads" else most_read
            heading = "Most read" if by == "reads" else "Top rated (Bayesian average, at least 5 votes)"
            click.echo(render(rows, TOP_COLUMNS, "table", title=heading))
    err.print(f"Explore it: readrate --database-url {redact(settings.database_url)} report top --by votes")
    article = most_read[0].article_id if most_read else article_id(0)
    err.print(f"See it on a page: readrate --database-url {redact(settings.database_url)} --prefix {settings.prefix} "
              f"serve --example\n  then open http://127.0.0.1:8787/example/{article} in a browser "
              "(the article page with its counters and stars; Ctrl-C stops the server)")
    engine.dispose()


def _counted(engine) -> int:
    with engine.connect() as conn:
        reads, votes = conn.execute(select(func.sum(article_stats.c.reads), func.sum(article_stats.c.votes))).one()
    return int(reads or 0) + int(votes or 0)


def _verify(engine, expected: Expected, err: Console) -> None:
    with engine.connect() as conn:
        rows = conn.execute(select(article_stats.c.article_id, article_stats.c.reads, article_stats.c.votes,
                                   article_stats.c.rating_sum)).all()
    got_reads = {r.article_id: r.reads for r in rows if r.reads}
    got_votes = {r.article_id: (r.votes, r.rating_sum) for r in rows if r.votes}
    want_votes = expected.vote_totals()
    if got_reads != dict(expected.reads) or got_votes != want_votes:
        raise ReadrateError("the counters do not match the events emitted; this is a bug, please report it")
    err.print(f"Checked: {sum(got_reads.values()):,} reads and {sum(v for v, _ in want_votes.values()):,} current "
              f"votes on {len(rows):,} articles, exactly what was emitted (re-votes replaced earlier votes).")


def _fresh_database(url: str):
    path = sqlite_file(url)
    if path is not None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    engine = make_engine(url, create=True)
    if engine.dialect.name != "sqlite":
        with engine.begin() as conn:
            metadata.drop_all(conn)
            conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    upgrade(engine)
    return engine


def _clear_keys(redis: Redis, settings: Settings) -> None:
    # Wire format v2 keys start with a hash tag: `{readrate-demo:0}:events`, `{readrate-demo}:installation`.
    keys = list(redis.scan_iter(f"{{{settings.prefix}[:}}]*")) + list(redis.scan_iter(f"rq:*{settings.prefix}*"))
    if keys:
        redis.delete(*keys)


def _start_workers(settings: Settings, count: int) -> tuple[list[subprocess.Popen], Path]:
    env = {**os.environ, "REDIS_URL": settings.redis_url, "DATABASE_URL": settings.database_url,
           "READRATE_PREFIX": settings.prefix, "READRATE_SHARDS": str(settings.shards),
           "READRATE_RATING_SCALE": str(settings.rating_scale)}
    log_path = Path(LOG_FILE).resolve()
    log = open(log_path, "wb")
    workers = [subprocess.Popen([sys.executable, "-m", "readrate.reports", "worker", "--name", f"demo-{i}"],
                                env=env, stdout=log, stderr=log) for i in range(count)]
    log.close()
    return workers, log_path


def _check_alive(workers: list[subprocess.Popen], log_path: Path) -> None:
    for process in workers:
        if process.poll() is not None:
            raise ReadrateError(f"a worker exited with code {process.returncode}; see {log_path}")


def _stop_workers(workers: list[subprocess.Popen]) -> None:
    for process in workers:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in workers:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _progress(console: Console) -> Progress:
    return Progress(TextColumn("{task.description:<20}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console)
