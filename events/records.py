"""Files of records — CSV with a header row, or JSON Lines — read line by line, with line numbers.

Shared by the event import and the article import. `open_source` refuses at once a
file that is not text (a gzip file, an image, NUL bytes, UTF-16) instead of reporting
each of its "lines"; `records` turns the lines into `(line number, {column: value})`,
or `(line number, reason)` for a line that cannot be read, and refuses a CSV header
that lacks a needed column before any line is read.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from .errors import ReadrateError

# Bytes looked at to tell text from binary: enough for every magic number and a few lines.
SNIFF_BYTES = 8192
FORMATS_ACCEPTED = "accepted: CSV with a header row, or JSON Lines, in UTF-8"
_DECOMPRESS = "decompress it first and import the text (or pipe it in as FILE `-`)"
_MAGIC = [
    (b"\x1f\x8b", "a gzip file", _DECOMPRESS),
    (b"PK\x03\x04", "a zip file", "extract the CSV or JSON Lines file from it first"),
    (b"\xfd7zXZ\x00", "an xz file", _DECOMPRESS),
    (b"\x28\xb5\x2f\xfd", "a zstd file", _DECOMPRESS),
    (b"BZh91AY&SY", "a bzip2 file", _DECOMPRESS),
    (b"\x89PNG\r\n\x1a\n", "a PNG image", ""),
    (b"\xff\xd8\xff", "a JPEG image", ""),
    (b"GIF8", "a GIF image", ""),
    (b"%PDF-", "a PDF document", ""),
    (b"PAR1", "a Parquet file", ""),
    (b"SQLite format 3\x00", "a SQLite database", ""),
]
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


class InputError(ReadrateError):
    """Raised when a file as a whole cannot be imported (not text, or no records); the CLI exits 1."""


class NotText(InputError):
    """Raised when a file is binary (compressed, an image, NUL bytes) or not UTF-8 text (UTF-16)."""


class NothingFound(InputError):
    """Raised when a file holds no data lines at all: empty, a header only, or blank lines only."""


class MissingColumn(InputError, ValueError):
    """Raised when a CSV header lacks a column the caller needs; the message names them and the header."""

    def __init__(self, missing: Sequence[str], header: Sequence[str], message: str | None = None) -> None:
        self.missing, self.header = list(missing), list(header)
        if message is None:
            names = ", ".join(repr(c) for c in self.missing)
            verb = "column {} is" if len(self.missing) == 1 else "columns {} are"
            message = f"{verb.format(names)} not in the header ({', '.join(self.header)})"
        super().__init__(message)


def label(name: str) -> str:
    """How messages name the file: quoted, or `standard input` for `-`."""
    return "standard input" if name == "-" else repr(name)


def check_text(head: bytes, name: str) -> None:
    """Raise NotText when the first bytes of a file show it is not UTF-8 text."""
    for magic, what, hint in _MAGIC:
        if head.startswith(magic):
            advice = f"; {hint}" if hint else ""
            raise NotText(f"{label(name)} is {what}, not text{advice}; {FORMATS_ACCEPTED}")
    if head.startswith(_UTF16_BOMS):
        raise NotText(f"{label(name)} is UTF-16 text; save it as UTF-8 (a spreadsheet's \"CSV UTF-8\"); "
                      f"{FORMATS_ACCEPTED}")
    nul = head.find(b"\x00")
    if nul != -1:
        raise NotText(f"{label(name)} is not text: it holds a NUL byte (at byte {nul:,}), as binary files "
                      f"and UTF-16 text do; {FORMATS_ACCEPTED}")


@dataclass
class Source:
    """A text file opened for records: its format, its first line (to say why it held nothing), its lines."""

    name: str
    format: str
    first_line: str
    lines: Iterator[str]

    def nothing_found(self, what: str) -> NothingFound:
        """The error for a file that gave no records: `no {what} found in …`, saying what the file held."""
        if not self.first_line:
            held = "it is empty (0 bytes)"
        elif self.format == "csv" and self.first_line.strip():
            held = "it has a header row and no data lines"
        else:
            held = "it has only blank lines"
        return NothingFound(f"no {what} found in {label(self.name)}: {held}")


def open_source(raw: BinaryIO, name: str, fmt: str = "auto",
                advance: Callable[[int], None] = lambda n: None) -> Source:
    """The lines of binary file `raw` as text, once it is found to be text; `fmt` auto: by name, then content.

    Raises NotText at once for a binary file. Reports bytes read to `advance` now and then.
    """
    head = raw.read(SNIFF_BYTES)
    check_text(head, name)
    # Finish the line the sniff cut, so the lines below split where the file's lines do.
    start = io.BytesIO(head + raw.readline())
    lines = decoded_lines(itertools.chain(start, raw), advance)
    first = next(lines, "")
    if fmt == "auto":
        fmt = detect_format(name, first)
    return Source(name, fmt, first, itertools.chain([first] if first else [], lines))


def detect_format(name: str, first_line: str) -> str:
    lowered = name.lower()
    if lowered.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if lowered.endswith(".csv"):
        return "csv"
    return "jsonl" if first_line.lstrip().startswith("{") else "csv"


def decoded_lines(raw: Iterable[bytes], advance: Callable[[int], None] = lambda n: None) -> Iterator[str]:
    """Lines of a binary file as text, reporting bytes read to `advance` every 4,096 lines.

    Undecodable bytes survive as surrogates, which event validation refuses line by line.
    """
    done = 0
    for number, line in enumerate(raw, start=1):
        done += len(line)
        if number % 4096 == 0:  # redrawing progress per line would cost more than the import
            advance(done)
            done = 0
        yield line.decode("utf-8", "surrogateescape")
    advance(done)


def records(lines: Iterable[str], fmt: str, *,
            required: Sequence[str] = ()) -> Iterator[tuple[int, dict | str]]:
    """Records of `lines` in format `csv` or `jsonl`; a CSV header must name every `required` column."""
    lines = _without_bom(lines)
    return _csv(lines, required) if fmt == "csv" else _jsonl(lines)


def _without_bom(lines: Iterable[str]) -> Iterator[str]:
    # Spreadsheets save "CSV UTF-8" with a byte order mark; it must not stick to the first column name.
    lines = iter(lines)
    first = next(lines, None)
    if first is not None:
        yield first.removeprefix("\ufeff")
        yield from lines


def _csv(lines: Iterable[str], required: Sequence[str]) -> Iterator[tuple[int, dict | str]]:
    reader = csv.reader(lines)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise InputError(f"the header row cannot be read: {_csv_reason(exc)}") from None
    if header is None:
        return
    header = [h.strip() for h in header]
    missing = [c for c in required if c not in header]
    if missing:
        raise MissingColumn(missing, header)
    failed_at = None
    while True:
        try:
            row = next(reader, None)
        except csv.Error as exc:
            if reader.line_num == failed_at:  # nothing more was read: do not report the same line forever
                return
            # The reader starts afresh on the next line: one bad line must not end the import.
            failed_at = reader.line_num
            yield reader.line_num, _csv_reason(exc)
            continue
        if row is None:
            return
        if not row or row == [""]:
            continue
        if len(row) != len(header):
            yield reader.line_num, f"{len(row)} columns where the header has {len(header)}"
            continue
        yield reader.line_num, dict(zip(header, row))


def _csv_reason(exc: csv.Error) -> str:
    if "field larger than field limit" in str(exc):
        limit = csv.field_size_limit()
        return (f"a field is longer than {limit:,} characters; "
                f"accepted: fields of at most {limit:,} characters")
    return f"not CSV: {exc}"


def _jsonl(lines: Iterable[str]) -> Iterator[tuple[int, dict | str]]:
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            yield line_no, f"not JSON: {exc}"
            continue
        if not isinstance(record, dict):
            yield line_no, "a JSON line must be an object"
            continue
        yield line_no, record
