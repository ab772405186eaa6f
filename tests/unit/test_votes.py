"""`plan_votes()`: one vote per voter per article, the latest event time wins — as a pure plan."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from readrate.workers.aggregate import VoteCast
from readrate.events.clock import MS_PER_DAY
from readrate.workers.votes import plan_votes

DAY_0 = 20_000  # epoch day 20000 is 2024-10-04
T0 = DAY_0 * MS_PER_DAY + 12 * 3_600_000  # noon of that day


def cast(rating: float, at_ms: int, article: str = "a", voter: str = "u") -> VoteCast:
    return VoteCast(article, voter, rating, at_ms)


def daily(plan) -> dict[tuple[str, int], tuple[int, float]]:
    """The daily deltas, leaving out buckets that net to nothing."""
    return {k: (n, s) for k, (n, s) in plan.daily.items() if (n, s) != (0, 0.0)}


def test_a_new_vote_adds_one_vote_and_its_rating():
    plan = plan_votes([cast(4.0, T0)], stored={})

    assert plan.upserts == [cast(4.0, T0)]
    totals = plan.articles["a"]
    assert (totals.votes, totals.rating_sum, totals.last_vote_at_ms) == (1, 4.0, T0)
    assert daily(plan) == {("a", DAY_0): (1, 4.0)}


def test_new_votes_from_several_voters_add_up_per_article():
    plan = plan_votes(
        [cast(4.0, T0, voter="u1"), cast(2.0, T0 + 5, voter="u2"), cast(5.0, T0, article="b", voter="u1")],
        stored={},
    )

    assert (plan.articles["a"].votes, plan.articles["a"].rating_sum) == (2, 6.0)
    assert plan.articles["a"].last_vote_at_ms == T0 + 5
    assert (plan.articles["b"].votes, plan.articles["b"].rating_sum) == (1, 5.0)
    assert daily(plan) == {("a", DAY_0): (2, 6.0), ("b", DAY_0): (1, 5.0)}


def test_a_re_vote_replaces_the_stored_one_keeping_the_count_and_moving_the_sum_by_the_difference():
    plan = plan_votes([cast(2.0, T0 + 1000)], stored={("a", "u"): (5.0, T0)})

    assert plan.upserts == [cast(2.0, T0 + 1000)]
    totals = plan.articles["a"]
    assert totals.votes == 0, "the count does not move: the voter still has one vote"
    assert totals.rating_sum == -3.0
    assert totals.last_vote_at_ms == T0 + 1000
    assert daily(plan) == {("a", DAY_0): (0, -3.0)}


def test_a_re_vote_with_the_same_rating_changes_no_totals_but_updates_the_stored_vote():
    plan = plan_votes([cast(4.0, T0 + 1000)], stored={("a", "u"): (4.0, T0)})

    assert plan.upserts == [cast(4.0, T0 + 1000)]
    assert (plan.articles["a"].votes, plan.articles["a"].rating_sum) == (0, 0.0)
    assert daily(plan) == {}


def test_a_re_vote_older_than_the_stored_vote_changes_nothing():
    plan = plan_votes([cast(1.0, T0 - 1)], stored={("a", "u"): (5.0, T0)})

    assert plan.upserts == []
    assert plan.articles == {}
    assert plan.daily == {}


def test_a_re_vote_at_the_same_time_as_the_stored_one_wins_as_the_later_arrival():
    plan = plan_votes([cast(1.0, T0)], stored={("a", "u"): (5.0, T0)})

    assert plan.upserts == [cast(1.0, T0)]
    assert (plan.articles["a"].votes, plan.articles["a"].rating_sum) == (0, -4.0)


def test_a_replaced_vote_moves_from_its_old_day_to_its_new_day():
    next_day = T0 + MS_PER_DAY
    plan = plan_votes([cast(3.0, next_day)], stored={("a", "u"): (5.0, T0)})

    assert daily(plan) == {("a", DAY_0): (-1, -5.0), ("a", DAY_0 + 1): (1, 3.0)}
    assert (plan.articles["a"].votes, plan.articles["a"].rating_sum) == (0, -2.0)


def test_a_re_vote_just_after_midnight_utc_moves_to_the_next_day():
    just_before = (DAY_0 + 1) * MS_PER_DAY - 1
    just_after = (DAY_0 + 1) * MS_PER_DAY
    plan = plan_votes([cast(4.0, just_after)], stored={("a", "u"): (4.0, just_before)})

    assert daily(plan) == {("a", DAY_0): (-1, -4.0), ("a", DAY_0 + 1): (1, 4.0)}


def test_only_the_voters_with_stored_votes_are_treated_as_re_votes():
    plan = plan_votes(
        [cast(3.0, T0, voter="old"), cast(4.0, T0, voter="new")],
        stored={("a", "old"): (1.0, T0 - MS_PER_DAY), ("b", "new"): (5.0, T0)},
    )

    totals = plan.articles["a"]
    assert totals.votes == 1, "only the new voter adds a vote"
    assert totals.rating_sum == (3.0 - 1.0) + 4.0
    assert daily(plan) == {("a", DAY_0 - 1): (-1, -1.0), ("a", DAY_0): (2, 7.0)}


def test_a_stale_re_vote_does_not_hide_another_voters_new_vote():
    plan = plan_votes([cast(1.0, T0 - 10, voter="stale"), cast(5.0, T0, voter="fresh")],
                      stored={("a", "stale"): (3.0, T0)})

    assert plan.upserts == [cast(5.0, T0, voter="fresh")]
    assert (plan.articles["a"].votes, plan.articles["a"].rating_sum) == (1, 5.0)


def test_half_star_differences_are_summed_exactly():
    plan = plan_votes([cast(0.5, T0 + 1, voter=f"u{i}") for i in range(10)],
                      stored={("a", f"u{i}"): (4.5, T0) for i in range(10)})

    assert plan.articles["a"].rating_sum == -40.0


# -- property: planning against the stored state equals recomputing from scratch -----------------

VOTERS = st.sampled_from(["u1", "u2", "u3"])
ARTICLES = st.sampled_from(["a", "b"])
RATINGS = st.sampled_from([0.5, 1.0, 2.5, 4.0, 5.0])
AT = st.integers(min_value=T0 - 2 * MS_PER_DAY, max_value=T0 + 2 * MS_PER_DAY)


@given(
    stored=st.dictionaries(st.tuples(ARTICLES, VOTERS), st.tuples(RATINGS, AT), max_size=6),
    incoming=st.dictionaries(st.tuples(ARTICLES, VOTERS), st.tuples(RATINGS, AT), max_size=6),
)
def test_applying_a_plan_to_the_stored_totals_gives_the_totals_of_the_winning_votes(stored, incoming):
    votes = [VoteCast(a, v, r, t) for (a, v), (r, t) in incoming.items()]
    plan = plan_votes(votes, stored)

    winners = dict(stored)
    for (a, v), (r, t) in incoming.items():
        if (a, v) not in stored or t >= stored[(a, v)][1]:
            winners[(a, v)] = (r, t)

    def totals(table):
        by_article: dict[str, list] = {}
        by_day: dict[tuple[str, int], list] = {}
        for (a, _v), (r, t) in table.items():
            by_article.setdefault(a, [0, 0.0])
            by_article[a][0] += 1
            by_article[a][1] += r
            by_day.setdefault((a, t // MS_PER_DAY), [0, 0.0])
            by_day[(a, t // MS_PER_DAY)][0] += 1
            by_day[(a, t // MS_PER_DAY)][1] += r
        return by_article, by_day

    before_articles, before_days = totals(stored)
    after_articles, after_days = totals(winners)
    for article, delta in plan.articles.items():
        entry = before_articles.setdefault(article, [0, 0.0])
        entry[0] += delta.votes
        entry[1] += delta.rating_sum
    for key, (n, s) in plan.daily.items():
        entry = before_days.setdefault(key, [0, 0.0])
        entry[0] += n
        entry[1] += s

    def nonzero(table):
        return {k: (n, round(s, 9)) for k, (n, s) in table.items() if n or round(s, 9)}

    assert nonzero(before_articles) == nonzero(after_articles)
    assert nonzero(before_days) == nonzero(after_days)
    assert {(u.article_id, u.voter) for u in plan.upserts} == {
        k for k in incoming if k not in stored or incoming[k][1] >= stored[k][1]
    }
