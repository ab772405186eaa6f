"""`readrate rebuild`: counters, buckets and votes recomputed from the archive, written anew.

In place, the whole rebuild is one transaction that first stops drains from
committing (SQLite: the write lock; PostgreSQL: an EXCLUSIVE lock on the offsets,
which readers do not wait for), then reads which files are committed, recomputes
from exactly those, and replaces the five counter tables: reports see the old
counters or the new ones, never half of each, and no batch is counted in between
(on PostgreSQL the old counters are TRUNCATEd, so reports wait for the commit
rather than read them meanwhile). The new rows go in in bulk: secondary indexes
dropped and made again after, SQLite from JSON text DuckDB writes meanwhile (json_each),
PostgreSQL through COPY.
Into another database (`--into`), it reads the archive's file list and the offsets
in one snapshot of the live database and writes a complete installation there.
"""

from __future__ import annotations

import queue
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, Date, Engine, delete, func, insert, select

from readrate.events.clock import MS_PER_DAY, MS_PER_HOUR, utc_now
from readrate.events.errors import ReadrateError

from .archive import Archive, recorded_paths
from .db import upgrade, writing
from .recompute import (
    ARTICLE_STATS,
    READS_BY_DAY,
    READS_BY_HOUR,
    VOTES_BY_DAY,
    Rules,
    duckdb_connection,
    keep_tallies,
    load_events,
    recorded_rules,
    sql_string,
)
from .schema import (
    EventTime,
    archive_baseline,
    archive_files,
    archive_state,
    article_stats,
    articles,
    installation,
    operations,
    reads_daily,
    reads_hourly,
    stream_offsets,
    votes,
    votes_daily,
)

COUNTER_TABLES = (article_stats, reads_hourly, reads_daily, votes_daily, votes)
ROWS_PER_INSERT = 50_000
# SQLite's order: a table DuckDB writes quickly first (SQLite waits for it), then the ones SQLite takes longest
# over, while DuckDB writes the rest.
JSON_ORDER = (votes_daily, reads_daily, votes, reads_hourly, article_stats)
JSON_CHUNKS_AHEAD = 48  # about 120 MB of JSON: DuckDB can finish the next table while SQLite fills this one
COPY_BLOCK_BYTES = 1 << 20
# CREATE INDEX sorts in runs the size of the page cache, each run by a helper thread: with the usual 32 MB
# cache and 4 helpers the 10M rebuild's votes and reads_hourly indexes took 4.8 s instead of 6.7 s with one
# 1 GB run, and pages written out as the cache fills leave less for the commit (design_measurements.md).
SQLITE_SORT_THREADS = 4


class RebuildRefused(ReadrateError):
    """Raised when a rebuild would lose counts the archive does not hold, or overwrite another database."""


@dataclass
class Rebuilt:
    events: int = 0
    files: int = 0
    rows: dict | None = None


def _check_baseline(conn: Connection) -> None:
    before = conn.scalar(select(func.count()).select_from(archive_baseline))
    if before:
        raise RebuildRefused(
            f"{before:,} articles were counted before the archive started (or had events pruned from it): the "
            "archive cannot give their earlier counts back, so a rebuild would lose them")


def _timestamp(ms: str) -> str:
    return f"make_timestamp(({ms}) * 1000)"


def _date(day_number: str) -> str:
    return f"CAST({_timestamp(f'({day_number}) * {MS_PER_DAY}')} AS DATE)"


# Each counter table as DuckDB recomputes it (`ev` loaded, `current_votes` kept): its columns in the table's
# order, times as TIMESTAMP and days as DATE.
RECOMPUTED = {
    article_stats: f"""SELECT a, r, v, s, {_timestamp('f')}, {_timestamp('lr')}, {_timestamp('lv')}
                       FROM ({ARTICLE_STATS}) AS t(a, r, v, s, f, lr, lv)""",
    reads_hourly: f"SELECT a, {_timestamp(f'h * {MS_PER_HOUR}')}, n FROM ({READS_BY_HOUR}) AS t(a, h, n)",
    reads_daily: f"SELECT a, {_date('d')}, n FROM ({READS_BY_DAY}) AS t(a, d, n)",
    votes_daily: f"SELECT a, {_date('d')}, n, s FROM ({VOTES_BY_DAY}) AS t(a, d, n, s)",
    votes: f"SELECT article_id, voter, rating, {_timestamp('at_ms')} FROM current_votes",
}


def _rows_sql(table, *, sqlite: bool) -> str:
    """The table's recomputed rows in primary-key order (b-trees filled in key order); for `sqlite`, values
    as it stores them: event times (the counter tables' only times) as epoch milliseconds, days as text."""
    names = [c.name for c in table.columns]
    shown = names
    if sqlite:
        shown = [f"epoch_ms({n})" if isinstance(c.type, EventTime)
                 else f"CAST({n} AS VARCHAR)" if isinstance(c.type, Date) else n
                 for n, c in zip(names, table.columns)]
    keys = ", ".join(c.name for c in table.primary_key.columns)
    return f"SELECT {', '.join(shown)} FROM ({RECOMPUTED[table]}) AS t({', '.join(names)}) ORDER BY {keys}"


