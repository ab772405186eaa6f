"""Scenario 4, Reports: how fast `report top` (7-day window, by reads and by rating) and `report article`
answer on a large history, on SQLite and on PostgreSQL.

The history is written straight into the tables with bulk inserts (executemany on
SQLite, COPY on PostgreSQL) — what the workers would have left after a year:

- 10,000 articles (1,000 with quick), Zipf-popular: article of rank r gets about
  `PEAK / r` reads an hour;
- a year (30 days with quick) of hourly buckets ending at the current hour. An
  article has a bucket in the hours it was read: the top `DENSE` articles every
  hour, one of rank r every ⌈r / DENSE⌉ hours (so every article is read every day);
- daily buckets that are the sums of the hourly ones (every article, every day);
- current votes (one per voter) spread over the year in proportion to popularity,
  and the `votes_daily` and `article_stats` rows that go with them.

Then each query runs a few times untimed (caches warm, as on a live server) and
`RUNS` times timed, through `reports.queries` / `reports.detail` on a pooled
connection — what the CLI does after start-up. `run(quick)` returns one dict per
(database, query) with the median and p95 in milliseconds.
"""

from __future__ import annotations

import math
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, create_engine, text

from readrate.reports.detail import article_report
from readrate.reports.queries import TopQuery, top
from readrate.reports.windows import Window
from readrate.workers import schema
from readrate.workers.db import make_engine, upgrade
from readrate.events.clock import datetime_to_ms, utc_now

