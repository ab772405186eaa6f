"""`readrate audit`: recompute the counters from the archive and compare them with the database.

From the archive's committed files (DuckDB over Parquet) it recomputes, per
article, what the drain keeps: reads, reads per day and per hour, the current
votes (per voter the latest vote; on equal times the later arrival), and from
them the vote count, rating sum and votes per day. Every difference is one
`Drift` row. Articles that had counters before the archive started (its baseline)
cannot be recomputed from it: their differences are reported as "before the
archive", not as drift.

With `since` only the buckets and votes from that day on are compared; the
totals need the whole archive.
"""

from __future__ import annotations

import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

from sqlalchemy import Connection, Date, Engine, Float, String, select

from readrate.events.clock import EPOCH, MS_PER_HOUR
from readrate.events.errors import ReadrateError
from readrate.workers.archive import Archive, recorded_paths, started
from readrate.workers.recompute import (
    READS_BY_ARTICLE,
    READS_BY_DAY,
    READS_BY_HOUR,
    VOTES_BY_ARTICLE,
    VOTES_BY_DAY,
    duckdb_connection,
    keep_tallies,
    load_events,
    recorded_rules,
    sql_string,
)
from readrate.workers.schema import (
    EventTime,
    archive_baseline,
    article_stats,
    reads_daily,
    reads_hourly,
    votes,
    votes_daily,
)

# Rating sums are sums of scale steps (exact in binary for halves); anything past this is a real difference.
RATING_TOLERANCE = 1e-6


class ArchiveOff(ReadrateError):
    """Raised when there is no archive to audit against."""


@dataclass(frozen=True)
class Drift:
    """One value that differs: which article, what, the database's value and the archive's."""

    article_id: str
    what: str
    database: float | str | None
    archive: float | str | None
    before_archive: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class AuditResult:
    """What the audit compared, and every difference it found."""

    files: int = 0
    events: int = 0
    articles: int = 0
    baseline_articles: int = 0
    started_at: datetime | None = None
    since: date | None = None
    drift: list[Drift] = field(default_factory=list)

    @property
    def drifted(self) -> list[Drift]:
        """Differences the archive cannot explain (not those of articles counted before it started)."""
        return [d for d in self.drift if not d.before_archive]


def archive_root(engine: Engine, configured: str | None) -> Archive:
    """The archive to read: READRATE_ARCHIVE, or the folder recorded when archiving started."""
    with engine.connect() as conn:
        since = started(conn)
    if since is None:
        raise ArchiveOff("this installation has no archive yet: set READRATE_ARCHIVE=DIR for the workers, and "
                         "every event they count from then on is archived")
    return Archive(configured or since[1])


def audit(engine: Engine, archive: Archive, *, since: date | None = None) -> AuditResult:
    """Compare the database's counters with what the archive's committed files say they must be."""
    duck = duckdb_connection()
    try:
        # One snapshot of the database: the counters, the files and the operations as one commit left them,
        # so workers draining meanwhile never show up as drift. While the counters are read out, a thread
        # recomputes them from the files (DuckDB and the database drivers both let go of the GIL).
        conn = engine.connect()
        if engine.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn, conn.begin(), ThreadPoolExecutor(1) as pool, \
                tempfile.TemporaryDirectory(prefix="readrate-audit-") as folder:
            names = recorded_paths(conn)
            began = started(conn)
            baseline = set(conn.scalars(select(archive_baseline.c.article_id)))
            rules = recorded_rules(conn)
            recomputed = pool.submit(_recompute, duck, archive, names, since, rules)
            files = _read_out(conn, Path(folder), since)
            events = recomputed.result()
            for name, (path, columns) in files.items():
                if path.stat().st_size:
                    duck.execute(f"CREATE TEMP TABLE db_{name} AS SELECT * FROM read_csv({sql_string(str(path))}, "
                                 f"header = false, quote = '\"', escape = '\"', columns = {columns!r})")
                else:  # no rows (DuckDB cannot read an empty CSV file)
                    duck.execute(f"CREATE TEMP TABLE db_{name} "
                                 f"({', '.join(f'{c} {t}' for c, t in columns.items())})")
        result = AuditResult(files=len(names), events=events, baseline_articles=len(baseline), since=since,
                             started_at=None if began is None else began[0])
        measures = MEASURES if since is None else [m for m in MEASURES if not m.totals_only]
        for measure in measures:
            for article_id, key, ours, theirs in duck.execute(measure.differences()).fetchall():
                if measure.name == "vote_at":  # shown as times, not epoch milliseconds
                    ours, theirs = (None if v is None else _iso(v) for v in (ours, theirs))
                result.drift.append(Drift(article_id, _label(measure.name, key), ours, theirs,
                                          article_id in baseline))
        # The articles compared: every measure's rows come from these tables (so no query runs twice).
        sides = " UNION ".join(f"SELECT article_id FROM {table}"
                               for table in [*(f"db_{name}" for name in files), "read_hours", "current_votes"])
        result.articles = duck.execute(f"SELECT count(*) FROM ({sides})").fetchall()[0][0]
    finally:
        duck.close()
    result.drift.sort(key=lambda d: (d.before_archive, d.article_id, d.what))
    return result


