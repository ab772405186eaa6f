"""Lines of a CSV file (with a header row) or of JSON Lines, as one record per line with its number.

Shared by the event import and the article import: each data line becomes
`(line number, {column: value})`, or `(line number, reason)` when it cannot be read.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator, Sequence


class MissingColumn(ValueError):
    """Raised when a CSV header lacks a column the caller needs; the message names it and the header."""


def records(lines: Iterable[str], fmt: str, *, required: Sequence[str] = ()) -> Iterator[tuple[int, dict | str]]:
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
    header = next(reader, None)
    if header is None:
        return
    header = [h.strip() for h in header]
    missing = [c for c in required if c not in header]
    if missing:
        raise MissingColumn(f"column {missing[0]!r} is not in the header ({', '.join(header)})")
    for row in reader:
        if not row or row == [""]:
            continue
        if len(row) != len(header):
            yield reader.line_num, f"{len(row)} columns where the header has {len(header)}"
            continue
        yield reader.line_num, dict(zip(header, row))


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