PG_ADMIN_URL = os.environ.get("READRATE_BENCH_PG_URL") or os.environ.get(
    "READRATE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
TARGET_MS = {"top": 200, "article": 50}


@dataclass(frozen=True)
class Size:
    articles: int
    days: int
    dense: int  # articles read every hour
    peak: float  # reads an hour of the most read article
    votes: int
    runs: int
    warmup: int = 3


FULL = Size(articles=10_000, days=365, dense=500, peak=400.0, votes=1_000_000, runs=25)
QUICK = Size(articles=1_000, days=30, dense=50, peak=100.0, votes=30_000, runs=7)


def article_name(rank: int) -> str:
    return f"article-{rank:05d}"


# -- the history ------------------------------------------------------------------------------------

def article_hours(size: Size, rank: int) -> tuple[range, int]:
    """The hours (indexes from the start of the history) article `rank` was read in, and its reads in each."""
    step = math.ceil(rank / size.dense)
    # One bucket every `step` hours, each holding the reads of those `step` hours (at least one).
    return range((step - rank % step) % step, size.days * 24, step), max(1, round(size.peak * step / rank))


def vote_rows(size: Size, start: datetime) -> Iterator[tuple[str, str, float, datetime]]:
    """(article, voter, rating, voted_at): votes spread over the year, Zipf-distributed over articles."""
    rng = random.Random(7)
    weights = [1 / r for r in range(1, size.articles + 1)]
    total = sum(weights)
    span_s = size.days * 86_400
    for rank, weight in enumerate(weights, start=1):
        for voter in range(max(1, round(size.votes * weight / total))):
            yield (article_name(rank), f"voter-{voter}", float(rng.choice((1, 2, 3, 3, 4, 4, 4, 5, 5))),
                   start + timedelta(seconds=rng.randrange(span_s)))


def load(engine: Engine, size: Size, end: datetime) -> dict:
    """Write the whole history into `engine`'s (migrated, empty) database; returns row counts and seconds.

    Rows go in primary-key order with the secondary indexes dropped, which are then built once at the
    end: the usual way to bulk-load, and the indexes the queries use are the same afterwards.
    """
    started = time.perf_counter()
    start = end - timedelta(days=size.days)
    pg = engine.dialect.name == "postgresql"
    convert = (lambda v: v) if pg else _sqlite
    hours = [convert(start + timedelta(hours=h)) for h in range(size.days * 24)]
    days = [convert((start + timedelta(days=d)).date()) for d in range(size.days)]
    reads: dict[str, int] = {}
    counts = {"reads_hourly": 0, "reads_daily": 0}

    def hourly() -> Iterator[tuple]:
        for rank in range(1, size.articles + 1):
            article, (indexes, n) = article_name(rank), article_hours(size, rank)
            reads[article] = n * len(indexes)
            counts["reads_hourly"] += len(indexes)
            for h in indexes:
                yield article, hours[h], n

    def daily() -> Iterator[tuple]:
        for rank in range(1, size.articles + 1):
            article, (indexes, n) = article_name(rank), article_hours(size, rank)
            per_day = [0] * size.days
            for h in indexes:
                per_day[h // 24] += n
            for d, total in enumerate(per_day):
                if total:
                    counts["reads_daily"] += 1
                    yield article, days[d], total

    votes_daily: dict[tuple[str, object], list] = {}
    stats: dict[str, list] = {}

    def votes() -> Iterator[tuple]:
        for article, voter, rating, at in vote_rows(size, start):
            bucket = votes_daily.setdefault((article, at.date()), [0, 0.0])
            bucket[0] += 1
            bucket[1] += rating
            row = stats.setdefault(article, [0, 0.0, at])
            row[0] += 1
            row[1] += rating
            row[2] = max(row[2], at)
            yield article, voter, rating, convert(at)

    bulk = _copy if pg else _executemany
    big = [schema.reads_hourly, schema.reads_daily, schema.votes, schema.votes_daily]
    with engine.begin() as conn:
        if pg:
            conn.exec_driver_sql("SET maintenance_work_mem = '512MB'")
        else:
            conn.exec_driver_sql("PRAGMA cache_size = -1000000")  # 1 GB: index builds sort in memory
        for table in big:
            for index in table.indexes:
                index.drop(conn)
        bulk(conn, "reads_hourly", ("article_id", "hour", "reads"), hourly())
        bulk(conn, "reads_daily", ("article_id", "day", "reads"), daily())
        bulk(conn, "votes", ("article_id", "voter_id", "rating", "voted_at"), votes())
        bulk(conn, "votes_daily", ("article_id", "day", "votes", "rating_sum"),
             ((a, convert(d), n, s) for (a, d), (n, s) in sorted(votes_daily.items())))
        bulk(conn, "article_stats",
             ("article_id", "reads", "votes", "rating_sum", "first_event_at", "last_read_at", "last_vote_at"),
             ((a, reads.get(a, 0), *stats.get(a, (0, 0.0))[:2], convert(start), convert(end),
               convert(stats[a][2]) if a in stats else None) for a in sorted(reads.keys() | stats.keys())))
        bulk(conn, "articles", ("article_id", "title", "url"),
             ((article_name(r), f"Article number {r}", f"/articles/{r}") for r in range(1, size.articles + 1)))
        for table in big:
            for index in table.indexes:
                index.create(conn)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE" if pg else "ANALYZE")
    counts.update(votes=sum(v[0] for v in stats.values()), votes_daily=len(votes_daily), articles=size.articles)
    return {"rows": counts, "load_s": round(time.perf_counter() - started, 1)}


def _executemany(conn, table: str, columns: tuple[str, ...], rows, chunk: int = 50_000) -> None:
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    batch = []
    for row in rows:
        batch.append(row)
        if len(batch) == chunk:
            conn.exec_driver_sql(sql, batch)
            batch = []
    if batch:
        conn.exec_driver_sql(sql, batch)


def _sqlite(value):
    """Times as readrate stores them on SQLite: every time loaded here is an event time (epoch
    milliseconds, schema.EventTime); days as text."""
    if isinstance(value, datetime):
        return datetime_to_ms(value)
    return value.isoformat()


def _copy(conn, table: str, columns: tuple[str, ...], rows) -> None:
    cursor = conn.connection.dbapi_connection.cursor()
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


# -- the measurements ---------------------------------------------------------------------------------

def queries(size: Size, now: datetime) -> dict[str, Callable]:
    week = Window(now - timedelta(days=7), None)
    busiest = article_name(1)
    return {
        "top --by reads --since 7d": lambda conn: top(conn, TopQuery("reads", 10, window=week), now),
        "top --by rating --since 7d": lambda conn: top(conn, TopQuery("rating", 10, window=week), now),
        "top --by trending": lambda conn: top(conn, TopQuery("trending", 10), now),
        "article (all time)": lambda conn: article_report(conn, busiest, Window(), prior_votes=10,
                                                          scale=[1.0, 2.0, 3.0, 4.0, 5.0]),
        "article --since 7d": lambda conn: article_report(conn, busiest, week, prior_votes=10,
                                                          scale=[1.0, 2.0, 3.0, 4.0, 5.0]),
    }


def measure(engine: Engine, size: Size, now: datetime) -> list[dict]:
    results = []
    for name, query in queries(size, now).items():
        times_ms = []
        for i in range(size.warmup + size.runs):
            started = time.perf_counter()
            with engine.connect() as conn:
                answer = query(conn)
            if i >= size.warmup:
                times_ms.append((time.perf_counter() - started) * 1000)
        if not answer:
            raise AssertionError(f"{name} returned nothing on the benchmark history")
        ordered = sorted(times_ms)
        kind = "top" if name.startswith("top") else "article"
        results.append({"query": name, "runs": len(times_ms), "median_ms": round(statistics.median(ordered), 2),
                        "p95_ms": round(_p95(ordered), 2), "target_ms": TARGET_MS[kind]})
    return results


def _p95(ordered: list[float]) -> float:
    rank = (len(ordered) - 1) * 0.95
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _databases(workdir: Path) -> Iterator[tuple[str, str, Callable[[], None]]]:
    yield "sqlite", f"sqlite:///{workdir / 'reports-bench.db'}", lambda: None
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"rrbench_reports_{uuid.uuid4().hex[:8]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - no PostgreSQL: report SQLite alone, say why
        admin.dispose()
        yield "postgresql", f"unavailable: {exc}", lambda: None
        return

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    yield "postgresql", PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name, drop


def run(quick: bool) -> list[dict]:
    """Build the history on SQLite and PostgreSQL and time the report queries; one dict per (database, query)."""
    size = QUICK if quick else FULL
    now = utc_now()
    end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    results = []
    with tempfile.TemporaryDirectory(prefix="rrbench-reports-") as workdir:
        for database, url, drop in _databases(Path(workdir)):
            base = {"scenario": "reports", "database": database, "articles": size.articles, "days": size.days}
            if url.startswith("unavailable"):
                results.append({**base, "query": "all", "error": url})
                continue
            engine = make_engine(url, create=True)
            try:
                upgrade(engine)
                loaded = load(engine, size, end)
                for row in measure(engine, size, now):
                    results.append({**base, **row, **loaded["rows"], "load_s": loaded["load_s"]})
            finally:
                engine.dispose()
                drop()
    return results


if __name__ == "__main__":
    import json
    import sys

    for line in run(quick="--quick" in sys.argv):
        print(json.dumps(line, default=str))
