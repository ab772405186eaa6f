"""The page API: what an article page or a listing shows under each article, in one database round trip.

    from readrate.reports.page import PageCounters
    page = PageCounters.from_url(os.environ["DATABASE_URL"])   # once, at start-up
    c = page.get("article-42")
    c.reads_text    # "Read 563 times"
    c.votes_text    # "Rate this item (12 votes)"
    c.rating_avg    # 4.25, or None before the first vote
    listing = page.get_many(["article-1", "article-2", ...])  # {id: Counters}, one SELECT

Counters are the all-time ones the workers committed; an article nobody has read
yet gets zeros rather than an error, since a new page must still render.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, select

from readrate.workers.db import make_engine, reachable
from readrate.workers.schema import article_stats

from .ranking import average

# Ids per SELECT: a listing page of up to this many articles costs one round trip.
IDS_PER_QUERY = 1000


@dataclass(frozen=True)
class Counters:
    """One article's counters as a page shows them."""

    article_id: str
    reads: int = 0
    votes: int = 0
    rating_avg: float | None = None

    @property
    def reads_text(self) -> str:
        """`Read 563 times`, `Read 1 time`."""
        return f"Read {self.reads:,} {'time' if self.reads == 1 else 'times'}"

    @property
    def votes_text(self) -> str:
        """`Rate this item (12 votes)`, `Rate this item (1 vote)`."""
        return f"Rate this item ({self.votes:,} {'vote' if self.votes == 1 else 'votes'})"


def fetch(conn: Connection, article_ids: Iterable[str]) -> dict[str, Counters]:
    """Counters for every id in `article_ids`, in the order given (zeros for unknown ids)."""
    wanted = list(dict.fromkeys(article_ids))
    found: dict[str, Counters] = {}
    s = article_stats.c
    for start in range(0, len(wanted), IDS_PER_QUERY):
        chunk = wanted[start:start + IDS_PER_QUERY]
        for a, reads, votes, total in conn.execute(
            select(s.article_id, s.reads, s.votes, s.rating_sum).where(s.article_id.in_(chunk))
        ):
            found[a] = Counters(a, int(reads), int(votes), average(float(total), int(votes)))
    return {a: found.get(a) or Counters(a) for a in wanted}


class PageCounters:
    """A page's handle on the counters: holds an engine (pass one in, or a URL) and answers lookups."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def from_url(cls, database_url: str) -> PageCounters:
        return cls(make_engine(database_url))

    def get(self, article_id: str) -> Counters:
        """One article's counters."""
        return self.get_many([article_id])[article_id]

    def get_many(self, article_ids: Iterable[str]) -> dict[str, Counters]:
        """Many articles' counters at once (one round trip per 1,000 ids), keyed and ordered as asked."""
        with reachable(str(self.engine.url)), self.engine.connect() as conn:
            return fetch(conn, article_ids)

    def close(self) -> None:
        self.engine.dispose()
