"""Redis stream ids (`MS-SEQ`), pure: the one place that reads, orders and steps them.

A shard's committed offset is a stream id; the drain reads after it, trims up to
it and reports lag from its milliseconds. Redis hands ids back as bytes, readrate
stores them as text.
"""

from __future__ import annotations

# The id before every entry: a new shard's offset, meaning "nothing applied yet".
START_ID = "0-0"


def id_text(raw: bytes | str) -> str:
    """A stream id as text, whether Redis returned bytes or a decoded string."""
    return raw.decode() if isinstance(raw, bytes) else raw


def id_order(stream_id: str) -> tuple[int, int]:
    """`(ms, seq)`, which orders ids as Redis does (text comparison does not: '9-0' > '10-0')."""
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)


def next_id(stream_id: str) -> str:
    """The smallest stream id after `stream_id` (XTRIM MINID keeps ids >= it)."""
    ms, seq = id_order(stream_id)
    return f"{ms}-{seq + 1}"


def id_ms(stream_id: str) -> int:
    """The milliseconds part of a stream id: when Redis took the entry."""
    return id_order(stream_id)[0]


def after(stream_id: str) -> str:
    """The XRANGE bound for the entries strictly after `stream_id`."""
    return f"({stream_id}"
