"""Article metadata files, pure: titles and URLs from CSV (with a header row) or JSON Lines.

`parse_catalog` yields `(line number, row or reason)` so the command can store the
good rows and report the bad ones by number, as `readrate import` does for events.
Column names are options, so MovieLens' `movies.csv` (`movieId,title,genres`)
imports as it is with `--id-column movieId`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from readrate.events.errors import InvalidEvent
from readrate.events.validator import check_article_id
from readrate.events.records import MissingColumn, records


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
    named = [spec.id_column] + [c for k, c in (("title", spec.title_column), ("url", spec.url_column))
                                if k in spec.required]
    try:
        for line_no, record in records(lines, fmt, required=named if fmt == "csv" else ()):
            yield line_no, record if isinstance(record, str) else _entry(record, spec)
    except MissingColumn as exc:
        raise CatalogError(f"{exc}; name the columns with --id-column, --title-column and --url-column") from None


def _entry(record: dict, spec: CatalogSpec) -> dict | str:
    """The article a record names, or the reason it names none."""
    try:
        try:
            article_id = check_article_id(_column_text(record, spec.id_column) or "")
        except InvalidEvent as exc:
            raise InvalidEvent(f"column {spec.id_column!r}: {exc}") from None
        return {"article_id": article_id, "title": _column_text(record, spec.title_column),
                "url": _column_text(record, spec.url_column)}
    except InvalidEvent as exc:
        return str(exc)


def _column_text(record: dict, column: str) -> str | None:
    value = record.get(column)
    if value is None:
        return None
    text = str(value).strip()
    if _UNSTORABLE.search(text):
        raise InvalidEvent(f"column {column!r} holds a NUL or a byte that is not UTF-8")
    return text or None
