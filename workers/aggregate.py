"""The pure fold from raw stream entries to one Batch of deltas (no I/O).

Step 3 of "Aggregation, exactly once" in DESIGN.md: decode and check every
entry, count reads per article and per hour/day bucket (event time, UTC), keep
only the latest vote per (article, voter), and set bad entries aside with their
reason. The writer applies the Batch in one transaction.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from events.errors import InvalidEvent
from events.model import Read
from events.scale import RatingScale
from events.wire import decode, payload_text

from .timeconv import MS_PER_DAY, MS_PER_HOUR


@dataclass
class ArticleReads:
    """Reads of one article in a batch, and the span of its events."""

    reads: int = 0
    first_at_ms: int | None = None
    last_read_at_ms: int | None = None


@dataclass(frozen=True, slots=True)
class VoteCast:
    """The latest vote of one voter on one article within a batch."""

    article_id: str
    voter: str
    rating: float
    at_ms: int


@dataclass(frozen=True, slots=True)
class Rejected:
    """A stream entry that broke the contract, kept as a dead letter."""

    stream_id: str
    payload: str
    reason: str


@dataclass
class Batch:
    """Everything one run of entries changes, ready for one transaction."""

    last_id: str
    entries: int = 0
    articles: dict[str, ArticleReads] = field(default_factory=dict)
    hourly: Counter[tuple[str, int]] = field(default_factory=Counter)  # (article, epoch hour) -> reads
    daily: Counter[tuple[str, int]] = field(default_factory=Counter)  # (article, epoch day) -> reads
    votes: dict[tuple[str, str], VoteCast] = field(default_factory=dict)
    rejected: list[Rejected] = field(default_factory=list)

    @property
    def reads(self) -> int:
        return sum(a.reads for a in self.articles.values())


def _stream_id(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def aggregate(entries: Iterable[tuple[bytes, dict[bytes, bytes]]], *, scale: RatingScale, now_ms: int) -> Batch:
    """Fold `(stream id, fields)` pairs, in stream order, into a Batch.

    Votes: per (article, voter) the vote with the latest event time wins; on a
    tie the later entry wins, as it would across batches.
    """
    batch = Batch(last_id="")
    articles = batch.articles
    hourly = batch.hourly
    daily = batch.daily
    votes = batch.votes
    for raw_id, fields in entries:
        stream_id = _stream_id(raw_id)
        batch.last_id = stream_id
        batch.entries += 1
        try:
            event = decode(fields, scale=scale, now_ms=now_ms)
        except InvalidEvent as exc:
            batch.rejected.append(Rejected(stream_id, payload_text(fields), str(exc)))
            continue
        article_id = event.article_id
        at_ms = event.at_ms
        stats = articles.get(article_id)
        if stats is None:
            stats = articles[article_id] = ArticleReads(first_at_ms=at_ms)
        elif at_ms < stats.first_at_ms:
            stats.first_at_ms = at_ms
        if isinstance(event, Read):
            stats.reads += 1
            if stats.last_read_at_ms is None or at_ms > stats.last_read_at_ms:
                stats.last_read_at_ms = at_ms
            hourly[(article_id, at_ms // MS_PER_HOUR)] += 1
            daily[(article_id, at_ms // MS_PER_DAY)] += 1
        else:
            key = (article_id, event.voter)
            held = votes.get(key)
            if held is None or at_ms >= held.at_ms:
                votes[key] = VoteCast(article_id, event.voter, event.rating, at_ms)
    return batch
