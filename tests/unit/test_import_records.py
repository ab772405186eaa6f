"""Import files as a whole: binary files refused at once, empty ones named, lines split where the file's are."""

from __future__ import annotations

import gzip
import io
import zipfile

import pytest

from readrate.events.records import (
    SNIFF_BYTES,
    InputError,
    MissingColumn,
    NothingFound,
    NotText,
    open_source,
    records,
)

CSV = b"kind,article,at\nread,a,5\n"
PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489")


def zipped(data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("events.csv", data)
    return buffer.getvalue()


@pytest.mark.parametrize(("content", "what"), [
    (gzip.compress(CSV * 100), "is a gzip file, not text; decompress it first"),
    (zipped(CSV), "is a zip file, not text"),
    (PNG, "is a PNG image, not text"),
    (b"SQLite format 3\x00" + bytes(100), "is a SQLite database, not text"),
    (b"kind,article,at\nread,a\x00b,5\n", "is not text: it holds a NUL byte (at byte 22)"),
    ("kind,article,at\n".encode("utf-16"), "is UTF-16 text; save it as UTF-8"),
    ("kind,article,at\n".encode("utf-16-le"), "is not text: it holds a NUL byte"),
], ids=["gzip", "zip", "png", "sqlite", "nul", "utf-16", "utf-16-without-bom"])
def test_a_file_that_is_not_utf8_text_is_refused_at_once_with_one_message(content, what):
    with pytest.raises(NotText) as caught:
        open_source(io.BytesIO(content), "events.csv")

    assert str(caught.value).startswith(f"'events.csv' {what}")
    assert str(caught.value).endswith("accepted: CSV with a header row, or JSON Lines, in UTF-8")
    assert isinstance(caught.value, InputError)


def test_standard_input_is_named_as_such():
    with pytest.raises(NotText, match="^standard input is a gzip file"):
        open_source(io.BytesIO(gzip.compress(CSV)), "-")


def test_a_line_crossing_the_sniffed_bytes_comes_out_whole_and_every_line_once():
    long_line = "read," + "x" * (SNIFF_BYTES + 100) + ",5\n"
    text = "kind,article,at\n" + "read,a,5\n" * 500 + long_line + "read,b,6\n"
    read: list[int] = []

    source = open_source(io.BytesIO(text.encode()), "events.csv", advance=read.append)

    assert list(source.lines) == text.splitlines(keepends=True)
    assert sum(read) == len(text.encode())
    assert source.format == "csv"


def test_the_format_is_detected_from_the_first_line_when_the_name_says_nothing():
    source = open_source(io.BytesIO(b'{"kind": "read"}\n'), "-")

    assert source.format == "jsonl"
    assert source.first_line == '{"kind": "read"}\n'


def test_undecodable_bytes_in_text_survive_as_surrogates_for_the_line_to_be_refused():
    source = open_source(io.BytesIO(b"kind,article,at\nread,caf\xe9,5\n"), "events.csv")

    assert list(source.lines)[1] == "read,caf\udce9,5\n"


@pytest.mark.parametrize(("content", "fmt", "held"), [
    (b"", "auto", "it is empty (0 bytes)"),
    (b"kind,article,at\n", "auto", "it has a header row and no data lines"),
    (b"kind,article,at\n\n\n", "csv", "it has a header row and no data lines"),
    (b"\n\n", "jsonl", "it has only blank lines"),
])
def test_a_file_without_data_lines_says_what_it_held(content, fmt, held):
    source = open_source(io.BytesIO(content), "events.csv", fmt)

    assert list(records(source.lines, source.format)) == []
    error = source.nothing_found("events")
    assert isinstance(error, NothingFound)
    assert str(error) == f"no events found in 'events.csv': {held}"


def test_a_missing_column_error_names_every_missing_column_and_the_header():
    with pytest.raises(MissingColumn) as caught:
        list(records(["a,b\n", "1,2\n"], "csv", required=["x", "a", "y"]))

    assert str(caught.value) == "columns 'x', 'y' are not in the header (a, b)"
    assert (caught.value.missing, caught.value.header) == (["x", "y"], ["a", "b"])


def test_a_csv_field_over_the_csv_modules_limit_is_a_bad_line_not_an_error():
    lines = ["a,b\n", "1,2\n", "3," + "y" * 200_000 + "\n", "5,6\n"]

    assert list(records(lines, "csv")) == [
        (2, {"a": "1", "b": "2"}),
        (3, "a field is longer than 131,072 characters; accepted: fields of at most 131,072 characters"),
        (4, {"a": "5", "b": "6"}),
    ]


def test_a_header_row_over_the_limit_is_one_error():
    with pytest.raises(InputError, match="the header row cannot be read: a field is longer than"):
        list(records(["x" * 200_000 + ",b\n", "1,2\n"], "csv"))
