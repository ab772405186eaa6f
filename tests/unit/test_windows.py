"""Unit tests of report windows: --since/--until parsing and the cut into whole days and ragged edges."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta

import pytest

from readrate.reports.detail import SERIES_DAYS, daily_series
from readrate.reports.windows import (
    EARLIEST,
    LATEST,
    Spans,
    Window,
    check_window,
    earlier,
    parse_duration,
    parse_when,
    span_text,
    split,
)

NOW = datetime(2024, 5, 10, 12, 34, 56)


@pytest.mark.parametrize("text, expected", [
    ("24h", NOW - timedelta(hours=24)),
    ("7d", NOW - timedelta(days=7)),
    ("30d", NOW - timedelta(days=30)),
    ("2w", NOW - timedelta(days=14)),
    (" 7D ", NOW - timedelta(days=7)),
])
def test_a_duration_means_that_long_before_now(text, expected):
    assert parse_when(text, NOW) == expected


@pytest.mark.parametrize("text, expected", [
    ("2015-01-01", datetime(2015, 1, 1)),
    ("2015-01-01T10:00", datetime(2015, 1, 1, 10)),
    ("2015-01-01 10:00:30", datetime(2015, 1, 1, 10, 0, 30)),
    ("2015-01-01T10:00Z", datetime(2015, 1, 1, 10)),
    ("2015-01-01T10:00+02:00", datetime(2015, 1, 1, 8)),
    ("2015-01-01T00:00-05:00", datetime(2015, 1, 1, 5)),
    ("2015-01-01T01:00+05:30", datetime(2014, 12, 31, 19, 30)),
])
def test_an_iso_time_is_utc_unless_it_names_a_zone(text, expected):
    assert parse_when(text, NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "7x", "", "0d", "2015-13-01", "1e3h", "-7d"])
def test_a_value_that_is_neither_a_duration_nor_a_time_is_refused_quoting_it(text):
    with pytest.raises(ValueError) as info:
        parse_when(text, NOW)
    assert repr(text) in str(info.value)
    assert "accepted" in str(info.value)


def test_a_zero_or_unitless_duration_is_refused():
    for text in ("0h", "7", "h"):
        with pytest.raises(ValueError, match="accepted"):
            parse_duration(text)


def test_a_window_whose_start_is_not_before_its_end_is_refused_naming_both():
    with pytest.raises(ValueError) as info:
        check_window(Window(datetime(2015, 2, 1), datetime(2015, 1, 1)))
    assert "2015-02-01" in str(info.value) and "2015-01-01" in str(info.value)
    with pytest.raises(ValueError):
        check_window(Window(datetime(2015, 1, 1), datetime(2015, 1, 1)))
    assert check_window(Window(datetime(2015, 1, 1), None)) == Window(datetime(2015, 1, 1), None)


def test_a_window_counts_its_start_and_not_its_end():
    window = Window(datetime(2015, 1, 1), datetime(2015, 1, 2))
    assert window.contains(datetime(2015, 1, 1))
    assert window.contains(datetime(2015, 1, 1, 23, 59, 59, 999999))
    assert not window.contains(datetime(2015, 1, 2))
    assert not window.contains(datetime(2014, 12, 31, 23, 59, 59, 999999))


def test_reads_are_counted_by_the_hour_so_both_ends_go_down_to_the_hour():
    window = Window(datetime(2015, 1, 1, 10, 30), datetime(2015, 1, 3, 7, 45))
    assert window.for_reads() == Window(datetime(2015, 1, 1, 10), datetime(2015, 1, 3, 7))
    assert Window().for_reads() == Window()


def test_a_window_of_whole_days_is_read_from_the_daily_buckets_alone():
    assert split(Window(datetime(2015, 1, 1), datetime(2016, 1, 1))) == Spans((date(2015, 1, 1), date(2016, 1, 1)), ())


def test_ragged_edges_are_read_from_the_finer_table_and_the_days_between_from_the_daily_one():
    spans = split(Window(datetime(2015, 1, 1, 10), datetime(2015, 1, 4, 5)))
    assert spans.days == (date(2015, 1, 2), date(2015, 1, 4))
    assert spans.parts == ((datetime(2015, 1, 1, 10), datetime(2015, 1, 2)),
                           (datetime(2015, 1, 4), datetime(2015, 1, 4, 5)))


def test_a_window_without_a_whole_day_inside_is_one_ragged_part():
    inside_one_day = Window(datetime(2015, 1, 1, 10), datetime(2015, 1, 1, 15))
    across_midnight = Window(datetime(2015, 1, 1, 10), datetime(2015, 1, 2, 5))
    assert split(inside_one_day) == Spans(None, ((inside_one_day.since, inside_one_day.until),))
    assert split(across_midnight) == Spans(None, ((across_midnight.since, across_midnight.until),))


def test_open_ends_stay_open_in_the_days():
    assert split(Window(None, datetime(2015, 1, 2, 5))) == Spans(
        (None, date(2015, 1, 2)), ((datetime(2015, 1, 2), datetime(2015, 1, 2, 5)),))
    assert split(Window(datetime(2015, 1, 1, 22), None)) == Spans(
        (date(2015, 1, 2), None), ((datetime(2015, 1, 1, 22), datetime(2015, 1, 2)),))
    assert split(Window()) == Spans((None, None), ())


def test_every_instant_of_a_window_falls_in_exactly_one_span_and_none_outside_does():
    window = Window(datetime(2015, 1, 1, 10, 17), datetime(2015, 1, 5, 3, 2))
    spans = split(window)
    probe = datetime(2014, 12, 31)
    while probe < datetime(2015, 1, 7):
        in_days = spans.days is not None and spans.days[0] <= probe.date() < spans.days[1]
        in_parts = sum(1 for start, stop in spans.parts if start <= probe < stop)
        assert in_days + in_parts == (1 if window.contains(probe) else 0), probe
        probe += timedelta(minutes=13)


def test_the_daily_series_covers_every_day_of_a_closed_window_with_zeros():
    window = Window(datetime(2015, 1, 1), datetime(2015, 1, 4))
    series = daily_series(Counter({date(2015, 1, 2): 5}), Counter({date(2015, 1, 3): 1}), window)
    assert series == [{"day": date(2015, 1, 1), "reads": 0, "votes": 0},
                      {"day": date(2015, 1, 2), "reads": 5, "votes": 0},
                      {"day": date(2015, 1, 3), "reads": 0, "votes": 1}]


def test_an_open_end_of_the_daily_series_stops_at_the_first_or_last_active_day():
    reads = Counter({date(2015, 3, 2): 1, date(2015, 3, 4): 2})
    assert [d["day"] for d in daily_series(reads, Counter(), Window())] == [
        date(2015, 3, 2), date(2015, 3, 3), date(2015, 3, 4)]
    assert daily_series(Counter(), Counter(), Window()) == []
    assert len(daily_series(reads, Counter(), Window(datetime(2015, 3, 1), None))) == 4


@pytest.mark.parametrize("text", [
    "9999-12-31T12:00",        # no midnight after it to round a window's first whole day up to
    "9999-12-31T23:00-05:00",  # past the last datetime once in UTC
    "0001-01-01T00:00+01:00",  # before the first one once in UTC
    "999999w",                 # 19,000 years before now
    "106000w",
])
def test_a_time_outside_the_year_1_to_the_last_midnight_is_refused_quoting_it(text):
    with pytest.raises(ValueError) as info:
        parse_when(text, NOW)
    assert repr(text) in str(info.value)
    assert "accepted:" in str(info.value) and "0001-01-01 to 9999-12-31 00:00" in str(info.value)


def test_the_year_1_and_the_last_midnight_are_accepted_and_cut_into_spans_without_overflowing():
    assert parse_when("0001-01-01", NOW) == EARLIEST == datetime.min
    assert parse_when("9999-12-31", NOW) == LATEST
    assert parse_when("9999-12-31T01:00+01:00", NOW) == LATEST
    assert parse_when("105000w", NOW) == NOW - timedelta(weeks=105000)
    assert split(Window(EARLIEST, LATEST)) == Spans((date(1, 1, 1), date(9999, 12, 31)), ())
    assert split(Window(LATEST, None)) == Spans((date(9999, 12, 31), None), ())
    assert split(Window(None, EARLIEST)) == Spans((None, date(1, 1, 1)), ())
    last_noon = datetime(9999, 12, 30, 12)
    assert split(Window(last_noon, LATEST)) == Spans(None, ((last_noon, LATEST),))


def test_earlier_stops_at_the_year_1_instead_of_overflowing():
    assert earlier(datetime(2024, 1, 8), timedelta(days=7)) == datetime(2024, 1, 1)
    assert earlier(datetime(1, 1, 3), timedelta(days=7)) == EARLIEST
    assert earlier(EARLIEST, timedelta(weeks=999999)) == EARLIEST


@pytest.mark.parametrize("span, text", [
    (timedelta(hours=36), "36h"), (timedelta(days=10), "10d"), (timedelta(weeks=2), "2w"),
    (timedelta(weeks=999999), "999999w"), (timedelta(hours=1), "1h"),
])
def test_a_span_is_shown_in_the_largest_unit_a_duration_reads_back(span, text):
    assert span_text(span) == text
    assert parse_duration(text) == span


def test_a_daily_series_of_centuries_runs_from_the_first_to_the_last_active_day():
    reads = Counter({date(2015, 3, 2): 1, date(2015, 3, 4): 2})
    for window in (Window(EARLIEST, LATEST), Window(EARLIEST, None), Window(None, LATEST)):
        assert [d["day"] for d in daily_series(reads, Counter(), window)] == [
            date(2015, 3, 2), date(2015, 3, 3), date(2015, 3, 4)], window
        assert daily_series(Counter(), Counter(), window) == []
    # Up to SERIES_DAYS a closed window keeps every one of its days, zeros included.
    long = Window(datetime(2000, 1, 1), datetime(2000, 1, 1) + timedelta(days=SERIES_DAYS))
    assert len(daily_series(reads, Counter(), long)) == SERIES_DAYS


def test_a_window_that_ends_at_the_earliest_time_has_an_empty_daily_series():
    assert daily_series(Counter({date(1, 1, 1): 1}), Counter(), Window(None, EARLIEST)) == []
