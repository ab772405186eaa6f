"""Ranking formulas, pure: the Bayesian average and the sort orders of the top lists."""

from __future__ import annotations

DEFAULT_PRIOR_VOTES = 10


def bayesian(mean_all: float, prior_votes: float, rating_sum: float, votes: int) -> float | None:
    """`(C·m + rating_sum) / (m + votes)`: an article's average pulled toward the mean of all votes `C`
    by `m` imaginary votes, so three 5-star votes do not outrank three hundred 4.8s."""
    if prior_votes + votes == 0:
        return None
    return (mean_all * prior_votes + rating_sum) / (prior_votes + votes)


def average(rating_sum: float, votes: int) -> float | None:
    return rating_sum / votes if votes else None


def sort_key(by: str):
    """Sort key for a top list of row dicts: descending score, then the documented tie-breaks."""
    if by == "reads":
        return lambda r: (-r["reads"], r["article_id"])
    if by == "votes":
        return lambda r: (-r["votes"], r["article_id"])
    if by in ("rating", "trending"):
        return lambda r: (-(r["score"] if r["score"] is not None else float("-inf")), -r["votes"], -r["reads"],
                          r["article_id"])
    raise ValueError(f"unknown ranking {by!r}")
