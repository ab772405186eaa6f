"""The event rules, in one place: what an event must be, whoever produced it and whoever reads it.

Every path an event takes reaches these functions: `Read` and `Vote` (model.py) apply
the shape rules when built, so the Emitter's builders and the importer do; the
importer adds the rules that need the raw line (a read carrying a rating); the wire
decoder and its fast path (wire.py) end in the same functions. So an event a page or
an import accepts is one the workers accept, and a refused one gets the same reason
text on every path. Pure: the clock is passed in, the rating scale checks ratings.
"""

from __future__ import annotations

import re

from .errors import InvalidEvent

KINDS = ("read", "vote")
MAX_ID_CHARS = 128
MAX_FUTURE_MS = 5 * 60 * 1000
# C0 and C1 control characters and DEL (NUL in particular must never reach PostgreSQL text),
# and lone surrogates, which is how undecodable input bytes arrive (surrogateescape).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# Bidi embeddings, overrides and isolates: an id holding one is shown reordered, so a report
# could show one article's counters under what reads as another article's id.
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")
BIDI_ACCEPTED = "accepted: text without bidi-override characters (U+202A-U+202E, U+2066-U+2069)"
READ_WITH_RATING = "a read carries no rating; field 'r' is for votes"
VOTER_REQUIRED = "voter (field 'v') is required for a vote"


def _short(value: str, limit: int = 40) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "…")


def _check_characters(value: str, what: str) -> None:
    if _CONTROL.search(value):
        raise InvalidEvent(f"{what} {_short(value)} contains a control character or a byte that is not UTF-8")
    bidi = _BIDI.search(value)
    if bidi:
        raise InvalidEvent(f"{what} {_short(value)} contains the bidi-override character {bidi.group()!r}; "
                           f"{BIDI_ACCEPTED}")


def check_article_id(article_id: object) -> str:
    """Return the article id if it is 1–128 characters without control or bidi-override characters."""
    if not isinstance(article_id, str):
        raise InvalidEvent(f"article id {article_id!r} is not text")
    if not article_id:
        raise InvalidEvent("article id is empty; accepted: 1-128 characters")
    if len(article_id) > MAX_ID_CHARS:
        raise InvalidEvent(
            f"article id {_short(article_id)} is {len(article_id)} characters; accepted: 1-{MAX_ID_CHARS}"
        )
    _check_characters(article_id, "article id")
    return article_id


def check_person(value: object, role: str, *, required: bool) -> str | None:
    """Return a visitor or voter id (at most 128 characters, no control or bidi characters), or None."""
    if value is None or value == "":
        if required:
            raise InvalidEvent(VOTER_REQUIRED if role == "voter" else f"{role} is required")
        return None
    if not isinstance(value, str):
        value = str(value)
    if len(value) > MAX_ID_CHARS:
        raise InvalidEvent(
            f"{role} {_short(value)} is {len(value)} characters; accepted: at most {MAX_ID_CHARS}"
        )
    _check_characters(value, role)
    return value


def check_at_ms(at_ms: object) -> int:
    """Return the event time if it is a non-negative integer of epoch milliseconds."""
    if isinstance(at_ms, bool) or not isinstance(at_ms, int):
        raise InvalidEvent(f"event time {at_ms!r} is not an integer number of epoch milliseconds")
    if at_ms < 0:
        raise InvalidEvent(f"event time {at_ms} is negative; accepted: epoch milliseconds >= 0")
    return at_ms


def check_time(at_ms: int, now_ms: int) -> int:
    """Return the event time if it is not more than five minutes ahead of `now_ms`."""
    if at_ms > now_ms + MAX_FUTURE_MS:
        ahead_s = (at_ms - now_ms) // 1000
        raise InvalidEvent(
            f"event time {at_ms} is {ahead_s} s in the future; "
            f"accepted: at most {MAX_FUTURE_MS // 1000} s ahead"
        )
    return at_ms


def check_kind(kind: object) -> str:
    """Return the kind if it is `read` or `vote`."""
    if kind not in KINDS:
        quoted = _short(kind) if isinstance(kind, str) else repr(kind)
        raise InvalidEvent(f"kind {quoted} is unknown; accepted: {', '.join(KINDS)}")
    return kind


def check_no_rating(rating: object) -> None:
    """Refuse a read that carries a rating (None means it carries none)."""
    if rating is not None:
        raise InvalidEvent(READ_WITH_RATING)
