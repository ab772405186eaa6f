"""Per-article counts in a window of event time, one source per database.

A window's reads come from `reads_daily` for whole UTC days and `reads_hourly` for
the hours at its edges; its votes are the current votes cast in it, from
`votes_daily` for whole days and the `votes` table (exact to the millisecond) at the
edges. With no window the all-time counters in `article_stats` answer. Those SELECTs
are the same on every database; adding their rows up per article is not:
PostgreSQL hash-aggregates in the server, while SQLite's GROUP BY sorts every row
through a temporary B-tree, which costs more than summing the rows in a dict
(bench/RESULTS.md, "Design measurements"). So each database has its `Counts`, and
`counts_for(conn)` picks it once per connection. Reports never write.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator

from sqlalchemy import Connection, and_, func, literal, or_, select, union_all
from sqlalchemy.exc import DBAPIError

from readrate.events.errors import ConfigError
from readrate.workers.schema import article_stats, reads_daily, reads_hourly, votes, votes_daily

from .ranking import rank_by_reads, top_counts
from .windows import Window, split

# Article ids per `IN (…)` list: one round trip per this many, well under every driver's parameter limit.
ID_CHUNK = 1000

VoteCounts = dict[str, tuple[int, float]]


def between(column, start, stop) -> list:
    """The conditions `start <= column < stop` (None: no bound)."""
    return [c for c in (None if start is None else column >= start, None if stop is None else column < stop)
            if c is not None]


def _only(column, ids: list[str] | None) -> list:
    return [] if ids is None else [column.in_(ids)]


def _chunks(ids: Iterable[str] | None) -> list[list[str] | None]:
    if ids is None:
        return [None]
    ids = sorted(set(ids))
    return [ids[i:i + ID_CHUNK] for i in range(0, len(ids), ID_CHUNK)]


def _read_rows(window: Window, ids: list[str] | None):
    """SELECT article_id, reads over the buckets that make up `window` (taken down to whole hours)."""
    spans = split(window.for_reads())
    parts = []
    if spans.days is not None:
        d = reads_daily.c
        parts.append(select(d.article_id, d.reads).where(*between(d.day, *spans.days), *_only(d.article_id, ids)))
    for start, stop in spans.parts:
        h = reads_hourly.c
        parts.append(select(h.article_id, h.reads).where(*between(h.hour, start, stop), *_only(h.article_id, ids)))
    return union_all(*parts).subquery() if parts else None


def _vote_rows(window: Window, ids: list[str] | None):
    """SELECT article_id, votes, rating_sum over votes_daily (whole days) and votes (the edges)."""
    spans = split(window)
    parts = []
    if spans.days is not None:
        d = votes_daily.c
        parts.append(select(d.article_id, d.votes, d.rating_sum)
                     .where(*between(d.day, *spans.days), *_only(d.article_id, ids)))
    for start, stop in spans.parts:
        v = votes.c
        parts.append(select(v.article_id, literal(1).label("votes"), v.rating.label("rating_sum"))
                     .where(*between(v.voted_at, start, stop), *_only(v.article_id, ids)))
    return union_all(*parts).subquery() if parts else None


class Counts(ABC):
    """A connection's per-article counts in a window: what every database answers alike (the all-time
    counters, the vote total) here, the adding up of a window's buckets in the subclass for its database."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def reads(self, window: Window, only: Iterable[str] | None = None) -> dict[str, int]:
        """article id -> reads in `window`, for the articles read in it (only those in `only` if given)."""
        counts: dict[str, int] = {}
        for ids in _chunks(only):
            if window.all_time:
                s = article_stats.c
                stmt = select(s.article_id, s.reads).where(s.reads > 0, *_only(s.article_id, ids))
                counts.update((a, int(n)) for a, n in self.conn.execute(stmt))
                continue
            rows = _read_rows(window, ids)
            if rows is None:
                return {}
            counts.update(self._sum_reads(rows))
        return {a: n for a, n in counts.items() if n > 0}

    def votes(self, window: Window, only: Iterable[str] | None = None) -> VoteCounts:
        """article id -> (current votes cast in `window`, their rating sum), for the articles voted on in it."""
        counts: VoteCounts = {}
        for ids in _chunks(only):
            if window.all_time:
                s = article_stats.c
                stmt = select(s.article_id, s.votes, s.rating_sum).where(s.votes > 0, *_only(s.article_id, ids))
                counts.update((a, (int(n), float(total))) for a, n, total in self.conn.execute(stmt))
                continue
            rows = _vote_rows(window, ids)
            if rows is None:
                return {}
            counts.update(self._sum_votes(rows))
        return {a: (n, float(total)) for a, (n, total) in counts.items() if n > 0}

    def most_read(self, window: Window, limit: int | None) -> list[tuple[str, int]]:
        """The `limit` most read articles in `window` (None: all) as (article id, reads): count, then id."""
        return top_counts(self.reads(window), limit)

    def reads_rank(self, window: Window, article_id: str, reads: int) -> int | None:
        """The place of an article with `reads` reads in `window`'s reads list, or None if it was not read."""
        if reads <= 0:
            return None
        if not window.all_time:
            return self._window_rank(window, article_id, reads)
        s = article_stats.c
        ahead = select(s.article_id).where(or_(s.reads > reads, and_(s.reads == reads,
                                                                      self.by_id(s.article_id) < article_id)))
        return int(self.conn.scalar(select(func.count()).select_from(ahead.subquery()))) + 1

    def vote_total(self, window: Window) -> tuple[int, float]:
        """(votes, rating sum) of every current vote cast in `window`: what C, the mean rating, is made of."""
        if window.all_time:
            s = article_stats.c
            n, total = self.conn.execute(select(func.sum(s.votes), func.sum(s.rating_sum))).one()
        else:
            rows = _vote_rows(window, None)
            if rows is None:
                return 0, 0.0
            n, total = self.conn.execute(select(func.sum(rows.c.votes), func.sum(rows.c.rating_sum))).one()
        return int(n or 0), float(total or 0.0)

    def mean(self, window: Window) -> float | None:
        """C: the mean of the current votes cast in `window`."""
        n, total = self.vote_total(window)
        return total / n if n else None

    def by_id(self, column):
        """`column` compared as Python compares str (code points)."""
        return column

    @abstractmethod
    def _sum_reads(self, rows) -> dict[str, int]:
        """article id -> the sum of `rows`' reads (a subquery of article_id, reads)."""

    @abstractmethod
    def _sum_votes(self, rows) -> VoteCounts:
        """article id -> (the sum of `rows`' votes, of their rating sums) (a subquery of article_id, votes,
        rating_sum)."""

    @abstractmethod
    def _window_rank(self, window: Window, article_id: str, reads: int) -> int:
        """`reads_rank` in a window, for an article that was read in it."""


