"""Article metadata files, pure: titles and URLs from CSV (with a header row) or JSON Lines.

`parse_catalog` yields `(line number, row or reason)` so the command can store the
good rows and report the bad ones by number, as `readrate import` does for events.
Column names are options, so MovieLens' `movies.csv` (`movieId,title,genres`)
imports as it is with `--id-column movieId`.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from events.errors import InvalidEvent
from events.model import check_article_id


@dataclass(frozen=True)
class CatalogSpec:
    """Which columns hold the id, the title and the URL. A column named on purpose must exist."""

    id_column: str = "article_id"
    title_column: str = "title"
    url_column: str = "url"
    required: frozenset[str] = frozenset()  # "title", "url": the columns the operator named, so must exist


# NUL cannot be stored in PostgreSQL text; lone surrogates are how undecodable bytes arrive (surrogateescape).
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")


class CatalogError(ValueError):
    """Raised when the file as a whole does not fit the spec (e.g. its header lacks the id column)."""


def parse_catalog(lines: Iterable[str], fmt: str, spec: CatalogSpec) -> Iterator[tuple[int, dict | str]]:
    """Yield `(line number, {"article_id", "title", "url"})` or `(line number, reason)` per data line."""
    records = _csv(lines, spec) if fmt == "csv" else _jsonl(lines)
    for line_no, record in records:
        if isinstance(record, str):
            yield line_no, record
            continue
        try:
            try:
                article_id = check_article_id(_text(record, spec.id_column) or "")
            except InvalidEvent as exc:
                raise InvalidEvent(f"column {spec.id_column!r}: {exc}") from None
            yield line_no, {"article_id": article_id, "title": _text(record, spec.title_column),
                            "url": _text(record, spec.url_column)}
        except InvalidEvent as exc:
            yield line_no, str(exc)


def _text(record: dict, column: str) -> str | None:
    value = record.get(column)
    if value is None:
        return None
    text = str(value).strip()
    if _UNSTORABLE.search(text):
        raise InvalidEvent(f"column {column!r} holds a NUL or a byte that is not UTF-8")
    return text or None


def _csv(lines: Iterable[str], spec: CatalogSpec) -> Iterator[tuple[int, dict | str]]:
    reader = csv.reader(_without_bom(lines))
    header = next(reader, None)
    if header is None:
        return
    header = [h.strip() for h in header]
    named = {"id": spec.id_column} | {k: c for k, c in (("title", spec.title_column), ("url", spec.url_column))
                                       if k in spec.required}
    missing = [c for c in named.values() if c not in header]
    if missing:
        raise CatalogError(f"column {missing[0]!r} is not in the header ({', '.join(header)}); "
                           f"name the columns with --id-column, --title-column and --url-column")
    for row in reader:
        if not row or row == [""]:
            continue
        if len(row) != len(header):
            yield reader.line_num, f"{len(row)} columns where the header has {len(header)}"
            continue
        yield reader.line_num, dict(zip(header, row))


def _jsonl(lines: Iterable[str]) -> Iterator[tuple[int, dict | str]]:
    for line_no, line in enumerate(_without_bom(lines), start=1):
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


def _without_bom(lines: Iterable[str]) -> Iterator[str]:
    lines = iter(lines)
    first = next(lines, None)
    if first is not None:
        yield first.removeprefix("\ufeff")
        yield from lines
