"""Renderers: the same rows as a terminal table, CSV, JSON or Markdown.

Every report builds rows with stable snake_case keys (the JSON contract): dicts, or
records such as `TopRow` whose `as_dict()` gives them. A list of `Column`s says how
to show them; the renderers only format. Numbers are rounded for people in the table
and Markdown, never in CSV or JSON.

Text in the rows (article ids, titles) comes from whoever emitted events or imported
titles, so each format shows it as text and nothing more: CSV cells that a
spreadsheet would run as a formula are neutralised, Markdown escapes HTML, and the
terminal table does not read rich's `[markup]`.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol

from rich.console import Console
from rich.table import Table
from rich.text import Text

FORMATS = ("table", "csv", "json", "markdown")
# OWASP, "CSV Injection": a cell starting with one of these is a formula to a spreadsheet.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


class Record(Protocol):
    def as_dict(self) -> dict: ...


Row = Mapping[str, object] | Record


@dataclass(frozen=True)
class Column:
    """One column of a report: its JSON key, its heading, and how people see its values."""

    key: str
    heading: str
    show: Callable[[object], str] = str
    numeric: bool = False


def fixed(digits: int) -> Callable[[object], str]:
    return lambda v: "" if v is None else f"{v:.{digits}f}"


def count(v: object) -> str:
    return "" if v is None else f"{v:,}"


def plural(n: int, one: str, many: str | None = None) -> str:
    """`1 day`, `2 days`, `1,000 days`."""
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


def as_mapping(row: Row) -> Mapping[str, object]:
    return row if isinstance(row, Mapping) else row.as_dict()


def _plain(value: object) -> object:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if hasattr(value, "as_dict"):
        return value.as_dict()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def to_json(value: object) -> str:
    return json.dumps(value, default=_plain, indent=2, ensure_ascii=False) + "\n"


def csv_cell(value: object) -> object:
    """A value as a CSV cell: None empty, times in ISO 8601, and text a spreadsheet would read as a formula
    behind a `'` (OWASP's advice). Numbers, and text that is a plain number, are left as they are."""
    if value is None:
        return ""
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not _NUMBER.match(value):
        return "'" + value
    return value


def render(rows: Sequence[Row], columns: Sequence[Column], fmt: str, *, title: str | None = None,
           document: object = None) -> str:
    """`rows` in format `fmt`; for JSON, `document` (default: the rows) is what gets written."""
    if fmt == "json":
        return to_json(rows if document is None else document)
    rows = [as_mapping(r) for r in rows]
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([c.key for c in columns])
        for row in rows:
            writer.writerow([csv_cell(row.get(c.key)) for c in columns])
        return out.getvalue()
    if fmt == "markdown":
        return _markdown(rows, columns, title)
    return _table(rows, columns, title)


def _cell(column: Column, value: object) -> str:
    return "" if value is None else column.show(value)


def markdown_text(text: str) -> str:
    """`text` for a Markdown table cell or heading: HTML escaped, pipes escaped, on one line."""
    return html.escape(text, quote=False).replace("|", "\\|").replace("\n", " ")


def _markdown(rows: Sequence[Mapping], columns: Sequence[Column], title: str | None) -> str:
    lines = [f"**{markdown_text(title)}**", ""] if title else []
    lines.append("| " + " | ".join(markdown_text(c.heading) for c in columns) + " |")
    lines.append("|" + "|".join("---:" if c.numeric else "---" for c in columns) + "|")
    for row in rows:
        lines.append("| " + " | ".join(markdown_text(_cell(c, row.get(c.key))) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def _table(rows: Sequence[Mapping], columns: Sequence[Column], title: str | None) -> str:
    # Text objects, not str: rich would read `[bold]` or `[/i]` in a title as markup and drop or refuse it.
    table = Table(title=None if title is None else Text(title), title_justify="left", header_style="bold")
    for column in columns:
        table.add_column(Text(column.heading), justify="right" if column.numeric else "left",
                         overflow="fold", max_width=None if column.numeric else 60)
    for row in rows:
        table.add_row(*(Text(_cell(c, row.get(c.key))) for c in columns))
    console = Console(file=io.StringIO(), width=160, force_terminal=False, color_system=None)
    console.print(table)
    return console.file.getvalue()