def _iso(at_ms: int) -> str:
    return (EPOCH + timedelta(milliseconds=at_ms)).isoformat(sep=" ", timespec="milliseconds")


def _label(what: str, key) -> str:
    if what in ("reads", "votes", "rating_sum"):
        return what
    if what == "reads_hourly":
        return f"reads in hour {(EPOCH + timedelta(hours=key)).isoformat(sep=' ', timespec='minutes')}"
    if what.endswith("_daily"):
        label = {"reads_daily": "reads", "votes_daily": "votes", "rating_sum_daily": "rating sum"}[what]
        return f"{label} on {(EPOCH + timedelta(days=key)).date().isoformat()}"
    return f"{'vote time' if what == 'vote_at' else 'vote'} of {key}"


@dataclass(frozen=True)
class Measure:
    """One compared value: the database's side and the archive's as (article_id, key, value) queries in
    DuckDB (key NULL for per-article totals). Differences beyond RATING_TOLERANCE are drift; a value
    one side lacks counts as zero (an empty bucket or total is the same nothing)."""

    name: str
    stored: str
    recomputed: str
    totals_only: bool = False  # compared only over the whole archive (not with --since)

    def differences(self) -> str:
        return f"""
            SELECT coalesce(d.article_id, a.article_id), coalesce(d.key, a.key), d.value, a.value
            FROM ({self.stored}) AS d(article_id, key, value)
            FULL OUTER JOIN ({self.recomputed}) AS a(article_id, key, value)
              ON d.article_id = a.article_id AND d.key IS NOT DISTINCT FROM a.key
            WHERE CASE WHEN d.value IS NULL OR a.value IS NULL
                       THEN coalesce(d.value, 0) <> 0 OR coalesce(a.value, 0) <> 0
                       ELSE abs(d.value - a.value) > {RATING_TOLERANCE} END"""


_HOUR = f"hour // {MS_PER_HOUR}"
_DAY = "CAST(day AS DATE) - DATE '1970-01-01'"
MEASURES = [
    Measure("reads", "SELECT article_id, NULL, reads FROM db_article_stats",
            f"SELECT a, NULL, n FROM ({READS_BY_ARTICLE}) AS t(a, n, l)", totals_only=True),
    Measure("votes", "SELECT article_id, NULL, votes FROM db_article_stats",
            f"SELECT a, NULL, n FROM ({VOTES_BY_ARTICLE}) AS t(a, n, s, l)", totals_only=True),
    Measure("rating_sum", "SELECT article_id, NULL, rating_sum FROM db_article_stats",
            f"SELECT a, NULL, s FROM ({VOTES_BY_ARTICLE}) AS t(a, n, s, l)", totals_only=True),
    Measure("reads_daily", f"SELECT article_id, {_DAY}, reads FROM db_reads_daily", READS_BY_DAY),
    Measure("reads_hourly", f"SELECT article_id, {_HOUR}, reads FROM db_reads_hourly", READS_BY_HOUR),
    Measure("votes_daily", f"SELECT article_id, {_DAY}, votes FROM db_votes_daily",
            f"SELECT a, d, n FROM ({VOTES_BY_DAY}) AS t(a, d, n, s)"),
    Measure("rating_sum_daily", f"SELECT article_id, {_DAY}, rating_sum FROM db_votes_daily",
            f"SELECT a, d, s FROM ({VOTES_BY_DAY}) AS t(a, d, n, s)"),
    Measure("vote", "SELECT article_id, voter_id, rating FROM db_votes",
            "SELECT article_id, voter, rating FROM current_votes"),
    Measure("vote_at", "SELECT article_id, voter_id, voted_at FROM db_votes",
            "SELECT article_id, voter, at_ms FROM current_votes"),
]

