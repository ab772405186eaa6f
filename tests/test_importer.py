"""Bulk import parsing: CSV and JSON Lines into events, with --map/--kind/--time-unit and bad lines by number.

The events are built by a real `Emitter`'s `make_read`/`make_vote` (as `readrate
import` does) with a fixed clock; nothing is sent to Redis here.
"""

from __future__ import annotations

import json

import pytest

from events.emitter import Emitter
from events.errors import InvalidEvent
from events.importer import ImportSpec, detect_format, parse_lines
from events.model import Read, Vote
from events.scale import RatingScale

NOW_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
T = 1_704_067_200_000  # 2024-01-01T00:00:00Z


@pytest.fixture
def emitter(redis):
    return Emitter(redis, scale=RatingScale.parse("0.5-5/0.5"), enqueue=False, clock_ms=lambda: NOW_MS)


def parse(emitter, text: str, fmt: str, spec: ImportSpec | None = None) -> list[tuple[int, object]]:
    lines = text.splitlines(keepends=True)
    return list(parse_lines(lines, fmt, spec or ImportSpec(), emitter.make_read, emitter.make_vote))


def good(pairs) -> list[tuple[int, object]]:
    return [(n, e) for n, e in pairs if not isinstance(e, InvalidEvent)]


def bad(pairs) -> dict[int, str]:
    return {n: str(e) for n, e in pairs if isinstance(e, InvalidEvent)}


# -- CSV -----------------------------------------------------------------------


def test_a_csv_with_the_standard_header_gives_reads_and_votes_with_their_line_numbers(emitter):
    text = (
        "kind,article,at,visitor,rating\n"
        f"read,a,{T},v1,\n"
        "read,b,2024-01-01T00:00:00Z,,\n"
        f"vote,a,{T},u1,4.5\n"
    )

    assert parse(emitter, text, "csv") == [
        (2, Read("a", T, "v1")),
        (3, Read("b", T)),
        (4, Vote("a", T, "u1", 4.5)),
    ]


def test_csv_columns_may_come_in_any_order(emitter):
    text = f"rating,visitor,at,article,kind\n3,u1,{T},a,vote\n"

    assert parse(emitter, text, "csv") == [(2, Vote("a", T, "u1", 3.0))]


def test_csv_bad_lines_are_reported_by_their_line_number_and_the_rest_kept(emitter):
    text = (
        "kind,article,at,visitor,rating\n"  # 1
        f"read,a,{T},,\n"  # 2 good
        f"vote,a,{T},u1,9\n"  # 3 rating off the scale
        f"read,,{T},,\n"  # 4 no article
        f"read,a,{T}\n"  # 5 too few columns
        f"click,a,{T},,\n"  # 6 unknown kind
        "\n"  # 7 blank: skipped
        "read,a,yesterday,,\n"  # 8 bad time
        f"vote,a,{T},,4\n"  # 9 no voter
        f"read,b,{T},,\n"  # 10 good
        f"read,a,{NOW_MS + 3_600_000},,\n"  # 11 in the future
    )

    pairs = parse(emitter, text, "csv")

    assert [n for n, _ in good(pairs)] == [2, 10]
    reasons = bad(pairs)
    assert list(reasons) == [3, 4, 5, 6, 8, 9, 11]
    assert "'9'" in reasons[3]
    assert "'article'" in reasons[4]
    assert "3 columns where the header has 5" in reasons[5]
    assert "'click'" in reasons[6]
    assert "'yesterday'" in reasons[8]
    assert "voter is required" in reasons[9]
    assert "future" in reasons[11]


def test_a_quoted_csv_field_spanning_lines_keeps_later_line_numbers_right(emitter):
    text = (
        "kind,article,at,visitor,rating\n"
        f'read,"two\nlines",{T},,\n'  # lines 2-3: a control character in the article id
        f"read,ok,{T},,\n"  # line 4
        f"vote,ok,{T},,4\n"  # line 5: no voter
    )

    pairs = parse(emitter, text, "csv")

    assert good(pairs) == [(4, Read("ok", T))]
    assert list(bad(pairs)) == [3, 5]


def test_a_csv_with_a_utf8_byte_order_mark_reads_its_header(emitter):
    # Spreadsheets save "CSV UTF-8" with a BOM; the first column must still be `kind`.
    text = f"\ufeffkind,article,at,visitor,rating\nread,a,{T},,\n"

    assert parse(emitter, text, "csv") == [(2, Read("a", T))]


def test_json_lines_with_a_byte_order_mark_read_their_first_line(emitter):
    text = "\ufeff" + json.dumps({"kind": "read", "article": "a", "at": T}) + "\n"

    assert parse(emitter, text, "jsonl") == [(1, Read("a", T))]


def test_a_csv_with_only_a_header_gives_nothing(emitter):
    assert parse(emitter, "kind,article,at,visitor,rating\n", "csv") == []
    assert parse(emitter, "", "csv") == []


def test_header_names_are_trimmed_of_spaces(emitter):
    assert parse(emitter, f" kind , article , at \nread,a,{T}\n", "csv") == [(2, Read("a", T))]


def test_a_line_with_an_undecodable_byte_is_refused_on_its_own(emitter):
    line = b"read,caf\xe9,1704067200000,,\n".decode("utf-8", "surrogateescape")
    text = "kind,article,at,visitor,rating\n" + line + f"read,ok,{T},,\n"

    pairs = parse(emitter, text, "csv")

    assert list(bad(pairs)) == [2]
    assert "not UTF-8" in bad(pairs)[2]
    assert good(pairs) == [(3, Read("ok", T))]


# -- JSON Lines ----------------------------------------------------------------