class SqliteCounts(Counts):
    """SQLite: the buckets come back as plain rows and are summed in Python."""

    def _sum_reads(self, rows) -> dict[str, int]:
        counts: dict[str, int] = {}
        for a, n in self._raw_rows(select(rows.c.article_id, rows.c.reads)):
            counts[a] = counts.get(a, 0) + n
        return counts

    def _sum_votes(self, rows) -> VoteCounts:
        counts: VoteCounts = {}
        for a, n, total in self._raw_rows(select(rows.c.article_id, rows.c.votes, rows.c.rating_sum)):
            before = counts.get(a)
            counts[a] = (n, total) if before is None else (before[0] + n, before[1] + total)
        return counts

    def _window_rank(self, window: Window, article_id: str, reads: int) -> int:
        return rank_by_reads(self.reads(window), article_id)

    def _raw_rows(self, stmt) -> Iterator[tuple]:
        """The rows of `stmt` as plain tuples straight from SQLite's cursor, skipping SQLAlchemy's row objects.

        The values bound are dates, times and article ids, rendered as SQL literals by SQLAlchemy, quoted.
        The driver's errors are wrapped as SQLAlchemy wraps them, so that `reachable()` still tells a
        missing table or a locked database from a bug.
        """
        sql = str(stmt.compile(dialect=self.conn.dialect, compile_kwargs={"literal_binds": True}))
        driver_error = self.conn.dialect.loaded_dbapi.Error
        cursor = self.conn.connection.driver_connection.cursor()
        try:
            yield from cursor.execute(sql)
        except driver_error as exc:
            raise DBAPIError.instance(sql, None, exc, driver_error, dialect=self.conn.dialect) from exc
        finally:
            cursor.close()


