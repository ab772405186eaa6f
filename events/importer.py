"""Bulk import: events from CSV (`kind,article,at,visitor,rating`) or JSON Lines, with line numbers.

`parse_lines` turns lines into `(line number, event or error)` pairs, so the
caller can push the good ones through `Emitter.emit_many` in pipelined chunks
and report the bad ones by number. Each line is checked by the event rules
(validator.py) a worker applies, so what an import accepts a worker counts.
Column names can be mapped (MovieLens' `userId,movieId,rating,timestamp` imports
with `--kind vote --map article=movieId --map visitor=userId --map at=timestamp
--time-unit s`); a CSV header without a needed column is refused before any line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from .clock import ms_to_datetime
from .errors import InvalidEvent
from .model import Event
from .records import MissingColumn, records
from .validator import KINDS, check_kind, check_no_rating

FIELDS = ("kind", "article", "at", "visitor", "rating")
# Integer times below this many milliseconds fall before 1973-03-03: as epoch milliseconds they are
# almost surely epoch seconds; as epoch seconds, times at or above it lie beyond the year 5000.
SECONDS_LOOKALIKE_BELOW = 10**11


@dataclass(frozen=True)
class ImportSpec:
    """How the file's columns map onto event fields."""

    columns: dict[str, str] = field(default_factory=lambda: {f: f for f in FIELDS})
    kind: str | None = None  # every line is this kind when the file has no kind column
    time_unit_ms: int = 1  # 1000 when `at` integers are epoch seconds
    mapped: frozenset[str] = frozenset()  # the fields given with --map: their columns must exist

    @classmethod
    def build(cls, mapping: Iterable[str] = (), kind: str | None = None, time_unit: str = "ms") -> ImportSpec:
        """From `FIELD=COLUMN` strings; raises ValueError quoting a bad one."""
        columns = {f: f for f in FIELDS}
        mapped = set()
        for item in mapping:
            name, sep, column = item.partition("=")
            if not sep or name not in FIELDS or not column:
                raise ValueError(f"{item!r} is not FIELD=COLUMN with FIELD one of {', '.join(FIELDS)}")
            columns[name] = column
            mapped.add(name)
        if kind is not None and kind not in KINDS:
            raise ValueError(f"kind {kind!r} is not one of {', '.join(KINDS)}")
        return cls(columns, kind, {"ms": 1, "s": 1000}[time_unit], frozenset(mapped))

    def needed(self) -> list[str]:
        """The fields a CSV header must have a column for."""
        fields = ["kind", "article", "at"] if self.kind is None else ["article", "at"]
        if self.kind == "vote":
            fields += ["visitor", "rating"]
        return fields + [f for f in FIELDS if f in self.mapped and f not in fields]


@dataclass
class TimeUnitHint:
    """Integer times that look like the other unit than the one the import was told, for one warning."""

    unit_ms: int = 1  # the unit the import was told: 1 for milliseconds, 1000 for seconds
    count: int = 0
    first_line: int = 0
    first_value: int = 0

    def see(self, line_no: int, value: int) -> None:
        """Note integer time `value` of line `line_no`, as written in the file."""
        if value >= 0 and (value < SECONDS_LOOKALIKE_BELOW) == (self.unit_ms == 1):
            if not self.count:
                self.first_line, self.first_value = line_no, value
            self.count += 1

    def warning(self) -> str | None:
        """The one warning to show, or None when every integer time looked right."""
        if not self.count:
            return None
        one = self.count == 1
        line, value = f"{self.first_line:,}", self.first_value
        times = (f"1 integer time (line {line}: {value}) looks" if one else
                 f"{self.count:,} integer times (the first on line {line}: {value}) look")
        if self.unit_ms == 1:
            as_ms = ms_to_datetime(self.first_value).strftime("%Y-%m-%d")
            return (f"{times} like epoch seconds: as epoch milliseconds {'it falls' if one else 'they fall'} "
                    f"before 1973 ({as_ms}). {'It was' if one else 'They were'} imported as given, in "
                    f"milliseconds; if the file holds seconds, import it with --time-unit s (importing it "
                    f"again counts its reads again)")
        return (f"{times} like epoch milliseconds, not the seconds --time-unit s says: as seconds "
                f"{'it lies' if one else 'they lie'} past the year 5000, so "
                f"{'it was' if one else 'they were'} refused as in the future; "
                f"import the file without --time-unit s")


