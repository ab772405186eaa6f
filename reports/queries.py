"""Read-side queries: per-article counters in a window of event time, and the top lists and summary built
from them.

SQL only adds up; `ranking` and `trending` decide the order. A window's reads come
from `reads_daily` for whole UTC days and `reads_hourly` for the hours at its
edges; its votes are the current votes cast in it, from `votes_daily` for whole
days and the `votes` table (exact to the millisecond) at the edges. With no window
the all-time counters in `article_stats` answer. Reports never write.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Connection, and_, func, literal, or_, select, union_all

from workers.schema import article_stats, articles, reads_daily, reads_hourly, votes, votes_daily
from workers.timeconv import utc_now

from .ranking import (
    DEFAULT_PRIOR_VOTES,
    Tally,
    best,
    candidates,
    contenders,
    mean_rating,
    numbered,
    rank_by_reads,
    row,
    top_counts,
)
from .trending import DEFAULT_PRIOR_READS, DEFAULT_RECENT, trend_rows, trend_windows
from .windows import Window, split

# Article ids per `IN (…)` list: one round trip per this many, well under every driver's parameter limit.
ID_CHUNK = 1000
SUMMARY_TOP = 5


@dataclass(frozen=True)
class TopQuery:
    """What a top list asks for."""

    by: str = "reads"
    limit: int = 10
    min_votes: int = 0
    prior_votes: float = DEFAULT_PRIOR_VOTES
    window: Window = field(default_factory=Window)
    recent: timedelta = DEFAULT_RECENT  # trending: the recent period
    prior_reads: float = DEFAULT_PRIOR_READS  # trending: k


def _chunks(ids: Iterable[str] | None) -> list[list[str] | None]:
    if ids is None:
        return [None]
    ids = sorted(set(ids))
    return [ids[i:i + ID_CHUNK] for i in range(0, len(ids), ID_CHUNK)]


def between(column, start, stop) -> list:
    """The conditions `start <= column < stop` (None: no bound)."""
    return [c for c in (None if start is None else column >= start, None if stop is None else column < stop)
            if c is not None]


def _only(column, ids: list[str] | None) -> list:
    return [] if ids is None else [column.in_(ids)]


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


def read_counts(conn: Connection, window: Window, articles_: Iterable[str] | None = None) -> dict[str, int]:
    """article id -> reads in `window`, for the articles read in it (only `articles_` if given)."""
    counts: dict[str, int] = {}
    for ids in _chunks(articles_):
        if window.all_time:
            s = article_stats.c
            stmt = select(s.article_id, s.reads).where(s.reads > 0, *_only(s.article_id, ids))
            counts.update((a, int(n)) for a, n in conn.execute(stmt))
            continue
        rows = _read_rows(window, ids)
        if rows is None:
            return {}
        if conn.dialect.name != "sqlite":
            total = func.sum(rows.c.reads)
            stmt = select(rows.c.article_id, total).group_by(rows.c.article_id).having(total > 0)
            counts.update((a, int(n)) for a, n in conn.execute(stmt))
            continue
        for a, n in _raw_rows(conn, select(rows.c.article_id, rows.c.reads)):
            counts[a] = counts.get(a, 0) + n
    return {a: n for a, n in counts.items() if n > 0}


def most_read(conn: Connection, window: Window, limit: int) -> list[tuple[str, int]]:
    """The `limit` most read articles in `window` as (article id, reads): count, then article id."""
    rows = None if window.all_time or conn.dialect.name == "sqlite" else _read_rows(window, None)
    if rows is None:
        return top_counts(read_counts(conn, window), limit)
    # PostgreSQL hash-aggregates and sorts in the server: only the winners travel.
    total = func.sum(rows.c.reads)
    stmt = (select(rows.c.article_id, total).group_by(rows.c.article_id).having(total > 0)
            .order_by(total.desc(), by_id(conn, rows.c.article_id)).limit(limit))
    return [(a, int(n)) for a, n in conn.execute(stmt)]


def reads_rank(conn: Connection, window: Window, article_id: str, reads: int) -> int | None:
    """The place of an article with `reads` reads in `window`'s reads list, or None if it was not read."""
    if reads <= 0:
        return None
    if conn.dialect.name == "sqlite" and not window.all_time:
        return rank_by_reads(read_counts(conn, window), article_id)
    if window.all_time:
        s = article_stats.c
        ahead = select(s.article_id).where(or_(s.reads > reads, and_(s.reads == reads,
                                                                      by_id(conn, s.article_id) < article_id)))
    else:
        rows = _read_rows(window, None)
        total = func.sum(rows.c.reads)
        ahead = select(rows.c.article_id).group_by(rows.c.article_id).having(
            or_(total > reads, and_(total == reads, by_id(conn, rows.c.article_id) < article_id)))
    return int(conn.scalar(select(func.count()).select_from(ahead.subquery()))) + 1


