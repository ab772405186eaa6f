"""Bulk import parsing: CSV and JSON Lines into events, with --map/--kind/--time-unit and bad lines by number.

The events are built by a real `Emitter`'s `make_read`/`make_vote` (as `readrate
import` does) with a fixed clock; nothing is sent to Redis here.
"""

from __future__ import annotations

import json

import pytest

from readrate.events.emitter import Emitter
from readrate.events.errors import InvalidEvent
from readrate.events.importer import ImportSpec, TimeUnitHint, parse_lines
from readrate.events.model import Read, Vote
from readrate.events.records import MissingColumn, detect_format
from readrate.events.scale import RatingScale
from readrate.events.wire import decode

NOW_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
T = 1_704_067_200_000  # 2024-01-01T00:00:00Z


@pytest.fixture
def emitter(redis):
    return Emitter(redis, scale=RatingScale.parse("0.5-5/0.5"), enqueue=False, clock_ms=lambda: NOW_MS)


def parse(emitter, text: str, fmt: str, spec: ImportSpec | None = None,
          hint: TimeUnitHint | None = None) -> list[tuple[int, object]]:
    lines = text.splitlines(keepends=True)
    return list(parse_lines(lines, fmt, spec or ImportSpec(), emitter.make_read, emitter.make_vote, hint))


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
    assert "voter (field 'v') is required for a vote" in reasons[9]
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


def test_without_kind_a_file_with_no_kind_column_is_refused_once_naming_the_column_and_the_options(emitter):
    lines = iter(MOVIELENS.splitlines(keepends=True))

    with pytest.raises(MissingColumn) as caught:
        list(parse_lines(lines, "csv", ImportSpec.build(MOVIELENS_SPEC, time_unit="s"), emitter.make_read,
                         emitter.make_vote))

    message = str(caught.value)
    assert "has no column 'kind'" in message
    assert "(userId, movieId, rating, timestamp)" in message, "the message shows the header it found"
    assert "--kind read or --kind vote" in message and "--map FIELD=COLUMN" in message
    assert next(lines).startswith("1,1,"), "the header is refused before any data line is read"


def test_movielens_ratings_without_any_map_are_refused_naming_every_missing_column(emitter):
    with pytest.raises(MissingColumn) as caught:
        parse(emitter, MOVIELENS, "csv")

    assert caught.value.missing == ["kind", "article", "at"]
    assert str(caught.value).startswith(
        "the header (userId, movieId, rating, timestamp) has no columns 'kind', 'article', 'at'; ")


def test_a_mapped_column_the_header_lacks_is_named_with_the_map_that_asked_for_it(emitter):
    spec = ImportSpec.build(["article=movieid", "visitor=userId", "at=timestamp"], kind="vote", time_unit="s")

    with pytest.raises(MissingColumn) as caught:
        parse(emitter, MOVIELENS, "csv", spec)

    assert "has no column 'movieid' (for article, from --map)" in str(caught.value)
    assert "--kind" not in str(caught.value), "the kind is given: --kind is no fix here"


def test_votes_need_a_visitor_and_a_rating_column_but_reads_do_not(emitter):
    with pytest.raises(MissingColumn, match="has no columns 'visitor', 'rating'"):
        parse(emitter, "article,at\na,5\n", "csv", ImportSpec.build(kind="vote"))

    assert parse(emitter, "article,at\na,5\n", "csv", ImportSpec.build(kind="read")) == [(2, Read("a", 5))]


def test_a_visitor_column_named_with_map_must_exist_even_for_reads(emitter):
    with pytest.raises(MissingColumn, match="'who' \\(for visitor, from --map\\)"):
        parse(emitter, "article,at\na,5\n", "csv", ImportSpec.build(["visitor=who"], kind="read"))


def test_json_lines_have_no_header_so_a_missing_key_is_a_bad_line(emitter):
    pairs = parse(emitter, json.dumps({"article": "a", "at": T}) + "\n", "jsonl")

    assert bad(pairs) == {1: "column 'kind' is missing or empty"}


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


# -- one rule set: what the worker refuses, the import refuses, with the same reason ---------


def worker_reason(**fields: str) -> str:
    with pytest.raises(InvalidEvent) as caught:
        decode({k.encode(): v.encode() for k, v in fields.items()}, scale=RatingScale.parse("0.5-5/0.5"),
               now_ms=NOW_MS)
    return str(caught.value)


def test_a_read_line_carrying_a_rating_is_refused_with_the_reason_the_worker_gives(emitter):
    text = f"kind,article,at,visitor,rating\nread,post-4,{T},v9,3\nread,post-5,{T},v9,\n"

    pairs = parse(emitter, text, "csv")

    assert bad(pairs) == {2: worker_reason(k="read", a="post-4", t=str(T), v="v9", r="3")}
    assert bad(pairs)[2] == "a read carries no rating; field 'r' is for votes"
    assert good(pairs) == [(3, Read("post-5", T, "v9"))], "an empty rating cell is no rating"