MakeRead = Callable[[str, str | None, object], Event]
MakeVote = Callable[[str, object, str, object], Event]


def parse_lines(
    lines: Iterable[str], fmt: str, spec: ImportSpec, make_read: MakeRead, make_vote: MakeVote,
    hint: TimeUnitHint | None = None,
) -> Iterator[tuple[int, Event | InvalidEvent]]:
    """Yield `(line number, event)` or `(line number, InvalidEvent)` for every data line.

    Raises MissingColumn, before the first line, when a CSV header lacks a needed column.
    Integer times that look like the wrong unit are noted in `hint`.
    """
    cols = spec.columns
    try:
        pairs = records(lines, fmt, required=[cols[f] for f in spec.needed()] if fmt == "csv" else ())
        for line_no, record in pairs:
            if isinstance(record, str):
                yield line_no, InvalidEvent(record)
                continue
            try:
                yield line_no, _event(record, spec, make_read, make_vote, line_no, hint)
            except InvalidEvent as exc:
                yield line_no, exc
    except MissingColumn as exc:
        raise _explained(exc, spec) from None


def _event(record: dict, spec: ImportSpec, make_read: MakeRead, make_vote: MakeVote, line_no: int,
           hint: TimeUnitHint | None) -> Event:
    cols = spec.columns
    kind = check_kind(spec.kind or _get(record, cols["kind"]))
    article = _get(record, cols["article"])
    at = _time(record.get(cols["at"]), spec.time_unit_ms)
    if hint is not None and isinstance(at, int):
        hint.see(line_no, at // spec.time_unit_ms)
    person = _optional(record.get(cols["visitor"]))
    if kind == "read":
        check_no_rating(_optional(record.get(cols["rating"])))
        return make_read(article, person, at)
    return make_vote(article, _get(record, cols["rating"]), person, at)


def _explained(exc: MissingColumn, spec: ImportSpec) -> MissingColumn:
    """The header error with what each missing column was wanted for and the options that fix it."""
    wanted = {column: name for name, column in spec.columns.items()}
    missing_fields = [wanted.get(column, column) for column in exc.missing]
    names = ", ".join(repr(c) if wanted.get(c) == c else f"{c!r} (for {wanted.get(c)}, from --map)"
                      for c in exc.missing)
    fixes = ["name the column that holds each field with --map FIELD=COLUMN (e.g. --map article=movieId)"]
    if "kind" in missing_fields:
        fixes.append("give every line one kind with --kind read or --kind vote")
    noun = "column" if len(exc.missing) == 1 else "columns"
    return MissingColumn(exc.missing, exc.header,
                         f"the header ({', '.join(exc.header)}) has no {noun} {names}; {', or '.join(fixes)}")


def _get(record: dict, column: str) -> object:
    value = record.get(column)
    if value is None or value == "":
        raise InvalidEvent(f"column {column!r} is missing or empty")
    return value


def _optional(value: object) -> str | None:
    return None if value is None or value == "" else str(value)


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


def good_lines(pairs: Iterable[tuple[int, Event | InvalidEvent]],
               bad: list[tuple[int, str]]) -> Iterator[tuple[int, Event]]:
    """The (line number, event) pairs of `parse_lines` that hold an event; refused lines go to `bad` as
    (line number, reason)."""
    for line_no, item in pairs:
        if isinstance(item, InvalidEvent):
            bad.append((line_no, str(item)))
        else:
            yield line_no, item
