"""Event types: a read and a vote, each checked against the event rules when it is built.

`Read` and `Vote` check their own shape (article id, visitor or voter, event time
as epoch milliseconds) with the rules in validator.py, the one place they live; the
rules that depend on context — the rating scale and how far in the future an event
may be — are applied by the scale and `check_time`, with the clock passed in so this
module stays pure. `to_ms` turns the times callers give into epoch milliseconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time

from .clock import datetime_to_ms
from .errors import InvalidEvent
# Re-exported: producers (the Emitter, the article catalog) take the rules from here too.
from .validator import MAX_FUTURE_MS, MAX_ID_CHARS, check_article_id, check_at_ms, check_person, check_time

__all__ = ["MAX_FUTURE_MS", "MAX_ID_CHARS", "Event", "Read", "Vote", "check_article_id", "check_person",
           "check_time", "to_ms"]


@dataclass(frozen=True, slots=True)
class Read:
    """A reader viewed an article."""

    article_id: str
    at_ms: int
    visitor: str | None = None

    def __post_init__(self) -> None:
        check_article_id(self.article_id)
        check_at_ms(self.at_ms)
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
        check_at_ms(self.at_ms)
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
        return datetime_to_ms(at)
    if isinstance(at, date):
        return datetime_to_ms(datetime.combine(at, time()))
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
