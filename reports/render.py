"""Renderers: the same rows as a terminal table, CSV, JSON or Markdown.

Every report builds a list of dicts with stable snake_case keys (the JSON
contract) and a list of `Column`s saying how to show them; the renderers only
format. Numbers are rounded for people in the table and Markdown, never in CSV
or JSON.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from rich.console import Console
from rich.table import Table

FORMATS = ("table", "csv", "json", "markdown")


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


def _plain(value: object) -> object:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return value


def to_json(value: object) -> str:
    return json.dumps(value, default=_plain, indent=2, ensure_ascii=False) + "\n"


def render(rows: Sequence[dict], columns: Sequence[Column], fmt: str, *, title: str | None = None,
           document: object = None) -> str:
    """`rows` in format `fmt`; for JSON, `document` (default: the rows) is what gets written."""
    if fmt == "json":
        return to_json(rows if document is None else document)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([c.key for c in columns])
        for row in rows:
            writer.writerow(["" if row.get(c.key) is None else _plain(row.get(c.key)) for c in columns])
        return out.getvalue()
    if fmt == "markdown":
        return _markdown(rows, columns, title)
    return _table(rows, columns, title)


def _cell(column: Column, value: object) -> str:
    return "" if value is None else column.show(value)


def _markdown(rows: Sequence[dict], columns: Sequence[Column], title: str | None) -> str:
    def escape(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = [f"**{escape(title)}**", ""] if title else []
    lines.append("| " + " | ".join(escape(c.heading) for c in columns) + " |")
    lines.append("|" + "|".join("---:" if c.numeric else "---" for c in columns) + "|")
    for row in rows:
        lines.append("| " + " | ".join(escape(_cell(c, row.get(c.key))) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def _table(rows: Sequence[dict], columns: Sequence[Column], title: str | None) -> str:
    table = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        table.add_column(column.heading, justify="right" if column.numeric else "left",
                         overflow="fold", max_width=None if column.numeric else 60)
    for row in rows:
        table.add_row(*(_cell(c, row.get(c.key)) for c in columns))
    console = Console(file=io.StringIO(), width=160, force_terminal=False, color_system=None)
    console.print(table)
    return console.file.getvalue()