def _write_counters(conn: Connection, duck) -> dict[str, int]:
    """Fill the five (empty) counter tables with the recomputation, in bulk: their secondary indexes dropped
    and made again once the table's rows are in (one sort each instead of millions of scattered inserts), all
    inside the caller's transaction. SQLite: JSON text DuckDB writes, inserted by SQLite's json_each;
    PostgreSQL: COPY from CSV files DuckDB writes."""
    for table in COUNTER_TABLES:
        for index in table.indexes:
            index.drop(conn)
    if conn.dialect.name == "postgresql":
        return _copy_postgres(conn, duck)
    return _insert_sqlite(conn, duck)


def _make_indexes(conn: Connection, table) -> None:
    for index in table.indexes:
        index.create(conn)


def _insert_sqlite(conn: Connection, duck) -> dict[str, int]:
    """DuckDB's rows into SQLite, the two at once: a thread has DuckDB write each table's rows as JSON arrays,
    ROWS_PER_INSERT rows to a string, while this one has SQLite insert the strings already written (one
    INSERT … SELECT FROM json_each each) and make each table's indexes. Both libraries let go of the GIL
    while they work, and no Python object is made per row."""
    duck.execute("SET threads = 1")  # the other core is SQLite's (the recomputation before had both)
    cursor = conn.connection.driver_connection.cursor()
    cursor.execute(f"PRAGMA threads={SQLITE_SORT_THREADS}")
    counts = dict.fromkeys((table.name for table in COUNTER_TABLES), 0)
    try:
        for table, rows, text in _prefetched(_json_chunks(duck), depth=JSON_CHUNKS_AHEAD):
            if text is None:  # the table's last chunk is in
                _make_indexes(conn, table)
                continue
            cursor.execute(_json_insert_sql(table), (text,))
            counts[table.name] += rows
    finally:
        cursor.execute("PRAGMA threads=0")
        cursor.close()
    return counts


def _json_insert_sql(table) -> str:
    names = [c.name for c in table.columns]
    values = ", ".join(f"value ->> {i}" for i in range(len(names)))
    return f"INSERT INTO {table.name} ({', '.join(names)}) SELECT {values} FROM json_each(?)"


def _json_chunks(duck) -> Iterator[tuple]:
    """(table, rows, JSON array of the rows) for every counter table in key order, ROWS_PER_INSERT rows at a
    time, values as SQLite stores them; then (table, 0, None) once the table is complete."""
    for table in JSON_ORDER:
        names = ", ".join(c.name for c in table.columns)
        # row_number() over the ordered rows keeps key order into the chunks: that only makes SQLite's
        # inserts faster (b-trees filled in order); which rows go in does not depend on it.
        result = duck.execute(f"""
            SELECT count(*), '[' || string_agg(row, ',' ORDER BY n) || ']'
            FROM (SELECT json_array({names})::VARCHAR AS row, row_number() OVER () AS n
                  FROM ({_rows_sql(table, sqlite=True)}) AS t({names}))
            GROUP BY (n - 1) // {ROWS_PER_INSERT} ORDER BY min(n)""")
        while (chunk := result.fetchone()) is not None:
            yield table, *chunk
        yield table, 0, None


