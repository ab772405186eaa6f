"""Read-side queries: top lists and counters straight from the aggregated tables.

Reports never write to Redis streams and never change counters; they read what
the workers committed.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, func, literal, select

from workers.schema import article_stats, articles

from .ranking import average


@dataclass(frozen=True)
class TopQuery:
    """What a top list asks for."""

    by: str = "reads"
    limit: int = 10
    min_votes: int = 0
    prior_votes: float = 10


def mean_rating(conn: Connection) -> float | None:
    """C: the mean of all current votes."""
    total, votes = conn.execute(select(func.sum(article_stats.c.rating_sum), func.sum(article_stats.c.votes))).one()
    return float(total) / int(votes) if votes else None


def top(conn: Connection, query: TopQuery) -> list[dict]:
    """The top list over all time, ranked and tie-broken as DESIGN.md and the README say."""
    s = article_stats.c
    mean_all = mean_rating(conn) or 0.0
    m = float(query.prior_votes)
    score = (literal(mean_all * m) + s.rating_sum) / (literal(m) + s.votes)
    stmt = (
        select(s.article_id, articles.c.title, s.reads, s.votes, s.rating_sum, score.label("score"))
        .select_from(article_stats.outerjoin(articles, articles.c.article_id == s.article_id))
        .where(s.votes >= query.min_votes)
        .limit(query.limit)
    )
    if query.by == "reads":
        stmt = stmt.order_by(s.reads.desc(), s.article_id)
    elif query.by == "votes":
        stmt = stmt.order_by(s.votes.desc(), s.article_id)
    else:
        stmt = stmt.where(s.votes > 0).order_by(score.desc(), s.votes.desc(), s.reads.desc(), s.article_id)
    rows = []
    for rank, row in enumerate(conn.execute(stmt), start=1):
        rows.append({
            "rank": rank,
            "article_id": row.article_id,
            "title": row.title,
            "reads": int(row.reads),
            "votes": int(row.votes),
            "rating_avg": average(float(row.rating_sum), int(row.votes)),
            "score": _score(query.by, row),
        })
    return rows


def _score(by: str, row) -> float:
    if by == "reads":
        return float(row.reads)
    if by == "votes":
        return float(row.votes)
    return float(row.score)
