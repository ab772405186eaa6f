"""Event types and their rules: article ids, visitors and voters, event times (pure, no servers)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from readrate.events.errors import InvalidEvent
from readrate.events.model import MAX_FUTURE_MS, Read, Vote, check_time, to_ms

NOW_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


# -- article ids ---------------------------------------------------------------


@pytest.mark.parametrize(
    "article_id", ["a", "article-42", "x" * 128, "é" * 128, "日本語の記事", "a b/c?d=e&f", "🙂" * 128]
)
def test_an_article_id_of_one_to_128_characters_is_accepted(article_id):
    assert Read(article_id, 0).article_id == article_id


def test_an_empty_article_id_is_refused_saying_what_is_accepted():
    with pytest.raises(InvalidEvent, match="empty; accepted: 1-128 characters"):
        Read("", 0)


def test_an_article_id_of_129_characters_is_refused_with_its_length():
    with pytest.raises(InvalidEvent) as caught:
        Read("x" * 129, 0)

    assert "129 characters" in str(caught.value)
    assert "accepted: 1-128" in str(caught.value)
    assert "'xxxx" in str(caught.value), "the message quotes the start of the value"
    assert "x" * 100 not in str(caught.value), "a long value is not quoted whole"


def test_an_article_id_of_128_wide_characters_is_counted_in_characters_not_bytes():
    assert Read("€" * 128, 0).article_id == "€" * 128
    with pytest.raises(InvalidEvent):
        Read("€" * 129, 0)


@pytest.mark.parametrize("bad", ["\x00", "\n", "\r", "\t", "\x1b", "\x7f", "\x85", "\x9f"])
def test_an_article_id_with_a_control_character_is_refused(bad):
    with pytest.raises(InvalidEvent) as caught:
        Read(f"article{bad}42", 0)

    assert "control character" in str(caught.value)
    assert repr(f"article{bad}42") in str(caught.value)


BIDI = ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069"]


@pytest.mark.parametrize("bidi", BIDI, ids=lambda c: f"U+{ord(c):04X}")
def test_an_article_id_with_a_bidi_override_character_is_refused_quoting_it_escaped(bidi):
    with pytest.raises(InvalidEvent) as caught:
        Read(f"post-{bidi}4", 0)

    message = str(caught.value)
    assert message.startswith(f"article id 'post-\\u{ord(bidi):04x}4' contains the bidi-override character")
    assert bidi not in message, "the message must not reorder the terminal it is shown on"
    assert "accepted: text without bidi-override characters (U+202A-U+202E, U+2066-U+2069)" in message


@pytest.mark.parametrize("bidi", BIDI, ids=lambda c: f"U+{ord(c):04X}")
def test_a_visitor_or_voter_with_a_bidi_override_character_is_refused(bidi):
    with pytest.raises(InvalidEvent, match="^visitor .* contains the bidi-override character"):
        Read("a", 0, f"v{bidi}")
    with pytest.raises(InvalidEvent, match="^voter .* contains the bidi-override character"):
        Vote("a", 0, f"u{bidi}", 3.0)


@pytest.mark.parametrize("text", ["\u200f", "\u200e", "\u061c", "مقالة-42", "עברית"],
                         ids=["RLM", "LRM", "ALM", "arabic", "hebrew"])
def test_right_to_left_text_and_direction_marks_are_accepted_in_ids(text):
    # Marks change no order outside themselves, and right-to-left scripts are ordinary ids.
    assert Read(text, 0, text).article_id == text


def test_an_article_id_holding_an_undecodable_byte_as_a_surrogate_is_refused():
    raw = b"article-\xff".decode("utf-8", "surrogateescape")

    with pytest.raises(InvalidEvent, match="not UTF-8"):
        Read(raw, 0)


def test_an_article_id_holding_a_lone_surrogate_is_refused():
    with pytest.raises(InvalidEvent):
        Read("a\ud800b", 0)


@pytest.mark.parametrize("article_id", [None, 42, b"article", ["a"]])
def test_an_article_id_that_is_not_text_is_refused(article_id):
    with pytest.raises(InvalidEvent, match="is not text"):
        Read(article_id, 0)


def test_a_vote_checks_its_article_id_as_a_read_does():
    with pytest.raises(InvalidEvent):
        Vote("a\x00", 0, "voter", 3.0)


# -- visitors and voters -------------------------------------------------------


def test_a_read_without_a_visitor_is_accepted():
    assert Read("a", 0).visitor is None


def test_an_empty_visitor_counts_as_no_visitor():
    assert Read("a", 0, "").visitor is None


def test_a_visitor_of_128_characters_is_accepted_and_129_refused():
    assert Read("a", 0, "v" * 128).visitor == "v" * 128
    with pytest.raises(InvalidEvent, match="visitor .* is 129 characters; accepted: at most 128"):
        Read("a", 0, "v" * 129)


def test_a_voter_of_128_characters_is_accepted_and_129_refused():
    assert Vote("a", 0, "u" * 128, 4.0).voter == "u" * 128
    with pytest.raises(InvalidEvent, match="voter .* is 129 characters; accepted: at most 128"):
        Vote("a", 0, "u" * 129, 4.0)


@pytest.mark.parametrize("voter", [None, ""])
def test_a_vote_is_refused_when_it_has_no_voter(voter):
    with pytest.raises(InvalidEvent, match=r"^voter \(field 'v'\) is required for a vote$"):
        Vote("a", 0, voter, 4.0)


@pytest.mark.parametrize("bad", ["\x00", "\n", "\x7f", b"\xfe".decode("utf-8", "surrogateescape")])
def test_a_visitor_or_voter_with_a_control_character_or_bad_byte_is_refused(bad):
    with pytest.raises(InvalidEvent, match="visitor"):
        Read("a", 0, f"v{bad}")
    with pytest.raises(InvalidEvent, match="voter"):
        Vote("a", 0, f"u{bad}", 3.0)


def test_a_numeric_visitor_is_kept_as_text():
    assert Read("a", 0, 1001).visitor == "1001"


def test_a_numeric_voter_is_kept_as_text_so_it_equals_the_same_vote_read_back():
    # A page passing its integer user id must give the same Vote the wire decodes to.
    assert Vote("a", 0, 1001, 4.0) == Vote("a", 0, "1001", 4.0)
    assert Vote("a", 0, 1001, 4.0).voter == "1001"


# -- event times ---------------------------------------------------------------


@pytest.mark.parametrize("at_ms", [-1, -NOW_MS])
def test_a_negative_event_time_is_refused(at_ms):
    with pytest.raises(InvalidEvent, match="negative"):
        Read("a", at_ms)


@pytest.mark.parametrize("at_ms", [1.0, 1.5, "5", None, True, False])
def test_an_event_time_that_is_not_an_integer_is_refused(at_ms):
    with pytest.raises(InvalidEvent, match="not an integer"):
        Vote("a", at_ms, "u", 3.0)


def test_event_time_zero_is_the_epoch_and_is_accepted():
    assert Read("a", 0).at_ms == 0


def test_an_event_exactly_five_minutes_ahead_is_accepted():
    assert MAX_FUTURE_MS == 300_000
    assert check_time(NOW_MS + 300_000, NOW_MS) == NOW_MS + 300_000


def test_an_event_one_millisecond_more_than_five_minutes_ahead_is_refused():
    with pytest.raises(InvalidEvent) as caught:
        check_time(NOW_MS + 300_001, NOW_MS)

    assert str(NOW_MS + 300_001) in str(caught.value)
    assert "future" in str(caught.value)
    assert "at most 300 s ahead" in str(caught.value)


def test_an_event_far_in_the_past_is_accepted():
    assert check_time(1, NOW_MS) == 1


def test_an_event_a_day_ahead_says_how_far_ahead_it_is():
    with pytest.raises(InvalidEvent, match="86400 s in the future"):
        check_time(NOW_MS + 86_400_000, NOW_MS)


# -- turning caller times into epoch milliseconds -------------------------------


@pytest.mark.parametrize(
    ("at", "expected_ms"),
    [
        (None, NOW_MS),
        (0, 0),
        (1_700_000_000_123, 1_700_000_000_123),
        ("1700000000123", 1_700_000_000_123),
        (" 1700000000123 ", 1_700_000_000_123),
        ("2024-01-02T03:04:05", 1_704_164_645_000),
        ("2024-01-02T03:04:05Z", 1_704_164_645_000),
        ("2024-01-02T03:04:05.123Z", 1_704_164_645_123),
        ("2024-01-02T03:04:05+00:00", 1_704_164_645_000),
        ("2024-01-02T05:04:05+02:00", 1_704_164_645_000),
        ("2024-01-01T22:04:05-05:00", 1_704_164_645_000),
        ("2024-01-02 03:04:05", 1_704_164_645_000),
        ("2024-01-02", 1_704_153_600_000),
        ("1970-01-01T00:00:00Z", 0),
        (datetime(2024, 1, 2, 3, 4, 5), 1_704_164_645_000),
        (datetime(2024, 1, 2, 3, 4, 5, 123000, tzinfo=UTC), 1_704_164_645_123),
        (datetime(2024, 1, 2, 4, 4, 5, tzinfo=timezone(timedelta(hours=1))), 1_704_164_645_000),
        (date(2024, 1, 2), 1_704_153_600_000),
    ],
)
def test_an_event_time_is_converted_to_epoch_milliseconds_utc(at, expected_ms):
    assert to_ms(at, NOW_MS) == expected_ms


def test_a_naive_iso_time_is_taken_as_utc_whatever_the_local_zone(monkeypatch):
    import time

    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        assert to_ms("2024-07-01T12:00:00", NOW_MS) == 1_719_835_200_000
        assert to_ms(datetime(2024, 7, 1, 12), NOW_MS) == 1_719_835_200_000
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.mark.parametrize("at", ["", "yesterday", "2024-13-01", "2024-01-02T25:00", "12:00", "1.5", "1e3"])
def test_an_event_time_that_is_neither_milliseconds_nor_iso_8601_is_refused_quoting_it(at):
    with pytest.raises(InvalidEvent) as caught:
        to_ms(at, NOW_MS)

    assert repr(at) in str(caught.value)
    assert "ISO 8601" in str(caught.value)


@pytest.mark.parametrize("at", [True, 1.5, [1], b"123"])
def test_an_event_time_of_another_type_is_refused(at):
    with pytest.raises(InvalidEvent, match="is not a time"):
        to_ms(at, NOW_MS)


def test_a_negative_epoch_string_converts_but_the_event_refuses_it():
    assert to_ms("-5", NOW_MS) == -5
    with pytest.raises(InvalidEvent, match="negative"):
        Read("a", to_ms("-5", NOW_MS))


@given(st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1),
                    timezones=st.sampled_from([UTC, timezone(timedelta(hours=-7)),
                                               timezone(timedelta(hours=5, minutes=30))])))
def test_an_iso_string_and_its_datetime_give_the_same_milliseconds(moment):
    expected = (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)

    assert to_ms(moment, NOW_MS) == expected
    assert to_ms(moment.isoformat(), NOW_MS) == expected


@given(st.integers(min_value=0, max_value=2**53))
def test_epoch_milliseconds_pass_through_as_int_or_text(at_ms):
    assert to_ms(at_ms, NOW_MS) == at_ms
    assert to_ms(str(at_ms), NOW_MS) == at_ms


# -- events are values ---------------------------------------------------------


def test_events_are_frozen_and_compare_by_value():
    read = Read("a", 5, "v")

    assert read == Read("a", 5, "v")
    assert read != Read("a", 5, "w")
    with pytest.raises(AttributeError):
        read.article_id = "b"  # type: ignore[misc]
