"""The vote rules as a pure function: one vote per voter per article, the latest event time wins.

Given a batch's winning votes and what the database already holds for those
(article, voter) pairs, `plan_votes` says which votes to write and how each
article's vote count, rating sum and daily buckets move. A re-vote replaces the
old rating (the count stays, the sum moves by the difference, and the vote moves
from its old day to its new one); a re-vote older than the stored one changes
nothing; on equal times the later arrival wins.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from readrate.events.clock import MS_PER_DAY

from .aggregate import VoteCast


@dataclass
class ArticleVotes:
    """How one article's vote totals move."""

    votes: int = 0
    rating_sum: float = 0.0
    last_vote_at_ms: int | None = None


@dataclass
class VotePlan:
    """The writes a batch's votes cause."""

    upserts: list[VoteCast] = field(default_factory=list)
    articles: dict[str, ArticleVotes] = field(default_factory=dict)
    daily: dict[tuple[str, int], list] = field(default_factory=dict)  # (article, epoch day) -> [votes, sum]

    def _bucket(self, article_id: str, at_ms: int) -> list:
        key = (article_id, at_ms // MS_PER_DAY)
        bucket = self.daily.get(key)
        if bucket is None:
            bucket = self.daily[key] = [0, 0.0]
        return bucket


def plan_votes(
    incoming: Iterable[VoteCast], stored: Mapping[tuple[str, str], tuple[float, int]]
) -> VotePlan:
    """Plan the writes for `incoming` votes given `stored` (rating, at_ms) per (article, voter)."""
    plan = VotePlan()
    for vote in incoming:
        old = stored.get((vote.article_id, vote.voter))
        if old is not None and vote.at_ms < old[1]:
            continue
        plan.upserts.append(vote)
        totals = plan.articles.get(vote.article_id)
        if totals is None:
            totals = plan.articles[vote.article_id] = ArticleVotes()
        if totals.last_vote_at_ms is None or vote.at_ms > totals.last_vote_at_ms:
            totals.last_vote_at_ms = vote.at_ms
        new_day = plan._bucket(vote.article_id, vote.at_ms)
        new_day[0] += 1
        new_day[1] += vote.rating
        if old is None:
            totals.votes += 1
            totals.rating_sum += vote.rating
        else:
            old_rating, old_at_ms = old
            totals.rating_sum += vote.rating - old_rating
            old_day = plan._bucket(vote.article_id, old_at_ms)
            old_day[0] -= 1
            old_day[1] -= old_rating
    return plan