def by_id(conn: Connection, column):
    """`column` compared as Python compares str (code points): PostgreSQL's default collation may not."""
    return column.collate("C") if conn.dialect.name == "postgresql" else column


def _raw_rows(conn: Connection, stmt):
    """The rows of `stmt` as plain tuples straight from SQLite's cursor, for adding up in Python.

    SQLite cannot hash-aggregate: its GROUP BY sorts every row through a temporary
    B-tree, which costs more than summing the rows in a dict (a 7-day window over
    10,000 articles: ~110 ms against ~40 ms). The values bound are dates, times
    and article ids, rendered as SQL literals by SQLAlchemy, quoted.
    """
    sql = str(stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    cursor = conn.connection.driver_connection.cursor()
    try:
        yield from cursor.execute(sql)
    finally:
        cursor.close()


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


def vote_counts(conn: Connection, window: Window,
                articles_: Iterable[str] | None = None) -> dict[str, tuple[int, float]]:
    """article id -> (current votes cast in `window`, their rating sum), for the articles voted on in it."""
    counts: dict[str, tuple[int, float]] = {}
    for ids in _chunks(articles_):
        if window.all_time:
            s = article_stats.c
            stmt = select(s.article_id, s.votes, s.rating_sum).where(s.votes > 0, *_only(s.article_id, ids))
            counts.update((a, (int(n), float(total))) for a, n, total in conn.execute(stmt))
            continue
        rows = _vote_rows(window, ids)
        if rows is None:
            return {}
        if conn.dialect.name != "sqlite":
            n = func.sum(rows.c.votes)
            stmt = select(rows.c.article_id, n, func.sum(rows.c.rating_sum)).group_by(rows.c.article_id)
            counts.update((a, (int(n), float(total))) for a, n, total in conn.execute(stmt.having(n > 0)))
            continue
        for a, n, total in _raw_rows(conn, select(rows.c.article_id, rows.c.votes, rows.c.rating_sum)):
            before = counts.get(a)
            counts[a] = (n, total) if before is None else (before[0] + n, before[1] + total)
    return {a: (n, float(total)) for a, (n, total) in counts.items() if n > 0}


def vote_total(conn: Connection, window: Window) -> tuple[int, float]:
    """(votes, rating sum) of every current vote cast in `window`: what C, the mean rating, is made of."""
    if window.all_time:
        s = article_stats.c
        n, total = conn.execute(select(func.sum(s.votes), func.sum(s.rating_sum))).one()
    else:
        rows = _vote_rows(window, None)
        if rows is None:
            return 0, 0.0
        n, total = conn.execute(select(func.sum(rows.c.votes), func.sum(rows.c.rating_sum))).one()
    return int(n or 0), float(total or 0.0)


def mean_of(conn: Connection, window: Window) -> float | None:
    """C: the mean of the current votes cast in `window`."""
    n, total = vote_total(conn, window)
    return total / n if n else None


def titles(conn: Connection, ids: Iterable[str]) -> dict[str, str | None]:
    """article id -> title, for the ids that have one."""
    found: dict[str, str | None] = {}
    for chunk in _chunks(ids):
        if chunk:
            a = articles.c
            found.update((i, t) for i, t in conn.execute(select(a.article_id, a.title).where(a.article_id.in_(chunk))))
    return found


def tallies(conn: Connection, window: Window) -> list[Tally]:
    """Every article read or voted on in `window`, with its counters there."""
    return _merge(read_counts(conn, window), vote_counts(conn, window))


def _merge(reads: dict[str, int], voted: dict[str, tuple[int, float]]) -> list[Tally]:
    return [Tally(a, reads.get(a, 0), *voted.get(a, (0, 0.0))) for a in reads.keys() | voted.keys()]


def top(conn: Connection, query: TopQuery, now: datetime | None = None) -> list[dict]:
    """The top list for `query`, ranked and tie-broken as `ranking` (and `trending`) say."""
    if query.window.empty:
        return []
    if query.by == "trending":
        rows = _trending(conn, query, now or utc_now())
    elif query.by == "rating":
        rows = _top_rating(conn, query)
    else:
        rows = _top_count(conn, query)
    found = titles(conn, [r["article_id"] for r in rows])
    for r in rows:
        r["title"] = found.get(r["article_id"])
    return rows


def _top_count(conn: Connection, query: TopQuery) -> list[dict]:
    """Top by reads or votes: rank one count, then look the other up for the winners only."""
    window, least = query.window, query.min_votes
    voted = vote_counts(conn, window) if query.by == "votes" or least else None
    if query.by == "reads" and voted is None:
        chosen = most_read(conn, window, query.limit)
        reads = dict(chosen)
    elif query.by == "reads":
        reads = {a: n for a, n in read_counts(conn, window).items() if voted.get(a, (0,))[0] >= least}
        chosen = top_counts(reads, query.limit)
    else:
        reads = None
        chosen = top_counts({a: n for a, (n, _) in voted.items() if n >= least}, query.limit)
    rows = numbered([row(Tally(a), float(n)) for a, n in chosen])
    _fill_votes(conn, window, rows, voted)
    if reads is None:
        _fill_reads(conn, window, rows)
    else:
        for r in rows:
            r["reads"] = reads[r["article_id"]]
    return rows


def _top_rating(conn: Connection, query: TopQuery) -> list[dict]:
    voted = vote_counts(conn, query.window)
    mean = mean_rating(Tally("", 0, n, s) for n, s in voted.values())
    scored = candidates((Tally(a, 0, n, s) for a, (n, s) in voted.items()), "rating", min_votes=query.min_votes,
                        prior_votes=query.prior_votes, mean=mean)
    # Reads only break ties: look them up for the rows that can still make the list.
    scored = contenders(scored, "rating", query.limit)
    _fill_reads(conn, query.window, scored)
    return best(scored, "rating", query.limit)


def _fill_votes(conn: Connection, window: Window, rows: list[dict],
                voted: dict[str, tuple[int, float]] | None = None) -> None:
    if voted is None:
        voted = vote_counts(conn, window, [r["article_id"] for r in rows])
    for r in rows:
        n, total = voted.get(r["article_id"], (0, 0.0))
        r["votes"], r["rating_avg"] = n, (total / n if n else None)


def _fill_reads(conn: Connection, window: Window, rows: list[dict]) -> None:
    reads = read_counts(conn, window, [r["article_id"] for r in rows])
    for r in rows:
        r["reads"] = reads.get(r["article_id"], 0)


def _trending(conn: Connection, query: TopQuery, now: datetime) -> list[dict]:
    periods = trend_windows(query.window, query.recent, now)
    whole = Window(periods.before.since, periods.recent.until)
    recent = read_counts(conn, periods.recent)
    before = read_counts(conn, periods.before, recent if len(recent) <= ID_CHUNK else None)
    rows = trend_rows(recent, before, periods, prior_reads=query.prior_reads)
    voted = None
    if query.min_votes:
        voted = vote_counts(conn, whole)
        rows = [r for r in rows if voted.get(r["article_id"], (0, 0.0))[0] >= query.min_votes]
    rows = best(rows, "trending", query.limit)
    _fill_votes(conn, whole, rows, voted)
    return rows


def summary(conn: Connection, window: Window, *, min_votes: int = 0,
            prior_votes: float = DEFAULT_PRIOR_VOTES, limit: int = SUMMARY_TOP) -> dict:
    """Totals for `window` (reads, votes, active articles, mean rating) and its top lists by reads and rating."""
    counted = tallies(conn, window)
    mean = mean_rating(counted)
    top_reads = best(candidates(counted, "reads", min_votes=0, prior_votes=prior_votes, mean=mean), "reads", limit)
    top_rating = best(candidates(counted, "rating", min_votes=min_votes, prior_votes=prior_votes, mean=mean),
                      "rating", limit)
    found = titles(conn, [r["article_id"] for r in top_reads + top_rating])
    for r in top_reads + top_rating:
        r["title"] = found.get(r["article_id"])
    return {
        "since": window.since,
        "until": window.until,
        "reads": sum(t.reads for t in counted),
        "votes": sum(t.votes for t in counted),
        "active_articles": len(counted),
        "rating_avg": mean,
        "top_reads": top_reads,
        "top_rating": top_rating,
    }


def has_data(conn: Connection) -> bool:
    """True once any article has been counted."""
    return conn.scalar(select(article_stats.c.article_id).limit(1)) is not None

