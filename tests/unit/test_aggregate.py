"""`aggregate()`: the pure fold from raw stream entries to one Batch (no servers)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from readrate.events.model import Read, Vote
from readrate.events.scale import WHOLE_STARS, RatingScale
from readrate.events.wire import encode
from readrate.workers.aggregate import VoteCast, aggregate
from readrate.events.clock import day_date, hour_start

NOW_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
HALF_STARS = RatingScale.parse("0.5-5/0.5")


def ms(text: str) -> int:
    """Epoch ms of an ISO time in UTC."""
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def entries(*items) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """Stream entries as redis-py returns them: ids 1-0, 2-0, … and byte fields."""
    out = []
    for n, item in enumerate(items, start=1):
        fields = encode(item) if isinstance(item, (Read, Vote)) else item
        as_bytes = {_b(k): _b(v) for k, v in fields.items()}
        out.append((f"{n}-0".encode(), as_bytes))
    return out


def _b(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value


def fold(*items, scale=WHOLE_STARS):
    return aggregate(entries(*items), scale=scale, now_ms=NOW_MS)


def hours(batch) -> dict[tuple[str, datetime], int]:
    return {(a, hour_start(h)): n for (a, h), n in batch.hourly.items()}


def days(batch) -> dict[tuple[str, str], int]:
    return {(a, day_date(d).isoformat()): n for (a, d), n in batch.daily.items()}


# -- reads ---------------------------------------------------------------------


def test_an_empty_batch_changes_nothing():
    batch = aggregate([], scale=WHOLE_STARS, now_ms=NOW_MS)

    assert (batch.entries, batch.reads, batch.articles, batch.votes, batch.rejected) == (0, 0, {}, {}, [])


def test_reads_are_counted_per_article():
    t = ms("2025-12-31T10:00:00")
    batch = fold(Read("a", t), Read("b", t), Read("a", t + 1, "v1"), Read("a", t + 2, "v1"))

    assert {a: s.reads for a, s in batch.articles.items()} == {"a": 3, "b": 1}
    assert batch.reads == 4
    assert batch.entries == 4


def test_the_batch_remembers_the_last_stream_id_it_folded():
    batch = fold(Read("a", 1), Read("a", 2), {"k": "bogus"})

    assert batch.last_id == "3-0"


def test_stream_ids_given_as_text_are_kept_as_text():
    batch = aggregate([("17-3", {b"k": b"read", b"a": b"a", b"t": b"5"})], scale=WHOLE_STARS, now_ms=NOW_MS)

    assert batch.last_id == "17-3"


def test_reads_fall_into_hourly_buckets_by_event_time_in_utc():
    batch = fold(
        Read("a", ms("2025-12-31T09:59:59.999")),
        Read("a", ms("2025-12-31T10:00:00")),
        Read("a", ms("2025-12-31T10:59:59.999")),
        Read("a", ms("2025-12-31T11:00:00")),
    )

    assert hours(batch) == {
        ("a", datetime(2025, 12, 31, 9)): 1,
        ("a", datetime(2025, 12, 31, 10)): 2,
        ("a", datetime(2025, 12, 31, 11)): 1,
    }


def test_reads_on_both_sides_of_midnight_utc_fall_into_two_days():
    batch = fold(
        Read("a", ms("2025-12-30T23:59:59.999")),
        Read("a", ms("2025-12-31T00:00:00")),
        Read("a", ms("2025-12-31T00:00:00.001")),
        Read("b", ms("2025-12-30T23:00:00")),
    )

    assert days(batch) == {("a", "2025-12-30"): 1, ("a", "2025-12-31"): 2, ("b", "2025-12-30"): 1}
    assert hours(batch)[("a", datetime(2025, 12, 30, 23))] == 1
    assert hours(batch)[("a", datetime(2025, 12, 31, 0))] == 2


def test_buckets_go_by_event_time_not_by_stream_order():
    batch = fold(Read("a", ms("2025-12-31T12:00:00")), Read("a", ms("2025-12-01T12:00:00")))

    assert days(batch) == {("a", "2025-12-31"): 1, ("a", "2025-12-01"): 1}


def test_the_first_event_and_last_read_times_of_an_article_are_tracked():
    early, mid, late = ms("2025-12-01T00:00:00"), ms("2025-12-15T00:00:00"), ms("2025-12-31T00:00:00")
    batch = fold(Read("a", mid), Vote("a", early, "u", 3.0), Read("a", late), Read("a", mid))

    stats = batch.articles["a"]
    assert stats.first_at_ms == early
    assert stats.last_read_at_ms == late
    assert stats.reads == 3


def test_an_article_with_only_votes_has_no_reads_and_no_read_buckets():
    batch = fold(Vote("a", 5, "u", 4.0))

    assert batch.articles["a"].reads == 0
    assert batch.articles["a"].last_read_at_ms is None
    assert not batch.hourly and not batch.daily


# -- votes ---------------------------------------------------------------------


def test_a_vote_is_kept_per_article_and_voter():
    batch = fold(Vote("a", 5, "u1", 4.0), Vote("a", 6, "u2", 2.0), Vote("b", 7, "u1", 5.0))

    assert batch.votes == {
        ("a", "u1"): VoteCast("a", "u1", 4.0, 5),
        ("a", "u2"): VoteCast("a", "u2", 2.0, 6),
        ("b", "u1"): VoteCast("b", "u1", 5.0, 7),
    }


def test_the_latest_vote_by_event_time_wins_whatever_the_stream_order():
    batch = fold(Vote("a", 200, "u", 5.0), Vote("a", 100, "u", 1.0), Vote("a", 150, "u", 3.0))

    assert batch.votes == {("a", "u"): VoteCast("a", "u", 5.0, 200)}


def test_a_later_vote_replaces_an_earlier_one_in_the_same_batch():
    batch = fold(Vote("a", 100, "u", 1.0), Vote("a", 200, "u", 4.0))

    assert batch.votes[("a", "u")] == VoteCast("a", "u", 4.0, 200)


def test_two_votes_at_the_same_time_go_to_the_later_entry():
    batch = fold(Vote("a", 100, "u", 2.0), Vote("a", 100, "u", 5.0))

    assert batch.votes[("a", "u")].rating == 5.0

    reversed_batch = fold(Vote("a", 100, "u", 5.0), Vote("a", 100, "u", 2.0))
    assert reversed_batch.votes[("a", "u")].rating == 2.0


def test_votes_are_checked_against_the_scale_the_batch_is_folded_with():
    half = fold(Vote("a", 5, "u", 3.5), scale=HALF_STARS)
    whole = fold(Vote("a", 5, "u", 3.5), scale=WHOLE_STARS)

    assert half.votes[("a", "u")].rating == 3.5
    assert not whole.votes
    assert "'3.5' is not on the scale 1-5" in whole.rejected[0].reason


# -- rejected entries ----------------------------------------------------------


def test_a_bad_entry_is_set_aside_with_its_stream_id_payload_and_reason():
    batch = fold(Read("a", 5), {"k": "vote", "a": "a", "t": "5", "v": "u", "r": "9"}, Read("a", 6))

    assert len(batch.rejected) == 1
    rejected = batch.rejected[0]
    assert rejected.stream_id == "2-0"
    assert json.loads(rejected.payload) == {"k": "vote", "a": "a", "t": "5", "v": "u", "r": "9"}
    assert "'9'" in rejected.reason and "not on the scale" in rejected.reason


def test_bad_entries_do_not_stop_the_batch_around_them():
    batch = fold(
        {"k": "read"},
        Read("a", 1),
        {"k": "read", "a": "a", "t": "5", "x": "1"},
        {"k": "vote", "a": "a", "t": "5", "r": "4"},
        Vote("a", 2, "u", 3.0),
        {"k": b"\xff", "a": "a", "t": "5"},
        {"k": "read", "a": "a", "t": str(NOW_MS + 3_600_000)},
        Read("a", 3),
        {"k": "read", "a": "a" * 600, "t": "5"},
        {"k": "click", "a": "a", "t": "5"},
        {"k": "vote", "a": "a", "t": "5", "v": "u2", "r": "NaN"},
        {"k": "read", "a": "a", "t": "5", "r": "4"},
    )

    assert batch.entries == 12
    assert batch.articles["a"].reads == 2
    assert list(batch.votes) == [("a", "u")]
    assert [r.stream_id for r in batch.rejected] == [f"{n}-0" for n in (1, 3, 4, 6, 7, 9, 10, 11, 12)]
    reasons = [r.reason for r in batch.rejected]
    assert "field 'a' is missing" in reasons[0]
    assert "unknown field 'x'" in reasons[1]
    assert "voter" in reasons[2]
    assert "not valid UTF-8" in reasons[3]
    assert "in the future" in reasons[4]
    assert "bytes; no field may exceed" in reasons[5]
    assert "kind 'click' is unknown" in reasons[6]
    assert "'NaN'" in reasons[7]
    assert "carries no rating" in reasons[8]
    assert batch.last_id == "12-0"


def test_an_entry_is_checked_in_full_even_after_its_article_and_rating_were_seen_valid():
    batch = fold(
        Read("a", 5, "v"),
        Vote("a", 5, "u", 4.0),
        {"k": "read", "a": "a", "t": "5", "v": "v\x00"},
        {"k": "read", "a": "a", "t": "5", "v": "v" * 129},
        {"k": "vote", "a": "a", "t": "5", "v": "u\x7f", "r": "4"},
        {"k": "vote", "a": "a", "t": "5", "v": "", "r": "4"},
        {"k": "vote", "a": "a", "t": "5", "v": b"\xff", "r": "4"},
        {"k": "read", "a": "a", "t": "5", "r": "4"},
        {"k": "read", "a": "a", "t": "05x"},
        {"k": "read", "a": "a", "t": "9" * 40},
        {"k": "READ", "a": "a", "t": "5"},
        {"k": "read", "a": "a", "t": "5", "x": ""},
    )

    assert batch.articles["a"].reads == 1
    assert list(batch.votes) == [("a", "u")]
    assert [r.stream_id for r in batch.rejected] == [f"{n}-0" for n in range(3, 13)]


def test_bidi_override_ids_are_dead_letters_even_once_the_article_and_rating_are_known_valid():
    batch = fold(
        Read("post-4", 5, "v"),
        Vote("post-4", 5, "u", 4.0),
        {"k": "read", "a": "post-4", "t": "5", "v": "v\u202e"},
        {"k": "vote", "a": "post-4", "t": "5", "v": "u\u2066", "r": "4"},
        {"k": "read", "a": "\u202e4-tsop", "t": "5"},
        {"k": "read", "a": "\u202e4-tsop", "t": "6"},
        Read("post-4", 7),
        {"k": "read", "a": "post-4", "t": "8", "v": "plain visitor"},  # printable ASCII: the fast path
    )

    assert batch.articles["post-4"].reads == 3
    assert list(batch.votes) == [("post-4", "u")]
    assert [(r.stream_id, r.reason.split(" contains")[0]) for r in batch.rejected] == [
        ("3-0", "visitor 'v\\u202e'"),
        ("4-0", "voter 'u\\u2066'"),
        ("5-0", "article id '\\u202e4-tsop'"),
        ("6-0", "article id '\\u202e4-tsop'"),
    ]
    assert all("bidi-override character" in r.reason for r in batch.rejected)


def test_a_rejected_entry_adds_nothing_to_counters_or_buckets():
    batch = fold({"k": "read", "a": "a\x00", "t": "5"}, {"k": "vote", "a": "b", "t": "5", "v": "u", "r": "0"})

    assert batch.articles == {} and batch.votes == {}
    assert not batch.hourly and not batch.daily
    assert len(batch.rejected) == 2


def test_a_batch_of_only_bad_entries_still_moves_the_offset():
    batch = fold({"x": "1"}, {"y": "2"})

    assert batch.last_id == "2-0"
    assert batch.entries == 2 and len(batch.rejected) == 2


# -- properties ----------------------------------------------------------------

ARTICLES = st.sampled_from(["a", "b", "c", "é"])
TIMES = st.integers(min_value=NOW_MS - 3 * 86_400_000, max_value=NOW_MS)
GOOD = st.one_of(
    st.builds(Read, ARTICLES, TIMES, st.none() | st.sampled_from(["v1", "v2"])),
    st.builds(Vote, ARTICLES, TIMES, st.sampled_from(["u1", "u2", "u3"]), st.sampled_from([1.0, 3.0, 5.0])),
)
BAD = st.sampled_from([
    {"k": "read"},
    {"k": "vote", "a": "a", "t": "5", "v": "u1", "r": "6"},
    {"k": "read", "a": "", "t": "5"},
    {"k": "read", "a": "a", "t": "-1"},
    {"z": "z"},
])


@given(st.lists(GOOD | BAD, max_size=60))
def test_totals_equal_the_number_of_valid_reads_and_every_bad_entry_is_kept(items):
    batch = fold(*items)

    valid_reads = [i for i in items if isinstance(i, Read)]
    assert batch.entries == len(items)
    assert batch.reads == len(valid_reads)
    assert sum(batch.hourly.values()) == len(valid_reads)
    assert sum(batch.daily.values()) == len(valid_reads)
    per_article = Counter({a: s.reads for a, s in batch.articles.items() if s.reads})
    assert per_article == Counter(r.article_id for r in valid_reads)
    assert len(batch.rejected) == sum(1 for i in items if isinstance(i, dict))


@given(st.lists(GOOD, max_size=60))
def test_the_winning_vote_of_each_voter_is_the_last_entry_among_those_with_the_latest_time(items):
    batch = fold(*items)

    expected = {}
    for vote in (i for i in items if isinstance(i, Vote)):
        key = (vote.article_id, vote.voter)
        if key not in expected or vote.at_ms >= expected[key].at_ms:
            expected[key] = vote
    assert {k: (v.rating, v.at_ms) for k, v in batch.votes.items()} == {
        k: (v.rating, v.at_ms) for k, v in expected.items()
    }
