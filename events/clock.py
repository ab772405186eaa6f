"""The one clock and the one calendar: epoch milliseconds (the wire) and naive UTC (the database).

Every time readrate handles is either epoch milliseconds, as events carry it, or a
naive `datetime` in UTC, as both databases store and compare it. This module is
the only place that converts between the two, and the only place that reads the
clock (`now_ms`, `utc_now`); code that must be testable takes a clock as an argument.
"""

from __future__ import annotations

import time
from datetime import date, datetime, timedelta, timezone

# Naive, like every datetime readrate stores: 1970-01-01 00:00 UTC.
EPOCH = datetime(1970, 1, 1)
MS_PER_HOUR = 3_600_000
MS_PER_DAY = 86_400_000
_EPOCH_ORDINAL = EPOCH.toordinal()
_MS = timedelta(milliseconds=1)


def now_ms() -> int:
    """Now as epoch milliseconds."""
    return time.time_ns() // 1_000_000


def utc_now() -> datetime:
    """Now as a naive UTC datetime, the way the database stores times."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def naive_utc(value: datetime) -> datetime:
    """An aware datetime in UTC without its zone; a naive one is taken to be UTC already."""
    if value.tzinfo is None:
        return value
    return value.astimezone(timezone.utc).replace(tzinfo=None)


def ms_to_datetime(at_ms: int) -> datetime:
    """Naive UTC datetime for epoch milliseconds."""
    return EPOCH + timedelta(milliseconds=at_ms)


def datetime_to_ms(value: datetime) -> int:
    """Epoch milliseconds for a datetime (naive means UTC)."""
    return (naive_utc(value) - EPOCH) // _MS


def hour_start(hour_index: int) -> datetime:
    """The start of epoch hour `hour_index` (at_ms // MS_PER_HOUR)."""
    return EPOCH + timedelta(hours=hour_index)


def day_date(day_index: int) -> date:
    """The date of epoch day `day_index` (at_ms // MS_PER_DAY)."""
    return date.fromordinal(_EPOCH_ORDINAL + day_index)
