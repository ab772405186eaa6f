"""Ranking formulas, pure: the Bayesian average, the top lists' orders and tie-breaks, an article's rank.

The queries hand over per-article counters for a window (`Tally`); everything that
decides an order lives here, so it is tested without a database.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

DEFAULT_PRIOR_VOTES = 10
RANKINGS = ("reads", "votes", "rating", "trending")


@dataclass(frozen=True)
class Tally:
    """One article's counters in a window."""

    article_id: str
    reads: int = 0
    votes: int = 0
    rating_sum: float = 0.0


def bayesian(mean_all: float, prior_votes: float, rating_sum: float, votes: int) -> float | None:
    """`(C·m + rating_sum) / (m + votes)`: an article's average pulled toward the mean of all votes `C`
    by `m` imaginary votes, so three 5-star votes do not outrank three hundred 4.8s."""
    if prior_votes + votes == 0:
        return None
    return (mean_all * prior_votes + rating_sum) / (prior_votes + votes)


def average(rating_sum: float, votes: int) -> float | None:
    return rating_sum / votes if votes else None


def mean_rating(tallies: Iterable[Tally]) -> float | None:
    """C: the mean of every vote the tallies hold."""
    votes = total = 0
    for t in tallies:
        votes += t.votes
        total += t.rating_sum
    return total / votes if votes else None


def sort_key(by: str) -> Callable[[dict], tuple]:
    """Sort key for a top list of row dicts: descending score, then the documented tie-breaks."""
    if by == "reads":
        return lambda r: (-r["reads"], r["article_id"])
    if by == "votes":
        return lambda r: (-r["votes"], r["article_id"])
    if by == "rating":
        return lambda r: (-_number(r["score"]), -r["votes"], -r["reads"], r["article_id"])
    if by == "trending":
        return lambda r: (-_number(r["score"]), -r["recent_reads"], r["article_id"])
    raise ValueError(f"unknown ranking {by!r}; accepted: {', '.join(RANKINGS)}")


def _number(score: float | None) -> float:
    return float("-inf") if score is None else score


def row(t: Tally, score: float | None) -> dict:
    """The JSON-contract row of a top list (rank and title are filled in later)."""
    return {"rank": None, "article_id": t.article_id, "title": None, "reads": t.reads, "votes": t.votes,
            "rating_avg": average(t.rating_sum, t.votes), "score": score}


def candidates(tallies: Iterable[Tally], by: str, *, min_votes: int, prior_votes: float,
               mean: float | None) -> list[dict]:
    """The rows a reads, votes or rating list chooses from: articles with at least one read (reads), one
    vote (votes, rating) and `min_votes` votes in the window, scored."""
    rows = []
    for t in tallies:
        if t.votes < min_votes:
            continue
        if by == "reads" and t.reads > 0:
            rows.append(row(t, float(t.reads)))
        elif by == "votes" and t.votes > 0:
            rows.append(row(t, float(t.votes)))
        elif by == "rating" and t.votes > 0:
            rows.append(row(t, bayesian(mean or 0.0, prior_votes, t.rating_sum, t.votes)))
    return rows


def best(rows: Iterable[dict], by: str, limit: int) -> list[dict]:
    """The first `limit` rows in ranking order, numbered from 1."""
    return numbered(heapq.nsmallest(limit, rows, key=sort_key(by)))


def numbered(rows: list[dict]) -> list[dict]:
    for rank, r in enumerate(rows, start=1):
        r["rank"] = rank
    return rows


def top_counts(counts: Mapping[str, int], limit: int) -> list[tuple[str, int]]:
    """The `limit` largest counts, ties by article id: the order of the reads and votes lists, without
    building a row for every article."""
    return heapq.nsmallest(limit, ((a, n) for a, n in counts.items() if n > 0), key=lambda c: (-c[1], c[0]))


def contenders(rows: list[dict], by: str, limit: int) -> list[dict]:
    """Rows that can still make the first `limit` once reads are known: a rating list is ordered by score
    and votes before reads, so only the rows up to the `limit`-th on (score, votes), and those tied with
    it, need their reads looked up."""
    if by != "rating" or len(rows) <= limit:
        return rows
    coarse = lambda r: (-_number(r["score"]), -r["votes"])  # noqa: E731
    boundary = coarse(heapq.nsmallest(limit, rows, key=coarse)[-1])
    return [r for r in rows if coarse(r) <= boundary]


def rank_by_reads(reads: Mapping[str, int], article_id: str) -> int | None:
    """An article's place in the reads list (count, then article id), or None if it was not read."""
    mine = reads.get(article_id, 0)
    if mine <= 0:
        return None
    return 1 + sum(1 for other, n in reads.items() if n > mine or (n == mine and other < article_id))
