"""Report windows by event time: `--since`/`--until` parsing, and a window cut into whole days and the rest.

Pure (no SQL, no clock of its own: `now` is passed in). A window is `[since, until)`
in naive UTC, either end open. The queries read whole UTC days from the daily
buckets and the ragged edges from the hourly buckets (reads) or the votes table
(votes); `split` says which is which. Reads are known only to the hour, so their
window is first taken down to whole hours (`Window.for_reads`): a read counts when
the hour it happened in starts inside the window's hours.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
WEEK = timedelta(weeks=1)
_DURATION = re.compile(r"^\s*(\d{1,6})\s*([hdw])\s*$", re.IGNORECASE)
_UNITS = {"h": HOUR, "d": DAY, "w": WEEK}
# The times a window may start or end at. The latest is the last midnight a datetime holds: a window
# starting after it would have no day boundary to round up to (`ceil_day`).
EARLIEST = datetime.min
LATEST = datetime(9999, 12, 31)
WHEN_ACCEPTED = ("a duration before now (24h, 7d, 2w) or an ISO 8601 date or date/time from 0001-01-01 to "
                 "9999-12-31 00:00, UTC unless a zone is given (2015-01-01, 2015-01-01T10:00, "
                 "2015-01-01T10:00+02:00)")


def parse_duration(text: str) -> timedelta:
    """`24h`, `7d`, `2w` as a timedelta; ValueError quoting `text` otherwise."""
    match = _DURATION.match(text or "")
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"{text!r} is not a duration; accepted: a positive number of hours, days or weeks "
                         f"(24h, 7d, 2w)")
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


def span_text(span: timedelta) -> str:
    """A whole number of hours as the largest unit `parse_duration` reads back: `2w`, `10d`, `36h`."""
    for unit, size in (("w", WEEK), ("d", DAY)):
        if span and not span % size:
            return f"{span // size}{unit}"
    return f"{span // HOUR}h" if not span % HOUR else f"{span / HOUR:g}h"


def parse_when(text: str, now: datetime) -> datetime:
    """A window end as naive UTC: a duration means that long before `now`, else an ISO date or date/time.

    ValueError quoting `text` when it is neither, or falls outside EARLIEST..LATEST."""
    if _DURATION.match(text or ""):
        span = parse_duration(text)
        if span > now - EARLIEST:
            raise ValueError(f"{text!r} reaches back before the year 1; accepted: {WHEN_ACCEPTED}")
        return now - span
    try:
        # Python 3.11 reads every ISO 8601 form, `Z` included; a bare date is its midnight.
        parsed = datetime.fromisoformat((text or "").strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a time; accepted: {WHEN_ACCEPTED}") from None
    try:
        at = to_utc(parsed)
    except OverflowError:  # 9999-12-31T23:00-05:00 is past the last datetime once in UTC
        at = None
    if at is None or not EARLIEST <= at <= LATEST:
        raise ValueError(f"{text!r} is out of range; accepted: {WHEN_ACCEPTED}")
    return at


def to_utc(value: datetime | date) -> datetime:
    """Naive UTC for an aware datetime, a naive one (already UTC), or a date (its midnight UTC)."""
    if not isinstance(value, datetime):
        return datetime.combine(value, time())
    if value.tzinfo is not None:
        return value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def earlier(at: datetime, span: timedelta) -> datetime:
    """`at - span`, or EARLIEST when that would be before it."""
    return at - span if span <= at - EARLIEST else EARLIEST


def floor_hour(value: datetime) -> datetime:
    return value.replace(minute=0, second=0, microsecond=0)


def floor_day(value: datetime) -> datetime:
    return datetime.combine(value.date(), time())


def ceil_day(value: datetime) -> datetime:
    start = floor_day(value)
    return start if start == value else start + DAY


@dataclass(frozen=True)
class Window:
    """Events with `since <= time < until`, in naive UTC; None is an open end."""

    since: datetime | None = None
    until: datetime | None = None

    @property
    def all_time(self) -> bool:
        return self.since is None and self.until is None

    @property
    def empty(self) -> bool:
        return self.since is not None and self.until is not None and self.since >= self.until

    def for_reads(self) -> Window:
        """The window reads are counted in: both ends taken down to the hour."""
        return Window(self.since and floor_hour(self.since), self.until and floor_hour(self.until))

    def contains(self, at: datetime) -> bool:
        return (self.since is None or self.since <= at) and (self.until is None or at < self.until)

    def describe(self) -> str:
        """The window in words, for report titles."""
        if self.all_time:
            return "all time"
        since = "the start" if self.since is None else _show(self.since)
        until = "now" if self.until is None else _show(self.until)
        return f"{since} to {until} UTC"


def _show(value: datetime) -> str:
    if value.time() == time():
        return value.date().isoformat()
    return value.isoformat(sep=" ", timespec="minutes" if value.second == value.microsecond == 0 else "seconds")


def check_window(window: Window) -> Window:
    """The window if its start is before its end; ValueError quoting both otherwise."""
    if window.empty:
        raise ValueError(f"--since {_show(window.since)} is not before --until {_show(window.until)} "
                         f"(UTC); accepted: a start before the end")
    return window


@dataclass(frozen=True)
class Spans:
    """A window cut for the buckets: whole UTC days `[first, stop)` (None ends are open; `days` is None when
    there is no whole day) and the ragged parts `[start, stop)` the finer table must answer for."""

    days: tuple[date | None, date | None] | None
    parts: tuple[tuple[datetime | None, datetime | None], ...]


def split(window: Window) -> Spans:
    """Cut `window` into whole days and the parts before the first and after the last whole day."""
    since, until = window.since, window.until
    if window.empty:
        return Spans(None, ())
    first = ceil_day(since) if since is not None else None
    stop = floor_day(until) if until is not None else None
    if first is not None and stop is not None and first >= stop:
        # No midnight-to-midnight day inside: the whole window is one ragged part.
        return Spans(None, ((since, until),))
    parts = []
    if since is not None and since < first:
        parts.append((since, first))
    if until is not None and stop < until:
        parts.append((stop, until))
    return Spans((first and first.date(), stop and stop.date()), tuple(parts))


def days_between(first: date, last: date) -> list[date]:
    """Every day from `first` to `last`, both included."""
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]
