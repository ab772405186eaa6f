"""The trending formula, with worked examples computed by hand.

    expected = before_reads × recent_hours / before_hours
    score    = (recent_reads + k) / (expected + k)
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from readrate.reports.ranking import best
from readrate.reports.trending import expected_reads, lift, trend_rows, trend_windows
from readrate.reports.windows import EARLIEST, LATEST, Window

NOW = datetime(2024, 5, 10, 12, 34)
DAY = timedelta(days=1)


def test_by_default_the_last_24_hours_of_the_last_7_days_are_compared_with_the_6_days_before():
    periods = trend_windows(Window(), timedelta(hours=24), NOW)
    assert periods.recent == Window(datetime(2024, 5, 9, 12), datetime(2024, 5, 10, 12))
    assert periods.before == Window(datetime(2024, 5, 3, 12), datetime(2024, 5, 9, 12))
    assert (periods.recent_hours, periods.before_hours) == (24, 144)


def test_a_given_window_is_cut_at_the_recent_period_before_its_end():
    periods = trend_windows(Window(datetime(2024, 3, 1), datetime(2024, 3, 11)), timedelta(days=2), NOW)
    assert periods.recent == Window(datetime(2024, 3, 9), datetime(2024, 3, 11))
    assert periods.before == Window(datetime(2024, 3, 1), datetime(2024, 3, 9))
    assert (periods.recent_hours, periods.before_hours) == (48, 192)


def test_a_recent_period_as_long_as_the_window_is_refused():
    with pytest.raises(ValueError, match="leaves nothing before it"):
        trend_windows(Window(datetime(2024, 3, 1), datetime(2024, 3, 2)), timedelta(hours=24), NOW)


def test_a_recent_period_longer_than_all_of_history_is_refused_quoting_it_without_overflowing():
    for window in (Window(), Window(EARLIEST, None), Window(None, LATEST)):
        with pytest.raises(ValueError) as info:
            trend_windows(window, timedelta(weeks=999999), NOW)
        assert "--recent 999999w leaves nothing before it" in str(info.value)
        assert "accepted: a recent period shorter than the window" in str(info.value)


def test_trends_at_the_ends_of_time_start_no_earlier_than_the_year_1():
    periods = trend_windows(Window(None, datetime(1, 1, 3)), timedelta(hours=24), NOW)
    assert periods.before == Window(EARLIEST, datetime(1, 1, 2))
    periods = trend_windows(Window(None, LATEST), timedelta(hours=24), NOW)
    assert periods.recent == Window(datetime(9999, 12, 30), LATEST)
    periods = trend_windows(Window(EARLIEST, datetime(2024, 3, 1)), timedelta(weeks=100000), NOW)
    assert periods.before.since == EARLIEST and periods.recent.until == datetime(2024, 3, 1)
    with pytest.raises(ValueError, match="leaves nothing before it"):
        trend_windows(Window(None, EARLIEST), timedelta(hours=24), NOW)


def test_the_expected_reads_are_the_earlier_pace_over_the_recent_hours():
    # 60 reads in 144 hours is 10 reads a day: 10 expected in the last 24 hours.
    assert expected_reads(60, 144, 24) == 10.0
    assert expected_reads(0, 144, 24) == 0.0
    assert expected_reads(7, 48, 12) == 1.75


@pytest.mark.parametrize("recent, expected, k, score", [
    (30, 10.0, 10, 2.0),        # (30 + 10) / (10 + 10): read twice as fast as before
    (1000, 1000.0, 10, 1.0),    # a steady best-seller is not trending
    (5, 0.0, 10, 1.5),          # a new article: (5 + 10) / 10, damped, not infinite
    (10, 100.0, 10, 20 / 110),  # falling: 0.1818…
    (3, 0.0, 1, 4.0),           # a small k trusts small counts more: (3 + 1) / 1
    (300, 100.0, 10, 310 / 110),
])
def test_the_score_is_recent_reads_over_expected_reads_each_plus_k(recent, expected, k, score):
    assert lift(recent, expected, k) == pytest.approx(score)


def test_a_worked_week_ranks_a_surge_above_a_newcomer_above_a_steady_article_above_a_fading_one():
    periods = trend_windows(Window(), timedelta(hours=24), NOW)  # 24 recent hours, 144 before
    recent = {"surge": 30, "newcomer": 5, "steady": 1000, "fading": 10, "gone": 0}
    before = {"surge": 60, "steady": 6000, "fading": 600, "gone": 50}
    rows = best(trend_rows(recent, before, periods, prior_reads=10), "trending", 10)
    assert [(s.article_id, s.expected_reads, s.score) for s in rows] == [
        ("surge", 10.0, 2.0),                 # expected 60 × 24/144 = 10; (30+10)/(10+10)
        ("newcomer", 0.0, 1.5),               # (5+10)/(0+10)
        ("steady", 1000.0, 1.0),              # expected 6000 × 24/144 = 1000
        ("fading", 100.0, pytest.approx(20 / 110)),  # expected 100; (10+10)/(100+10)
    ]
    assert [s.tally.reads for s in rows] == [90, 5, 7000, 610]  # reads over the whole window
    assert "gone" not in {s.article_id for s in rows}  # not read recently: not listed


def test_equal_trend_scores_break_by_recent_reads_then_article_id():
    periods = trend_windows(Window(), timedelta(hours=24), NOW)
    # b: (20+10)/(5+10) = 2; a and c: (10+10)/(0+10) = 2.
    recent, before = {"c": 10, "a": 10, "b": 20}, {"b": 30}
    rows = best(trend_rows(recent, before, periods, prior_reads=10), "trending", 10)
    assert [(s.article_id, s.score) for s in rows] == [("b", 2.0), ("a", 2.0), ("c", 2.0)]
