"""Event types and the rules every event obeys, whoever produced it.

`Read` and `Vote` check their own shape when built (article id, visitor or
voter, event time as epoch milliseconds); the rules that depend on context —
the rating scale and how far in the future an event may be — are applied by
`check_time` and the scale, with the clock passed in so this module stays pure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from .errors import InvalidEvent

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MAX_ID_CHARS = 128
MAX_FUTURE_MS = 5 * 60 * 1000
# C0 and C1 control characters and DEL (NUL in particular must never reach PostgreSQL text),
# and lone surrogates, which is how undecodable input bytes arrive (surrogateescape).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _short(value: str, limit: int = 40) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "…")


def check_article_id(article_id: object) -> str:
    """Return the article id if it is 1–128 characters without control characters."""
    if not isinstance(article_id, str):
        raise InvalidEvent(f"article id {article_id!r} is not text")
    if not article_id:
        raise InvalidEvent("article id is empty; accepted: 1-128 characters")
    if len(article_id) > MAX_ID_CHARS:
        raise InvalidEvent(
            f"article id {_short(article_id)} is {len(article_id)} characters; accepted: 1-{MAX_ID_CHARS}"
        )
    if _CONTROL.search(article_id):
        raise InvalidEvent(f"article id {_short(article_id)} contains a control character or a byte that is not UTF-8")
    return article_id


def check_person(value: object, role: str, *, required: bool) -> str | None:
    """Return a visitor or voter id (at most 128 characters, no control characters), or None."""
    if value is None or value == "":
        if required:
            raise InvalidEvent(f"{role} is required for a vote")
        return None
    if not isinstance(value, str):
        value = str(value)
    if len(value) > MAX_ID_CHARS:
        raise InvalidEvent(f"{role} {_short(value)} is {len(value)} characters; accepted: at most {MAX_ID_CHARS}")
    if _CONTROL.search(value):
        raise InvalidEvent(f"{role} {_short(value)} contains a control character or a byte that is not UTF-8")
    return value


def check_time(at_ms: int, now_ms: int) -> int:
    """Return the event time if it is not more than five minutes ahead of `now_ms`."""
    if at_ms > now_ms + MAX_FUTURE_MS:
        ahead_s = (at_ms - now_ms) // 1000
        raise InvalidEvent(
            f"event time {at_ms} is {ahead_s} s in the future; accepted: at most {MAX_FUTURE_MS // 1000} s ahead"
        )
    return at_ms


def _check_at_ms(at_ms: object) -> int:
    if isinstance(at_ms, bool) or not isinstance(at_ms, int):
        raise InvalidEvent(f"event time {at_ms!r} is not an integer number of epoch milliseconds")
    if at_ms < 0:
        raise InvalidEvent(f"event time {at_ms} is negative; accepted: epoch milliseconds >= 0")
    return at_ms


@dataclass(frozen=True, slots=True)
class Read:
    """A reader viewed an article."""

    article_id: str
    at_ms: int
    visitor: str | None = None

    def __post_init__(self) -> None:
        check_article_id(self.article_id)
        _check_at_ms(self.at_ms)
        object.__setattr__(self, "visitor", check_person(self.visitor, "visitor", required=False))


@dataclass(frozen=True, slots=True)
class Vote:
    """A voter rated an article; the rating is already checked against the scale."""

    article_id: str
    at_ms: int
    voter: str
    rating: float

    def __post_init__(self) -> None:
        check_article_id(self.article_id)
        _check_at_ms(self.at_ms)
        object.__setattr__(self, "voter", check_person(self.voter, "voter", required=True))


Event = Read | Vote


def to_ms(at: object, now_ms: int) -> int:
    """Turn an event time given by a caller into epoch milliseconds.

    Accepts None (now), an int of epoch milliseconds, an aware or naive (UTC)
    datetime, a date (its midnight UTC), or a string holding either an integer
    of milliseconds or an ISO 8601 date/time.
    """
    if at is None:
        return now_ms
    if isinstance(at, bool):
        raise InvalidEvent(f"event time {at!r} is not a time")
    if isinstance(at, int):
        return at
    if isinstance(at, datetime):
        aware = at if at.tzinfo else at.replace(tzinfo=timezone.utc)
        return (aware - EPOCH) // timedelta(milliseconds=1)
    if isinstance(at, date):
        return to_ms(datetime(at.year, at.month, at.day, tzinfo=timezone.utc), now_ms)
    if isinstance(at, str):
        text = at.strip()
        if re.fullmatch(r"-?\d+", text):
            return int(text)
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
        except ValueError:
            raise InvalidEvent(
                f"event time {at!r} is neither epoch milliseconds nor an ISO 8601 date/time"
            ) from None
        return to_ms(parsed, now_ms)
    raise InvalidEvent(f"event time {at!r} is not a time; accepted: epoch ms, ISO 8601, datetime")