def _recompute(duck, archive: Archive, names: list[str], since: date | None, rules) -> int:
    events = load_events(duck, archive, names, since=since, rules=rules)
    keep_tallies(duck)
    return events


# What the audit reads of each counter table, and its time column (for --since).
STORED = {
    article_stats: (("article_id", "reads", "votes", "rating_sum"), None),
    reads_daily: (("article_id", "day", "reads"), "day"),
    reads_hourly: (("article_id", "hour", "reads"), "hour"),
    votes_daily: (("article_id", "day", "votes", "rating_sum"), "day"),
    votes: (("article_id", "voter_id", "rating", "voted_at"), "voted_at"),
}


def _read_out(conn: Connection, folder: Path, since: date | None) -> dict[str, tuple[Path, dict]]:
    """The database's counters (from `since` on, if given) as CSV files in `folder`, read in `conn`'s
    snapshot: {table name: (file, DuckDB column types)}. PostgreSQL writes them with COPY; SQLite builds the
    lines itself, an article's rows joined into one string, so Python handles one value per article, not
    one per row and column. Event times are read out as epoch milliseconds, days as text cast in DuckDB."""
    files = {}
    raw = conn.connection.driver_connection
    for table, (names, time_column) in STORED.items():
        if since is not None and time_column is None:
            continue  # totals are compared over the whole archive only
        columns = {name: _duck_type(table.c[name]) for name in names}
        path = folder / f"{table.name}.csv"
        starting = None if since is None or time_column is None else _since_value(conn, table.c[time_column], since)
        mark = "%s" if conn.dialect.name == "postgresql" else "?"
        where = "" if starting is None else f" WHERE {time_column} >= {mark}"
        params = () if starting is None else (starting,)
        with path.open("wb") as out:
            if conn.dialect.name == "postgresql":
                with raw.cursor() as cursor, cursor.copy(
                        f"COPY (SELECT {', '.join(_pg_csv(table.c[name]) for name in names)} "
                        f"FROM {table.name}{where}) TO STDOUT (FORMAT csv)",
                        params) as copy:
                    for block in copy:
                        out.write(block)
            else:
                line = " || ',' || ".join(_sqlite_csv(table.c[name]) for name in names)
                cursor = raw.cursor()
                cursor.execute(f"SELECT group_concat({line}, char(10)) FROM {table.name}{where} GROUP BY article_id",
                               params)
                while chunks := cursor.fetchmany(1000):
                    out.write("".join(chunk + "\n" for chunk, in chunks).encode())
                cursor.close()
        files[table.name] = (path, columns)
    return files


def _duck_type(column) -> str:
    if isinstance(column.type, (String, Date)):
        return "VARCHAR"
    return "DOUBLE" if isinstance(column.type, Float) else "BIGINT"  # event times: epoch milliseconds


def _pg_csv(column) -> str:
    """A column as PostgreSQL's COPY writes it: event times as epoch milliseconds, as SQLite stores them."""
    if isinstance(column.type, EventTime):
        return f"round(extract(epoch FROM {column.name}) * 1000)::bigint"
    return column.name


def _sqlite_csv(column) -> str:
    """A column as one CSV field, in SQLite's SQL: text quoted (quotes doubled), numbers and days as they
    are."""
    if isinstance(column.type, String):
        return f"""'"' || replace({column.name}, '"', '""') || '"'"""
    return f"coalesce({column.name}, '')"


def _since_value(conn: Connection, column, since: date):
    """`since` as the column's own values compare with it (SQLite: days as text, event times as integers)."""
    at = since if isinstance(column.type, Date) else datetime(since.year, since.month, since.day)
    store = column.type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
    return at if store is None else store(at)
