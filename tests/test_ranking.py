"""Unit tests of the ranking formulas: Bayesian average, orders and tie-breaks, rank of one article."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reports.ranking import (
    Tally,
    bayesian,
    best,
    candidates,
    contenders,
    mean_rating,
    rank_by_reads,
    sort_key,
)


def test_the_bayesian_average_pulls_a_few_votes_toward_the_mean_of_all_votes():
    # C = 3.5, m = 10: three 5-star votes give (35 + 15) / 13 = 3.846…, not 5.
    assert bayesian(3.5, 10, 15.0, 3) == pytest.approx(50 / 13)
    # Three hundred 4.8s barely move: (35 + 1440) / 310 = 4.758…
    assert bayesian(3.5, 10, 1440.0, 300) == pytest.approx(1475 / 310)
    assert bayesian(3.5, 10, 1440.0, 300) > bayesian(3.5, 10, 15.0, 3)
    # With no prior the score is the plain average; with nothing at all there is none.
    assert bayesian(3.5, 0, 12.0, 3) == 4.0
    assert bayesian(3.5, 0, 0.0, 0) is None


def test_the_mean_rating_is_over_votes_not_over_articles():
    tallies = [Tally("a", votes=1, rating_sum=5.0), Tally("b", votes=3, rating_sum=3.0)]
    assert mean_rating(tallies) == 2.0
    assert mean_rating([Tally("a", reads=4)]) is None


def test_reads_and_votes_lists_break_ties_by_article_id_only():
    rows = [{"article_id": a, "reads": r, "votes": v} for a, r, v in
            [("b", 5, 1), ("a", 5, 0), ("c", 7, 0), ("d", 5, 9)]]
    assert [r["article_id"] for r in sorted(rows, key=sort_key("reads"))] == ["c", "a", "b", "d"]
    assert [r["article_id"] for r in sorted(rows, key=sort_key("votes"))] == ["d", "b", "a", "c"]


def test_a_rating_list_breaks_ties_by_votes_then_reads_then_article_id():
    rows = [{"article_id": a, "score": s, "votes": v, "reads": r} for a, s, v, r in
            [("e", 4.0, 10, 1), ("d", 4.0, 10, 1), ("c", 4.0, 10, 2), ("b", 4.0, 11, 0), ("a", 3.9, 99, 99)]]
    assert [r["article_id"] for r in sorted(rows, key=sort_key("rating"))] == ["b", "c", "d", "e", "a"]


def test_an_unknown_ranking_is_refused_naming_the_accepted_ones():
    with pytest.raises(ValueError, match="accepted: reads, votes, rating, trending"):
        sort_key("popularity")


def test_candidates_are_the_articles_with_something_to_rank_and_enough_votes():
    tallies = [Tally("read", reads=3), Tally("voted", votes=2, rating_sum=8.0), Tally("both", 1, 5, 20.0)]
    ids = lambda by, n=0: sorted(r["article_id"] for r in candidates(  # noqa: E731
        tallies, by, min_votes=n, prior_votes=10, mean=4.0))
    assert ids("reads") == ["both", "read"]
    assert ids("votes") == ["both", "voted"]
    assert ids("rating") == ["both", "voted"]
    assert ids("rating", 3) == ["both"]
    assert ids("reads", 3) == ["both"]


def test_best_numbers_the_first_rows_from_one():
    rows = [{"article_id": a, "reads": n, "votes": 0} for a, n in [("a", 1), ("b", 3), ("c", 2)]]
    assert [(r["rank"], r["article_id"]) for r in best(rows, "reads", 2)] == [(1, "b"), (2, "c")]


def test_the_rank_by_reads_counts_the_articles_ahead_including_equal_ones_with_smaller_ids():
    reads = {"a": 5, "b": 9, "c": 5, "d": 1}
    assert rank_by_reads(reads, "b") == 1
    assert rank_by_reads(reads, "a") == 2
    assert rank_by_reads(reads, "c") == 3
    assert rank_by_reads(reads, "d") == 4
    assert rank_by_reads(reads, "never-read") is None


_rows = st.lists(
    st.tuples(st.sampled_from([3.0, 3.5, 4.0, 4.25]), st.integers(1, 4), st.integers(0, 3)),
    min_size=0, max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(_rows, st.integers(1, 12))
def test_looking_up_reads_only_for_contenders_gives_the_same_rating_list_as_for_all(rows, limit):
    # The query fills in reads only for `contenders`; that must never change the top `limit`.
    full = [{"article_id": f"a{i:02d}", "score": s, "votes": v, "reads": r} for i, (s, v, r) in enumerate(rows)]
    without_reads = [{**r, "reads": 0} for r in full]
    chosen = {r["article_id"] for r in contenders(without_reads, "rating", limit)}
    narrowed = [r for r in full if r["article_id"] in chosen]
    assert [r["article_id"] for r in best(narrowed, "rating", limit)] == \
        [r["article_id"] for r in best(full, "rating", limit)]
