"""Unit tests of the ranking formulas: Bayesian average, orders and tie-breaks, rank of one article, and
the rows a top list is made of."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from readrate.reports.ranking import (
    Scored,
    Tally,
    TopRow,
    bayesian,
    best,
    candidates,
    contenders,
    mean_rating,
    rank_by_reads,
    readers_contenders,
    sort_key,
    top_counts,
    top_rows,
)


def scored(article_id: str, reads: int = 0, votes: int = 0, score: float | None = None) -> Scored:
    return Scored(Tally(article_id, reads, votes, 4.0 * votes), score)


def ids(chosen) -> list[str]:
    return [s.article_id for s in chosen]


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
    rows = [scored(a, r, v) for a, r, v in [("b", 5, 1), ("a", 5, 0), ("c", 7, 0), ("d", 5, 9)]]
    assert ids(sorted(rows, key=sort_key("reads"))) == ["c", "a", "b", "d"]
    assert ids(sorted(rows, key=sort_key("votes"))) == ["d", "b", "a", "c"]


def test_a_rating_list_breaks_ties_by_votes_then_reads_then_article_id():
    rows = [scored(a, r, v, s) for a, s, v, r in
            [("e", 4.0, 10, 1), ("d", 4.0, 10, 1), ("c", 4.0, 10, 2), ("b", 4.0, 11, 0), ("a", 3.9, 99, 99)]]
    assert ids(sorted(rows, key=sort_key("rating"))) == ["b", "c", "d", "e", "a"]


def test_an_unknown_ranking_is_refused_naming_the_accepted_ones():
    with pytest.raises(ValueError, match="accepted: reads, votes, rating, trending"):
        sort_key("popularity")


def test_candidates_are_the_articles_with_something_to_rank_and_enough_votes():
    tallies = [Tally("read", reads=3), Tally("voted", votes=2, rating_sum=8.0), Tally("both", 1, 5, 20.0)]
    def chosen(by: str, n: int = 0) -> list[str]:
        return sorted(ids(candidates(tallies, by, min_votes=n, prior_votes=10, mean=4.0)))

    assert chosen("reads") == ["both", "read"]
    assert chosen("votes") == ["both", "voted"]
    assert chosen("rating") == ["both", "voted"]
    assert chosen("rating", 3) == ["both"]
    assert chosen("reads", 3) == ["both"]


def test_best_keeps_the_first_in_ranking_order_and_a_limit_of_none_keeps_them_all():
    rows = [scored(a, n) for a, n in [("a", 1), ("b", 3), ("c", 2)]]
    assert ids(best(rows, "reads", 2)) == ["b", "c"]
    assert ids(best(rows, "reads", None)) == ["b", "c", "a"]
    assert top_counts({"a": 1, "b": 3, "c": 2, "z": 0}, None) == [("b", 3), ("c", 2), ("a", 1)]
    assert top_counts({"a": 1, "b": 3, "c": 2}, 1) == [("b", 3)]


def test_top_rows_are_numbered_from_one_in_the_order_chosen_with_their_titles_and_average():
    chosen = [Scored(Tally("b", 9, 2, 9.0), 4.2), Scored(Tally("a", 3, 0, 0.0), 3.9)]
    rows = top_rows(chosen, {"b": "Bee"})
    assert rows == [TopRow(1, "b", "Bee", 9, 2, 4.5, 4.2), TopRow(2, "a", None, 3, 0, None, 3.9)]


def test_a_top_row_as_a_dict_has_exactly_the_json_contract_keys_in_order():
    row = TopRow(1, "a", "T", 5, 2, 4.5, 4.1)
    assert list(row.as_dict()) == ["rank", "article_id", "title", "reads", "votes", "rating_avg", "score"]
    assert row.as_dict() == {"rank": 1, "article_id": "a", "title": "T", "reads": 5, "votes": 2,
                             "rating_avg": 4.5, "score": 4.1}
    trending = TopRow(1, "a", None, 5, 0, None, 1.5, recent_reads=5, expected_reads=0.0)
    assert list(trending.as_dict()) == ["rank", "article_id", "title", "reads", "votes", "rating_avg", "score",
                                        "recent_reads", "expected_reads"]


def test_a_top_row_cannot_be_changed_once_built():
    row = TopRow(1, "a", None, 5, 0, None, 5.0)
    with pytest.raises(AttributeError):
        row.title = "filled in later"  # type: ignore[misc]


def test_counts_looked_up_later_replace_the_tally_and_keep_the_score():
    first = Scored(Tally("a", reads=4), 1.5, recent_reads=2, expected_reads=1.0)
    later = first.counted(votes={"a": (3, 12.0)}, reads={"b": 1})
    assert later == Scored(Tally("a", 0, 3, 12.0), 1.5, recent_reads=2, expected_reads=1.0)
    assert first.counted(votes={}).tally == Tally("a", reads=4)


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
    full = [scored(f"a{i:02d}", r, v, s) for i, (s, v, r) in enumerate(rows)]
    without_reads = [scored(x.article_id, 0, x.tally.votes, x.score) for x in full]
    chosen = set(ids(contenders(without_reads, "rating", limit)))
    narrowed = [x for x in full if x.article_id in chosen]
    assert ids(best(narrowed, "rating", limit)) == ids(best(full, "rating", limit))
    assert contenders(without_reads, "rating", None) == without_reads


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 4), st.integers(0, 3)), max_size=40), st.integers(1, 12))
def test_looking_up_reads_only_for_contenders_gives_the_same_readers_list_as_for_all(rows, limit):
    # `report top --by readers` ranks by readers, then reads, then id, and looks reads up for contenders only.
    full = [Scored(Tally(f"a{i:02d}", reads), float(readers)) for i, (readers, reads) in enumerate(rows)]
    chosen = set(readers_contenders({x.article_id: int(x.score) for x in full}, limit))
    narrowed = [x for x in full if x.article_id in chosen]
    assert ids(best(narrowed, "readers", limit)) == ids(best(full, "readers", limit))


def test_only_articles_tied_with_the_last_place_on_readers_are_contenders():
    listed = {"a": 9, "b": 7, "c": 7, "d": 7, "e": 2, "f": 0}
    assert readers_contenders(listed, 2) == ["a", "b", "c", "d"]
    assert readers_contenders(listed, 1) == ["a"]
    assert readers_contenders(listed, None) == ["a", "b", "c", "d", "e"]