class PostgresCounts(Counts):
    """PostgreSQL: the server groups, sums and (for a top list or a rank) sorts; only the answers travel."""

    def _sum_reads(self, rows) -> dict[str, int]:
        total = func.sum(rows.c.reads)
        stmt = select(rows.c.article_id, total).group_by(rows.c.article_id).having(total > 0)
        return {a: int(n) for a, n in self.conn.execute(stmt)}

    def _sum_votes(self, rows) -> VoteCounts:
        n = func.sum(rows.c.votes)
        stmt = select(rows.c.article_id, n, func.sum(rows.c.rating_sum)).group_by(rows.c.article_id).having(n > 0)
        return {a: (int(n), float(total)) for a, n, total in self.conn.execute(stmt)}

    def most_read(self, window: Window, limit: int | None) -> list[tuple[str, int]]:
        if window.all_time:
            return super().most_read(window, limit)
        rows = _read_rows(window, None)
        if rows is None:
            return []
        total = func.sum(rows.c.reads)
        stmt = (select(rows.c.article_id, total).group_by(rows.c.article_id).having(total > 0)
                .order_by(total.desc(), self.by_id(rows.c.article_id)).limit(limit))
        return [(a, int(n)) for a, n in self.conn.execute(stmt)]

    def _window_rank(self, window: Window, article_id: str, reads: int) -> int:
        rows = _read_rows(window, None)
        total = func.sum(rows.c.reads)
        ahead = select(rows.c.article_id).group_by(rows.c.article_id).having(
            or_(total > reads, and_(total == reads, self.by_id(rows.c.article_id) < article_id)))
        return int(self.conn.scalar(select(func.count()).select_from(ahead.subquery()))) + 1

    def by_id(self, column):
        # The database's default collation may not sort as Python does ('a' before 'B' under ICU); "C" does.
        return column.collate("C")


SOURCES: dict[str, type[Counts]] = {"sqlite": SqliteCounts, "postgresql": PostgresCounts}


def counts_for(conn: Connection) -> Counts:
    """The counts source for `conn`'s database; ConfigError for a database readrate does not support."""
    source = SOURCES.get(conn.dialect.name)
    if source is None:
        raise ConfigError(f"database {conn.dialect.name!r} is not supported; accepted: {', '.join(SOURCES)}")
    return source(conn)


# The counts as functions of a connection, for callers that need one answer.

def read_counts(conn: Connection, window: Window, only: Iterable[str] | None = None) -> dict[str, int]:
    return counts_for(conn).reads(window, only)


def vote_counts(conn: Connection, window: Window, only: Iterable[str] | None = None) -> VoteCounts:
    return counts_for(conn).votes(window, only)


def most_read(conn: Connection, window: Window, limit: int | None) -> list[tuple[str, int]]:
    return counts_for(conn).most_read(window, limit)


def reads_rank(conn: Connection, window: Window, article_id: str, reads: int) -> int | None:
    return counts_for(conn).reads_rank(window, article_id, reads)


def mean_of(conn: Connection, window: Window) -> float | None:
    return counts_for(conn).mean(window)
