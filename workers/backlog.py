"""How far behind the workers are: per shard, the entries after the committed offset and the age of
the oldest. Reads Redis only; the offsets come from the database through the caller."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from redis import Redis

from readrate.events.streamids import START_ID, after, id_ms, id_order, id_text
from readrate.events.wire import Keys

# Entries at or before the offset are read in pages of this many (normally there are none: applied
# entries are trimmed right after the commit; a drain killed in between leaves at most one batch).
STALE_PAGE = 10_000


@dataclass(frozen=True)
class ShardStatus:
    """One shard's stream against its committed offset."""

    shard: int
    backlog: int
    lag_s: float
    committed_offset: str
    oldest_unapplied_id: str | None = None
    offset_updated_at: datetime | None = None


def backlog(redis: Redis, keys: Keys) -> int:
    """Entries waiting in all of the installation's streams (applied ones are trimmed right after commit)."""
    pipe = redis.pipeline(transaction=False)
    for shard in keys.drained:
        pipe.xlen(keys.stream(shard))
    return sum(pipe.execute())


def lag_seconds(oldest_unapplied_id: str | None, now_ms: int) -> float:
    """Age of the oldest unapplied entry (0 when there is none), from its stream id's milliseconds."""
    if oldest_unapplied_id is None:
        return 0.0
    return max(0, now_ms - id_ms(oldest_unapplied_id)) / 1000


def shard_statuses(redis: Redis, keys: Keys, offsets: dict[int, tuple[str, datetime | None]], *,
                   now_ms: int) -> list[ShardStatus]:
    """Backlog, lag and offset of every shard: entries after the offset, and the age of the first of them."""
    pipe = redis.pipeline(transaction=False)
    for shard in keys.drained:
        stream, (offset, _at) = keys.stream(shard), offsets.get(shard, (START_ID, None))
        pipe.xlen(stream)
        pipe.xrange(stream, count=1)
        pipe.xrange(stream, min=after(offset), count=1)
    replies = pipe.execute()
    found = []
    for shard in keys.drained:
        offset, updated_at = offsets.get(shard, (START_ID, None))
        length, first, pending = replies[3 * shard:3 * shard + 3]
        oldest = id_text(pending[0][0]) if pending else None
        stale = 0
        if first and offset != START_ID and id_order(id_text(first[0][0])) <= id_order(offset):
            stale = _count_until(redis, keys.stream(shard), offset)
        found.append(ShardStatus(shard=shard, backlog=max(0, length - stale), lag_s=lag_seconds(oldest, now_ms),
                                 committed_offset=offset, oldest_unapplied_id=oldest, offset_updated_at=updated_at))
    return found


def _count_until(redis: Redis, stream: str, offset: str) -> int:
    """Entries at or before `offset` (applied, not yet trimmed)."""
    count, start = 0, "-"
    while True:
        page = redis.xrange(stream, min=start, max=offset, count=STALE_PAGE)
        count += len(page)
        if len(page) < STALE_PAGE:
            return count
        start = after(id_text(page[-1][0]))
