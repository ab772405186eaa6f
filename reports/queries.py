"""Read-side queries: the top lists and the summary of a window, built from the per-article counts there.

`counts` adds up (the right way for each database); `ranking` and `trending` decide
the order. A list is chosen from counts first and its rows (`TopRow`) are built once,
when the winners' other counts and titles have been looked up. Reports never write.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Connection, select

from readrate.events.clock import utc_now
from readrate.workers.schema import article_stats, articles

# read_counts … mean_of are imported from here by callers written before `counts` was split off.
from .counts import (  # noqa: F401
    ID_CHUNK,
    Counts,
    counts_for,
    mean_of,
    most_read,
    read_counts,
    reads_rank,
    vote_counts,
)
from .ranking import (
    DEFAULT_PRIOR_VOTES,
    Scored,
    Tally,
    TopRow,
    best,
    candidates,
    contenders,
    mean_rating,
    readers_contenders,
    top_counts,
    top_rows,
)
from .trending import DEFAULT_PRIOR_READS, DEFAULT_RECENT, trend_rows, trend_windows
from .windows import Window

SUMMARY_TOP = 5


@dataclass(frozen=True)
class TopQuery:
    """What a top list asks for; a `limit` of None lists every article."""

    by: str = "reads"
    limit: int | None = 10
    min_votes: int = 0
    prior_votes: float = DEFAULT_PRIOR_VOTES
    window: Window = field(default_factory=Window)
    recent: timedelta = DEFAULT_RECENT  # trending: the recent period
    prior_reads: float = DEFAULT_PRIOR_READS  # trending: k


def titles(conn: Connection, ids: Iterable[str]) -> dict[str, str | None]:
    """article id -> title, for the ids that have one."""
    found: dict[str, str | None] = {}
    ids = sorted(set(ids))
    a = articles.c
    for start in range(0, len(ids), ID_CHUNK):
        chunk = ids[start:start + ID_CHUNK]
        found.update((i, t) for i, t in conn.execute(select(a.article_id, a.title).where(a.article_id.in_(chunk))))
    return found


def tallies(counts: Counts, window: Window) -> list[Tally]:
    """Every article read or voted on in `window`, with its counters there."""
    reads, voted = counts.reads(window), counts.votes(window)
    return [Tally(a, reads.get(a, 0), *voted.get(a, (0, 0.0))) for a in reads.keys() | voted.keys()]


# Readers per article in a window, from the archive: (window, only these articles or None for all) -> counts.
ReadersOf = Callable[[Window, "list[str] | None"], Mapping[str, int]]


def top(conn: Connection, query: TopQuery, now: datetime | None = None,
        readers_of: ReadersOf | None = None) -> list[TopRow]:
    """The top list for `query`, ranked and tie-broken as `ranking` (and `trending`) say; with `readers_of`
    (the archive is on) each row has its readers too, and the list may be ranked by them."""
    if query.window.empty:
        return []
    counts = counts_for(conn)
    if query.by == "readers":
        if readers_of is None:
            raise ValueError("ranking by readers needs the archive")
        readers = readers_of(query.window, None)
        chosen = _top_readers(counts, query, readers)
        return top_rows(chosen, titles(conn, [s.article_id for s in chosen]), readers)
    if query.by == "trending":
        chosen = _trending(counts, query, now or utc_now())
    elif query.by == "rating":
        chosen = _top_rating(counts, query)
    else:
        chosen = _top_count(counts, query)
    winners = [s.article_id for s in chosen]
    readers = None if readers_of is None or not winners else readers_of(query.window, winners)
    return top_rows(chosen, titles(conn, winners), readers)


def _top_readers(counts: Counts, query: TopQuery, readers: Mapping[str, int]) -> list[Scored]:
    """Top by distinct readers; ties by reads, then article id."""
    voted = counts.votes(query.window) if query.min_votes else None
    eligible = {a: n for a, n in readers.items() if voted is None or voted.get(a, (0,))[0] >= query.min_votes}
    # Reads only break ties: look them up for the articles that can still make the list.
    tied = readers_contenders(eligible, query.limit)
    reads = counts.reads(query.window, tied if len(tied) <= ID_CHUNK else None)
    scored = [Scored(Tally(a, reads.get(a, 0)), float(eligible[a])) for a in tied]
    chosen = best(scored, "readers", query.limit)
    voted = voted if voted is not None else counts.votes(query.window, [s.article_id for s in chosen])
    return [s.counted(votes=voted) for s in chosen]


def _top_count(counts: Counts, query: TopQuery) -> list[Scored]:
    """Top by reads or votes: rank one count, then look the other up for the winners only."""
    window, least = query.window, query.min_votes
    voted = counts.votes(window) if query.by == "votes" or least else None
    if query.by == "reads" and voted is None:
        chosen = counts.most_read(window, query.limit)
        reads = dict(chosen)
    elif query.by == "reads":
        reads = {a: n for a, n in counts.reads(window).items() if voted.get(a, (0,))[0] >= least}
        chosen = top_counts(reads, query.limit)
    else:
        reads = None
        chosen = top_counts({a: n for a, (n, _) in voted.items() if n >= least}, query.limit)
    winners = [a for a, _ in chosen]
    if voted is None:
        voted = counts.votes(window, winners)
    if reads is None:
        reads = counts.reads(window, winners)
    return [Scored(Tally(a, reads.get(a, 0), *voted.get(a, (0, 0.0))), float(n)) for a, n in chosen]


def _top_rating(counts: Counts, query: TopQuery) -> list[Scored]:
    voted = counts.votes(query.window)
    mean = mean_rating(Tally("", 0, n, s) for n, s in voted.values())
    scored = candidates((Tally(a, 0, n, s) for a, (n, s) in voted.items()), "rating", min_votes=query.min_votes,
                        prior_votes=query.prior_votes, mean=mean)
    # Reads only break ties: look them up for the articles that can still make the list.
    scored = contenders(scored, "rating", query.limit)
    reads = counts.reads(query.window, [s.article_id for s in scored])
    return best((s.counted(reads=reads) for s in scored), "rating", query.limit)


def _trending(counts: Counts, query: TopQuery, now: datetime) -> list[Scored]:
    periods = trend_windows(query.window, query.recent, now)
    whole = Window(periods.before.since, periods.recent.until)
    recent = counts.reads(periods.recent)
    before = counts.reads(periods.before, recent if len(recent) <= ID_CHUNK else None)
    scored = trend_rows(recent, before, periods, prior_reads=query.prior_reads)
    voted = None
    if query.min_votes:
        voted = counts.votes(whole)
        scored = [s for s in scored if voted.get(s.article_id, (0, 0.0))[0] >= query.min_votes]
    chosen = best(scored, "trending", query.limit)
    if voted is None:
        voted = counts.votes(whole, [s.article_id for s in chosen])
    return [s.counted(votes=voted) for s in chosen]


def summary(conn: Connection, window: Window, *, min_votes: int = 0,
            prior_votes: float = DEFAULT_PRIOR_VOTES, limit: int = SUMMARY_TOP) -> dict:
    """Totals for `window` (reads, votes, active articles, mean rating) and its top lists by reads and rating
    (lists of `TopRow`)."""
    counted = tallies(counts_for(conn), window)
    mean = mean_rating(counted)
    top_reads = best(candidates(counted, "reads", min_votes=0, prior_votes=prior_votes, mean=mean), "reads", limit)
    top_rating = best(candidates(counted, "rating", min_votes=min_votes, prior_votes=prior_votes, mean=mean),
                      "rating", limit)
    found = titles(conn, [s.article_id for s in top_reads + top_rating])
    return {
        "since": window.since,
        "until": window.until,
        "reads": sum(t.reads for t in counted),
        "votes": sum(t.votes for t in counted),
        "active_articles": len(counted),
        "rating_avg": mean,
        "top_reads": top_rows(top_reads, found),
        "top_rating": top_rows(top_rating, found),
    }


def has_data(conn: Connection) -> bool:
    """True once any article has been counted."""
    return conn.scalar(select(article_stats.c.article_id).limit(1)) is not None
