"""Ranking formulas, pure: the Bayesian average, the top lists' orders and tie-breaks, an article's rank, and
the row a top list is made of.

The queries hand over per-article counters for a window (`Tally`); each list scores
them (`Scored`), and everything that decides an order lives here, so it is tested
without a database. A `TopRow` is built once, when an article has made the list and
its title is known.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

DEFAULT_PRIOR_VOTES = 10
# readers: distinct visitors, from the archive (READRATE_ARCHIVE)
RANKINGS = ("reads", "votes", "rating", "trending", "readers")


@dataclass(frozen=True)
class Tally:
    """One article's counters in a window."""

    article_id: str
    reads: int = 0
    votes: int = 0
    rating_sum: float = 0.0


@dataclass(frozen=True)
class Scored:
    """An article on its way into a top list: its counters in the window and its score on that list."""

    tally: Tally
    score: float | None
    recent_reads: int | None = None  # trending only
    expected_reads: float | None = None  # trending only

    @property
    def article_id(self) -> str:
        return self.tally.article_id

    def counted(self, *, reads: Mapping[str, int] | None = None,
                votes: Mapping[str, tuple[int, float]] | None = None) -> Scored:
        """This article with its reads and/or its (votes, rating sum) taken from counts looked up later."""
        tally = self.tally
        if reads is not None:
            tally = replace(tally, reads=reads.get(tally.article_id, 0))
        if votes is not None:
            n, total = votes.get(tally.article_id, (0, 0.0))
            tally = replace(tally, votes=n, rating_sum=total)
        return replace(self, tally=tally)


@dataclass(frozen=True)
class TopRow:
    """One row of a top list as the JSON contract has it; trending rows also carry recent and expected reads."""

    rank: int
    article_id: str
    title: str | None
    reads: int
    votes: int
    rating_avg: float | None
    score: float | None
    recent_reads: int | None = None
    expected_reads: float | None = None
    readers: int | None = None  # distinct visitors, where the archive is on

    def as_dict(self) -> dict:
        """The JSON-contract keys, in the contract's order (`readers` where the archive is on)."""
        row = {"rank": self.rank, "article_id": self.article_id, "title": self.title, "reads": self.reads,
               "votes": self.votes, "rating_avg": self.rating_avg, "score": self.score}
        if self.readers is not None:
            row["readers"] = self.readers
        if self.recent_reads is not None:
            row.update(recent_reads=self.recent_reads, expected_reads=self.expected_reads)
        return row


def top_rows(chosen: Iterable[Scored], titles: Mapping[str, str | None],
             readers: Mapping[str, int] | None = None) -> list[TopRow]:
    """The chosen articles, in their order, as the rows of a top list numbered from 1 (with their readers
    when `readers` is given)."""
    return [TopRow(rank, s.article_id, titles.get(s.article_id), s.tally.reads, s.tally.votes,
                   average(s.tally.rating_sum, s.tally.votes), s.score, s.recent_reads, s.expected_reads,
                   None if readers is None else readers.get(s.article_id, 0))
            for rank, s in enumerate(chosen, start=1)]


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


def sort_key(by: str) -> Callable[[Scored], tuple]:
    """Sort key for a top list: descending score, then the documented tie-breaks."""
    if by == "reads":
        return lambda s: (-s.tally.reads, s.tally.article_id)
    if by == "votes":
        return lambda s: (-s.tally.votes, s.tally.article_id)
    if by == "rating":
        return lambda s: (-_number(s.score), -s.tally.votes, -s.tally.reads, s.tally.article_id)
    if by == "trending":
        return lambda s: (-_number(s.score), -s.recent_reads, s.tally.article_id)
    if by == "readers":
        return lambda s: (-_number(s.score), -s.tally.reads, s.tally.article_id)
    raise ValueError(f"unknown ranking {by!r}; accepted: {', '.join(RANKINGS)}")


def _number(score: float | None) -> float:
    return float("-inf") if score is None else score


def candidates(tallies: Iterable[Tally], by: str, *, min_votes: int, prior_votes: float,
               mean: float | None) -> list[Scored]:
    """What a reads, votes or rating list chooses from: articles with at least one read (reads), one
    vote (votes, rating) and `min_votes` votes in the window, scored."""
    scored = []
    for t in tallies:
        if t.votes < min_votes:
            continue
        if by == "reads" and t.reads > 0:
            scored.append(Scored(t, float(t.reads)))
        elif by == "votes" and t.votes > 0:
            scored.append(Scored(t, float(t.votes)))
        elif by == "rating" and t.votes > 0:
            scored.append(Scored(t, bayesian(mean or 0.0, prior_votes, t.rating_sum, t.votes)))
    return scored


def best(scored: Iterable[Scored], by: str, limit: int | None) -> list[Scored]:
    """The first `limit` in ranking order (None: all of them)."""
    if limit is None:
        return sorted(scored, key=sort_key(by))
    return heapq.nsmallest(limit, scored, key=sort_key(by))


def top_counts(counts: Mapping[str, int], limit: int | None) -> list[tuple[str, int]]:
    """The `limit` largest counts (None: all), ties by article id: the order of the reads and votes lists,
    without scoring every article."""
    positive = ((a, n) for a, n in counts.items() if n > 0)
    key = lambda c: (-c[1], c[0])  # noqa: E731
    return sorted(positive, key=key) if limit is None else heapq.nsmallest(limit, positive, key=key)


def contenders(scored: list[Scored], by: str, limit: int | None) -> list[Scored]:
    """The articles that can still make the first `limit` once reads are known: a rating list is ordered by
    score and votes before reads, so only those up to the `limit`-th on (score, votes), and those tied
    with it, need their reads looked up."""
    if by != "rating" or limit is None or len(scored) <= limit:
        return scored
    coarse = lambda s: (-_number(s.score), -s.tally.votes)  # noqa: E731
    boundary = coarse(heapq.nsmallest(limit, scored, key=coarse)[-1])
    return [s for s in scored if coarse(s) <= boundary]


def readers_contenders(readers: Mapping[str, int], limit: int | None) -> list[str]:
    """The same for a readers list (readers before reads), on plain numbers: those with readers up to the
    `limit`-th and those tied with it (50,000 articles as objects would cost a fifth of a second)."""
    read = {a: n for a, n in readers.items() if n > 0}
    if limit is None or len(read) <= limit:
        return list(read)
    least = heapq.nlargest(limit, read.values())[-1]
    return [a for a, n in read.items() if n >= least]


def rank_by_reads(reads: Mapping[str, int], article_id: str) -> int | None:
    """An article's place in the reads list (count, then article id), or None if it was not read."""
    mine = reads.get(article_id, 0)
    if mine <= 0:
        return None
    return 1 + sum(1 for other, n in reads.items() if n > mine or (n == mine and other < article_id))
