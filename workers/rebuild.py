"""`readrate rebuild`: counters, buckets and votes recomputed from the archive, written anew.

In place, the whole rebuild is one transaction that first stops drains from
committing (SQLite: the write lock; PostgreSQL: an EXCLUSIVE lock on the offsets,
which readers do not wait for), then reads which files are committed, recomputes
from exactly those, and replaces the five counter tables: reports see the old
counters or the new ones, never half of each, and no batch is counted in between.
Into another database (`--into`), it reads the archive's file list and the offsets
in one snapshot of the live database and writes a complete installation there.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, delete, func, insert, select

from readrate.events.clock import EPOCH, utc_now
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
    keep_current_votes,
    load_events,
    recorded_rules,
)
from .schema import (
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
ROWS_PER_INSERT = 5_000
_MS = timedelta(milliseconds=1)


class RebuildRefused(ReadrateError):
    """Raised when a rebuild would lose counts the archive does not hold, or overwrite another database."""


@dataclass
class Rebuilt:
    events: int = 0
    files: int = 0
    rows: dict | None = None


def _at(ms: int | None) -> datetime | None:
    return None if ms is None else EPOCH + ms * _MS


def _check_baseline(conn: Connection) -> None:
    before = conn.scalar(select(func.count()).select_from(archive_baseline))
    if before:
        raise RebuildRefused(
            f"{before:,} articles were counted before the archive started (or had events pruned from it): the "
            "archive cannot give their earlier counts back, so a rebuild would lose them")


def _recomputed(duck) -> dict:
    """Every counter table's rows, recomputed (`ev` loaded)."""
    keep_current_votes(duck)

    def rows(sql: str) -> Iterator[tuple]:
        return duck.execute(sql).fetchall()

    return {
        article_stats: [{"article_id": a, "reads": r, "votes": v, "rating_sum": s, "first_event_at": _at(f),
                         "last_read_at": _at(lr), "last_vote_at": _at(lv)}
                        for a, r, v, s, f, lr, lv in rows(ARTICLE_STATS)],
        reads_hourly: [{"article_id": a, "hour": EPOCH + timedelta(hours=h), "reads": n}
                       for a, h, n in rows(READS_BY_HOUR)],
        reads_daily: [{"article_id": a, "day": (EPOCH + timedelta(days=d)).date(), "reads": n}
                      for a, d, n in rows(READS_BY_DAY)],
        votes_daily: [{"article_id": a, "day": (EPOCH + timedelta(days=d)).date(), "votes": n, "rating_sum": s}
                      for a, d, n, s in rows(VOTES_BY_DAY)],
        votes: [{"article_id": a, "voter_id": v, "rating": r, "voted_at": _at(at)}
                for a, v, r, at in rows("SELECT * FROM current_votes")],
    }


def _write(conn: Connection, tables: dict) -> dict:
    counts = {}
    for table, rows in tables.items():
        for start in range(0, len(rows), ROWS_PER_INSERT):
            conn.execute(insert(table), rows[start:start + ROWS_PER_INSERT])
        counts[table.name] = len(rows)
    return counts


def _offsets(conn: Connection) -> dict[int, str]:
    return {shard: last_id for shard, last_id in conn.execute(select(stream_offsets.c.shard, stream_offsets.c.last_id))}


def _record(conn: Connection, rules: Rules, actor: str, reason: str) -> None:
    """A rebuild that applied counting rules to the past is an operation: audits and later rebuilds keep it."""
    conn.execute(insert(operations), [{"created_at": utc_now(), "actor": actor, "action": "rebuild",
                                       "article_id": None, "voter_id": None, "reason": reason,
                                       "params": rules.params(), "effect": None, "applied_at": utc_now()}])


def _recompute(archive: Archive, names: list[str], rules: list[Rules]) -> tuple[int, dict]:
    duck = duckdb_connection()
    try:
        events = load_events(duck, archive, names, rules=rules)
        return events, _recomputed(duck)
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
        events, tables = _recompute(archive, names, applied)
        for table in COUNTER_TABLES:
            conn.execute(delete(table))
        counts = _write(conn, tables)
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
    events, tables = _recompute(archive, names, applied)
    with writing(target.connect()) as conn, conn.begin():
        conn.execute(delete(stream_offsets))
        _write(conn, copied)
        if conn.dialect.name == "postgresql" and copied[operations]:  # ids were copied: move the sequence on
            conn.exec_driver_sql("SELECT setval(pg_get_serial_sequence('operations', 'id'), "
                                 "(SELECT max(id) FROM operations))")
        if rules:
            _record(conn, rules, actor, reason)
        counts = _write(conn, tables)
    return Rebuilt(events, len(names), counts)
