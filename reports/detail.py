"""The single-article report: counters in a window, Bayesian score, rank by reads, star histogram and the
daily series of reads and votes.

Every query here is bounded by the article's primary-key prefix (its own buckets
and votes), except the rank in a window, which needs every article's reads there.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import date, timedelta

from sqlalchemy import Connection, func, select

from readrate.events.errors import ReadrateError
from readrate.workers.schema import article_stats, articles, reads_daily, reads_hourly, votes, votes_daily

from .counts import between, counts_for
from .ranking import average, bayesian
from .windows import EARLIEST, Window, days_between, split

# A window longer than this is a way of saying "all time" (--since 0001-01-01): its daily series runs from
# the article's first active day to its last, not through centuries of zeros.
SERIES_DAYS = 36_525


class UnknownArticle(ReadrateError):
    """Raised when a report names an article with no counters and no imported title."""


def article_report(conn: Connection, article_id: str, window: Window, *, prior_votes: float,
                   scale: Sequence[float] = ()) -> dict:
    """The article report as the JSON contract has it (counters, `histogram`, `daily`); raises UnknownArticle."""
    meta = conn.execute(select(articles.c.title, articles.c.url).where(articles.c.article_id == article_id)).first()
    s = article_stats.c
    stats = conn.execute(select(s.reads, s.votes, s.rating_sum).where(s.article_id == article_id)).first()
    if meta is None and stats is None:
        raise UnknownArticle(f"article {article_id!r} is unknown: it has no reads, no votes and no imported title")
    histogram = _histogram(conn, article_id, window, scale)
    daily = _daily(conn, article_id, window)
    if window.all_time:
        reads, n, total = (int(stats.reads), int(stats.votes), float(stats.rating_sum)) if stats else (0, 0, 0.0)
    else:
        reads = sum(d["reads"] for d in daily)
        n = sum(h["votes"] for h in histogram)
        total = sum(h["rating"] * h["votes"] for h in histogram)
    counts = counts_for(conn)
    rank = counts.reads_rank(window, article_id, reads)
    mean = counts.mean(window)
    return {
        "rank": rank,
        "article_id": article_id,
        "title": meta.title if meta else None,
        "url": meta.url if meta else None,
        "reads": reads,
        "votes": n,
        "rating_avg": average(total, n),
        "score": bayesian(mean or 0.0, prior_votes, total, n) if n else None,
        "mean_rating": mean,
        "since": window.since,
        "until": window.until,
        "histogram": histogram,
        "daily": daily,
    }


def _histogram(conn: Connection, article_id: str, window: Window, scale: Sequence[float]) -> list[dict]:
    v = votes.c
    rows = conn.execute(select(v.rating, func.count()).where(
        v.article_id == article_id, *between(v.voted_at, window.since, window.until)).group_by(v.rating))
    counts = {float(rating): int(n) for rating, n in rows}
    return [{"rating": r, "votes": counts.get(r, 0)} for r in sorted(set(scale) | counts.keys())]


def _daily(conn: Connection, article_id: str, window: Window) -> list[dict]:
    reads: Counter = Counter()
    spans = split(window.for_reads())
    if spans.days is not None:
        d = reads_daily.c
        for day, n in conn.execute(select(d.day, d.reads).where(d.article_id == article_id,
                                                                 *between(d.day, *spans.days))):
            reads[day] += n
    for start, stop in spans.parts:
        h = reads_hourly.c
        for hour, n in conn.execute(select(h.hour, h.reads).where(h.article_id == article_id,
                                                                  *between(h.hour, start, stop))):
            reads[hour.date()] += n
    voted: Counter = Counter()
    spans = split(window)
    if spans.days is not None:
        d = votes_daily.c
        for day, n in conn.execute(select(d.day, d.votes).where(d.article_id == article_id, d.votes != 0,
                                                                 *between(d.day, *spans.days))):
            voted[day] += n
    for start, stop in spans.parts:
        v = votes.c
        for (at,) in conn.execute(select(v.voted_at).where(v.article_id == article_id,
                                                            *between(v.voted_at, start, stop))):
            voted[at.date()] += 1
    return daily_series(reads, voted, window)


def daily_series(reads: Counter, voted: Counter, window: Window) -> list[dict]:
    """`{day, reads, votes}` for every day of `window`. An open end stops at the first or last active day,
    and so do both ends of a series that would be longer than SERIES_DAYS."""
    if window.until == EARLIEST:
        return []  # nothing happened before the earliest time there is
    active = [day for day in reads.keys() | voted.keys() if reads[day] or voted[day]]
    first: date | None = window.since.date() if window.since is not None else min(active, default=None)
    last: date | None = (window.until - timedelta(microseconds=1)).date() if window.until is not None \
        else max(active, default=None)
    if first is not None and last is not None and (last - first).days >= SERIES_DAYS:
        first, last = min(active, default=None), max(active, default=None)
    if first is None or last is None or first > last:
        return []
    return [{"day": day, "reads": int(reads[day]), "votes": int(voted[day])} for day in days_between(first, last)]