def _prefetched(items: Iterator, depth: int = 4) -> Iterator:
    """`items`, produced by a thread up to `depth` ahead of the consumer. An error in the producer is raised
    here; a consumer that stops early stops the producer."""
    ahead: queue.Queue = queue.Queue(depth)
    stop = threading.Event()
    done = object()

    def offer(item) -> bool:
        while not stop.is_set():
            try:
                ahead.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer(item):
                    return
            offer(done)
        except BaseException as exc:  # handed to the consumer, which raises it
            offer(exc)

    producer = threading.Thread(target=produce, name="readrate-rebuild-rows", daemon=True)
    producer.start()
    try:
        while (item := ahead.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        producer.join()


def _copy_postgres(conn: Connection, duck) -> dict[str, int]:
    """Each table's rows written to a CSV file by DuckDB, then streamed to PostgreSQL's COPY."""
    counts = {}
    with tempfile.TemporaryDirectory(prefix="readrate-rebuild-") as folder:
        for table in COUNTER_TABLES:
            path = Path(folder) / f"{table.name}.csv"
            duck.execute(f"COPY ({_rows_sql(table, sqlite=False)}) TO {sql_string(str(path))} "
                         "(FORMAT csv, HEADER false)")
            names = ", ".join(c.name for c in table.columns)
            with conn.connection.driver_connection.cursor() as cursor:
                with cursor.copy(f"COPY {table.name} ({names}) FROM STDIN (FORMAT csv)") as copy, \
                        path.open("rb") as source:
                    while block := source.read(COPY_BLOCK_BYTES):
                        copy.write(block)
                counts[table.name] = cursor.rowcount
            path.unlink()
            _make_indexes(conn, table)
    return counts


def _insert_rows(conn: Connection, copied: dict) -> None:
    """Write the rows read from the live database: the installation, titles, offsets, archive records."""
    for table, rows in copied.items():
        for start in range(0, len(rows), ROWS_PER_INSERT):
            conn.execute(insert(table), rows[start:start + ROWS_PER_INSERT])


def _empty(conn: Connection) -> None:
    """Remove the old counters (PostgreSQL: TRUNCATE, which holds reports off until the commit)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"TRUNCATE {', '.join(table.name for table in COUNTER_TABLES)}")
    else:
        for table in COUNTER_TABLES:
            conn.execute(delete(table))  # without a WHERE SQLite drops the pages whole


def _offsets(conn: Connection) -> dict[int, str]:
    return {shard: last_id for shard, last_id in conn.execute(select(stream_offsets.c.shard, stream_offsets.c.last_id))}


def _record(conn: Connection, rules: Rules, actor: str, reason: str) -> None:
    """A rebuild that applied counting rules to the past is an operation: audits and later rebuilds keep it."""
    conn.execute(insert(operations), [{"created_at": utc_now(), "actor": actor, "action": "rebuild",
                                       "article_id": None, "voter_id": None, "reason": reason,
                                       "params": rules.params(), "effect": None, "applied_at": utc_now()}])


@contextmanager
def _recomputing(archive: Archive, names: list[str], rules: list[Rules]) -> Iterator[tuple[int, object]]:
    """(events, a DuckDB connection over them with the tallies kept) for the counter queries."""
    duck = duckdb_connection()
    try:
        events = load_events(duck, archive, names, rules=rules)
        keep_tallies(duck)
        yield events, duck
    finally:
        duck.close()


def rebuild_in_place(engine: Engine, archive: Archive, rules: Rules = Rules(), *, actor: str = "",
                     reason: str = "") -> Rebuilt:
    """Replace the counters with the archive's recomputation, in one transaction (see the module).

    `rules` apply to every event counted so far, on top of the rules earlier rebuilds applied."""
    with writing(engine.connect()) as conn, conn.begin():
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("LOCK TABLE stream_offsets IN EXCLUSIVE MODE")
        _check_baseline(conn)
        names = recorded_paths(conn)
        applied = recorded_rules(conn)
        if rules:
            rules = Rules(rules.voters, rules.visitors, rules.articles, _offsets(conn))
            applied.append(rules)
            _record(conn, rules, actor, reason)
        with _recomputing(archive, names, applied) as (events, duck):
            _empty(conn)
            counts = _write_counters(conn, duck)
    return Rebuilt(events, len(names), counts)


def rebuild_into(source: Engine, target: Engine, archive: Archive, rules: Rules = Rules(), *, actor: str = "",
                 reason: str = "") -> Rebuilt:
    """Recompute into `target`, an empty database: a copy of the installation (offsets, titles, operations)."""
    upgrade(target)
    with target.connect() as conn:
        if conn.scalar(select(func.count()).select_from(installation)) or \
                conn.scalar(select(func.count()).select_from(article_stats)):
            raise RebuildRefused("the --into database already holds an installation or counters: give an empty one")
    # One snapshot of the live database: the files committed up to exactly these offsets.
    source_conn = source.connect()
    if source.dialect.name == "postgresql":
        source_conn = source_conn.execution_options(isolation_level="REPEATABLE READ")
    with source_conn as conn, conn.begin():
        _check_baseline(conn)
        names = recorded_paths(conn)
        applied = recorded_rules(conn)
        copied = {table: [dict(row._mapping) for row in conn.execute(select(table))]
                  for table in (installation, stream_offsets, articles, archive_state, archive_files, operations)}
        if rules:
            rules = Rules(rules.voters, rules.visitors, rules.articles, _offsets(conn))
            applied.append(rules)
    with _recomputing(archive, names, applied) as (events, duck), writing(target.connect()) as conn, conn.begin():
        conn.execute(delete(stream_offsets))
        _insert_rows(conn, copied)
        if conn.dialect.name == "postgresql" and copied[operations]:  # ids were copied: move the sequence on
            conn.exec_driver_sql("SELECT setval(pg_get_serial_sequence('operations', 'id'), "
                                 "(SELECT max(id) FROM operations))")
        if rules:
            _record(conn, rules, actor, reason)
        counts = _write_counters(conn, duck)
    return Rebuilt(events, len(names), counts)