def test_json_lines_give_reads_and_votes_with_their_line_numbers(emitter):
    text = "\n".join([
        json.dumps({"kind": "read", "article": "a", "at": T}),
        json.dumps({"kind": "read", "article": "a", "at": "2024-01-01", "visitor": "v"}),
        json.dumps({"kind": "vote", "article": "b", "at": str(T), "visitor": "u", "rating": 3.5}),
        json.dumps({"kind": "vote", "article": "b", "at": T, "visitor": 7, "rating": "5"}),
    ]) + "\n"

    assert parse(emitter, text, "jsonl") == [
        (1, Read("a", T)),
        (2, Read("a", T, "v")),
        (3, Vote("b", T, "u", 3.5)),
        (4, Vote("b", T, "7", 5.0)),
    ]


def test_json_lines_bad_lines_are_reported_by_number_counting_blank_lines(emitter):
    text = "\n".join([
        json.dumps({"kind": "read", "article": "a", "at": T}),  # 1
        "{not json",  # 2
        "",  # 3 blank: skipped but counted
        "[1, 2]",  # 4 not an object
        json.dumps({"kind": "vote", "article": "a", "at": T, "rating": 4}),  # 5 no voter
        json.dumps({"kind": "read", "article": "a", "at": 1.5}),  # 6 float time
        json.dumps({"kind": "read", "article": "a", "at": True}),  # 7 boolean time
        json.dumps({"kind": "read", "article": "a"}),  # 8 no time
        json.dumps({"kind": "vote", "article": "a", "at": T, "visitor": "u", "rating": "NaN"}),  # 9
        json.dumps({"kind": "read", "article": "b", "at": T}),  # 10
    ]) + "\n"

    pairs = parse(emitter, text, "jsonl")

    assert [n for n, _ in good(pairs)] == [1, 10]
    reasons = bad(pairs)
    assert list(reasons) == [2, 4, 5, 6, 7, 8, 9]
    assert reasons[2].startswith("not JSON")
    assert "must be an object" in reasons[4]
    assert "1.5" in reasons[6]
    assert "True" in reasons[7]
    assert "missing" in reasons[8]
    assert "'NaN'" in reasons[9]


# -- mapping columns, one kind, time units -------------------------------------

MOVIELENS = "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,4.5,964981247\n2,1,0.5,964982224\n"
MOVIELENS_SPEC = ("article=movieId", "visitor=userId", "at=timestamp")


def test_movielens_ratings_import_as_votes_with_mapped_columns_and_seconds():
    spec = ImportSpec.build(MOVIELENS_SPEC, kind="vote", time_unit="s")

    assert spec.columns["article"] == "movieId"
    assert spec.kind == "vote"
    assert spec.time_unit_ms == 1000


def test_mapped_columns_in_seconds_become_votes_in_milliseconds(emitter):
    pairs = parse(emitter, MOVIELENS, "csv", ImportSpec.build(MOVIELENS_SPEC, kind="vote", time_unit="s"))

    assert pairs == [
        (2, Vote("1", 964_982_703_000, "1", 4.0)),
        (3, Vote("3", 964_981_247_000, "1", 4.5)),
        (4, Vote("1", 964_982_224_000, "2", 0.5)),
    ]


def test_without_kind_a_file_with_no_kind_column_has_every_line_refused(emitter):
    pairs = parse(emitter, MOVIELENS, "csv", ImportSpec.build(MOVIELENS_SPEC, time_unit="s"))

    assert list(bad(pairs)) == [2, 3, 4]
    assert all("'kind'" in reason for reason in bad(pairs).values())


def test_kind_read_treats_every_line_as_a_read(emitter):
    pairs = parse(emitter, "page,when\nhome,5\nabout,6\n", "csv",
                  ImportSpec.build(["article=page", "at=when"], kind="read", time_unit="s"))

    assert pairs == [(2, Read("home", 5000)), (3, Read("about", 6000))]


def test_time_unit_seconds_applies_to_integers_but_not_to_iso_times(emitter):
    text = "kind,article,at\nread,a,1704067200\nread,a,2024-01-01T00:00:00Z\n"

    pairs = parse(emitter, text, "csv", ImportSpec.build(time_unit="s"))

    assert [e.at_ms for _, e in pairs] == [T, T]


def test_milliseconds_are_the_default_time_unit():
    assert ImportSpec().time_unit_ms == 1
    assert ImportSpec.build().time_unit_ms == 1


@pytest.mark.parametrize("item", ["article", "article=", "title=name", "=col", "kind:k"])
def test_a_map_that_is_not_field_equals_column_is_refused_quoting_it(item):
    with pytest.raises(ValueError) as caught:
        ImportSpec.build([item])

    assert repr(item) in str(caught.value)
    assert "kind, article, at, visitor, rating" in str(caught.value)


def test_an_unknown_kind_is_refused_quoting_it():
    with pytest.raises(ValueError, match="'click'"):
        ImportSpec.build(kind="click")


def test_a_later_map_of_the_same_field_wins():
    assert ImportSpec.build(["article=x", "article=y"]).columns["article"] == "y"


# -- format detection ----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "first_line", "fmt"),
    [
        ("events.csv", "{", "csv"),
        ("events.CSV", "", "csv"),
        ("events.jsonl", "kind,article", "jsonl"),
        ("events.ndjson", "", "jsonl"),
        ("events.json", "", "jsonl"),
        ("-", '  {"kind": "read"}', "jsonl"),
        ("events.txt", "kind,article,at", "csv"),
    ],
)
def test_the_format_goes_by_the_file_name_then_the_first_line(name, first_line, fmt):
    assert detect_format(name, first_line) == fmt
