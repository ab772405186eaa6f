"""Bulk import: events from CSV (`kind,article,at,visitor,rating`) or JSON Lines, with line numbers.

`parse_lines` turns lines into `(line number, event or error)` pairs, so the
caller can push the good ones through `Emitter.emit_many` in pipelined chunks
and report the bad ones by number. Column names can be mapped (MovieLens'
`userId,movieId,rating,timestamp` imports with `--kind vote --map article=movieId
--map visitor=userId --map at=timestamp --time-unit s`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from .errors import InvalidEvent
from .model import Event
from .records import records

FIELDS = ("kind", "article", "at", "visitor", "rating")
KINDS = ("read", "vote")


@dataclass(frozen=True)
class ImportSpec:
    """How the file's columns map onto event fields."""

    columns: dict[str, str] = field(default_factory=lambda: {f: f for f in FIELDS})
    kind: str | None = None  # every line is this kind when the file has no kind column
    time_unit_ms: int = 1  # 1000 when `at` integers are epoch seconds

    @classmethod
    def build(cls, mapping: Iterable[str] = (), kind: str | None = None, time_unit: str = "ms") -> ImportSpec:
        """From `FIELD=COLUMN` strings; raises ValueError quoting a bad one."""
        columns = {f: f for f in FIELDS}
        for item in mapping:
            name, sep, column = item.partition("=")
            if not sep or name not in FIELDS or not column:
                raise ValueError(f"{item!r} is not FIELD=COLUMN with FIELD one of {', '.join(FIELDS)}")
            columns[name] = column
        if kind is not None and kind not in KINDS:
            raise ValueError(f"kind {kind!r} is not one of {', '.join(KINDS)}")
        return cls(columns, kind, {"ms": 1, "s": 1000}[time_unit])


def detect_format(name: str, first_line: str) -> str:
    lowered = name.lower()
    if lowered.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if lowered.endswith(".csv"):
        return "csv"
    return "jsonl" if first_line.lstrip().startswith("{") else "csv"


MakeRead = Callable[[str, str | None, object], Event]
MakeVote = Callable[[str, object, str, object], Event]


def parse_lines(
    lines: Iterable[str], fmt: str, spec: ImportSpec, make_read: MakeRead, make_vote: MakeVote
) -> Iterator[tuple[int, Event | InvalidEvent]]:
    """Yield `(line number, event)` or `(line number, InvalidEvent)` for every data line."""
    cols = spec.columns
    for line_no, record in records(lines, fmt):
        if isinstance(record, str):
            yield line_no, InvalidEvent(record)
            continue
        try:
            kind = spec.kind or _get(record, cols["kind"])
            article = _get(record, cols["article"])
            at = _time(record.get(cols["at"]), spec.time_unit_ms)
            person = record.get(cols["visitor"])
            person = None if person in (None, "") else str(person)
            if kind == "read":
                yield line_no, make_read(article, person, at)
            elif kind == "vote":
                yield line_no, make_vote(article, _get(record, cols["rating"]), person, at)
            else:
                raise InvalidEvent(f"kind {kind!r} is unknown; accepted: read, vote")
        except InvalidEvent as exc:
            yield line_no, exc


def _get(record: dict, column: str) -> object:
    value = record.get(column)
    if value is None or value == "":
        raise InvalidEvent(f"column {column!r} is missing or empty")
    return value


def _time(value: object, unit_ms: int) -> object:
    if value is None or value == "":
        raise InvalidEvent("the event time is missing; accepted: epoch milliseconds or ISO 8601")
    if isinstance(value, bool) or isinstance(value, float):
        raise InvalidEvent(f"event time {value!r} is not an integer or an ISO 8601 date/time")
    if isinstance(value, int):
        return value * unit_ms
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        return int(text) * unit_ms
    return text
