"""Conversions between epoch milliseconds (the wire) and the naive-UTC values the database stores."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

EPOCH = datetime(1970, 1, 1)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
MS = timedelta(milliseconds=1)
MS_PER_HOUR = 3_600_000
MS_PER_DAY = 86_400_000


def ms_to_datetime(at_ms: int) -> datetime:
    """Naive UTC datetime for epoch milliseconds."""
    return EPOCH + timedelta(milliseconds=at_ms)


def datetime_to_ms(value: datetime) -> int:
    """Epoch milliseconds for a datetime (naive means UTC)."""
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return (value - EPOCH) // MS


def hour_start(hour_index: int) -> datetime:
    """The start of epoch hour `hour_index` (at_ms // MS_PER_HOUR)."""
    return EPOCH + timedelta(hours=hour_index)


def day_date(day_index: int) -> date:
    """The date of epoch day `day_index` (at_ms // MS_PER_DAY)."""
    return date.fromordinal(_EPOCH_ORDINAL + day_index)


def date_index(day: date) -> int:
    return day.toordinal() - _EPOCH_ORDINAL


def utc_now() -> datetime:
    """Now as a naive UTC datetime, the way the database stores times."""
    return datetime.now(timezone.utc).replace(tzinfo=None)