def test_a_json_read_carrying_a_rating_is_refused_and_a_null_rating_is_none(emitter):
    text = "\n".join([json.dumps({"kind": "read", "article": "a", "at": T, "rating": 0}),
                      json.dumps({"kind": "read", "article": "a", "at": T, "rating": None})]) + "\n"

    pairs = parse(emitter, text, "jsonl")

    assert bad(pairs) == {1: "a read carries no rating; field 'r' is for votes"}
    assert good(pairs) == [(2, Read("a", T))]


def test_kind_read_refuses_the_lines_whose_rating_column_holds_a_rating(emitter):
    pairs = parse(emitter, "page,when,rating\nhome,5,4\nabout,6,\n", "csv",
                  ImportSpec.build(["article=page", "at=when"], kind="read"))

    assert list(bad(pairs)) == [2]
    assert good(pairs) == [(3, Read("about", 6))]


@pytest.mark.parametrize(("line", "role"), [
    (f"read,\u202epost-4,{T},,", "article id"),
    (f"read,post-4,{T},v\u2066,", "visitor"),
    (f"vote,post-4,{T},u\u202b,4", "voter"),
])
def test_a_bidi_override_in_an_id_is_refused_on_import_as_the_worker_refuses_it(emitter, line, role):
    kind, article, at, person, rating = line.split(",")
    fields = {"k": kind, "a": article, "t": at, **({"v": person} if person else {}),
              **({"r": rating} if rating else {})}

    pairs = parse(emitter, "kind,article,at,visitor,rating\n" + line + "\n", "csv")

    assert bad(pairs) == {2: worker_reason(**fields)}
    assert bad(pairs)[2].startswith(f"{role} ")
    assert "bidi-override character" in bad(pairs)[2]


# -- a hint when integer times look like the other unit --------------------------------------


def test_epoch_seconds_imported_as_milliseconds_are_kept_as_given_and_noted_once(emitter):
    hint = TimeUnitHint(ImportSpec().time_unit_ms)

    pairs = parse(emitter, "kind,article,at\nread,a,964982703\nread,a,964981247\nread,a,2024-01-01\n", "csv",
                  hint=hint)

    assert [e.at_ms for _, e in pairs] == [964_982_703, 964_981_247, T], "imported as given"
    warning = hint.warning()
    assert warning.startswith("2 integer times (the first on line 2: 964982703) look like epoch seconds")
    assert "1970-01-12" in warning
    assert "imported as given" in warning
    assert "--time-unit s" in warning


def test_epoch_milliseconds_give_no_time_unit_warning(emitter):
    hint = TimeUnitHint(1)

    parse(emitter, f"kind,article,at\nread,a,{T}\nread,a,100000000000\n", "csv", hint=hint)

    assert hint.warning() is None


def test_milliseconds_given_as_seconds_are_refused_as_future_and_noted_once(emitter):
    hint = TimeUnitHint(1000)

    pairs = parse(emitter, f"kind,article,at\nread,a,{T}\nread,a,964982703\n", "csv",
                  ImportSpec.build(time_unit="s"), hint=hint)

    assert list(bad(pairs)) == [2] and "future" in bad(pairs)[2]
    assert hint.warning().startswith(f"1 integer time (line 2: {T}) looks like epoch milliseconds")
    assert "without --time-unit s" in hint.warning()


# -- huge fields -------------------------------------------------------------------------------


def test_a_ten_megabyte_csv_field_is_one_bad_line_and_the_import_goes_on(emitter):
    text = f"kind,article,at\nread,a,{T}\nread,{'x' * 10_000_000},{T}\nread,b,{T}\n"

    pairs = parse(emitter, text, "csv")

    assert good(pairs) == [(2, Read("a", T)), (4, Read("b", T))]
    assert bad(pairs) == {3: "a field is longer than 131,072 characters; accepted: fields of at most 131,072 "
                             "characters"}


def test_a_ten_megabyte_json_line_is_one_bad_line_quoting_only_the_start_of_the_value(emitter):
    text = json.dumps({"kind": "read", "article": "x" * 10_000_000, "at": T}) + "\n" + \
        json.dumps({"kind": "read", "article": "b", "at": T}) + "\n"

    pairs = parse(emitter, text, "jsonl")

    assert good(pairs) == [(2, Read("b", T))]
    assert "10,000,000 characters" in bad(pairs)[1] or "10000000 characters" in bad(pairs)[1]
    assert len(bad(pairs)[1]) < 200
