"""The pure fold from raw stream entries to one Batch of deltas (no I/O).

Step 3 of "Aggregation, exactly once" in DESIGN.md: decode and check every
entry, count reads per article and per hour/day bucket (event time, UTC), keep
only the latest vote per (article, voter), and set bad entries aside with their
reason. The writer applies the Batch in one transaction.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

from readrate.events.clock import MS_PER_HOUR
from readrate.events.errors import InvalidEvent
from readrate.events.operations import OperationEntry, is_operation, parse_operation
from readrate.events.scale import RatingScale
from readrate.events.streamids import id_text
from readrate.events.wire import Decoder, as_dict, payload_text

HOURS_PER_DAY = 24


@dataclass(slots=True)
class ArticleReads:
    """Reads of one article in a batch, and the span of its events (reads and votes)."""

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
    # With the archive on: every counted event, in stream order, as (raw stream id, article, at_ms,
    # visitor or voter as UTF-8 bytes (b"" or None: no visitor), rating or None for a read).
    counted: list[tuple[bytes, str, int, bytes | None, float | None]] | None = None
    # The archive files holding `counted`, as another thread writes them before the transaction that
    # names them: the future of that list (see `archived()`); None without the archive.
    archiving: Future | None = None
    # An operator action (reset, unvote, undo) is a batch of its own: nothing else is in it.
    operation: OperationEntry | None = None

    @property
    def reads(self) -> int:
        return sum(a.reads for a in self.articles.values())

    def archived(self) -> list:
        """The batch's archive files, once written (waiting for the thread that writes them; its error, if it
        failed); none without the archive."""
        return [] if self.archiving is None else self.archiving.result()


def aggregate(
    entries: Sequence[tuple[bytes, dict[bytes, bytes] | list[bytes]]],
    *,
    scale: RatingScale | None = None,
    now_ms: int,
    decoder: Decoder | None = None,
    keep: bool = False,
) -> Batch:
    """Fold `(stream id, fields)` pairs, in stream order, into a Batch.

    `fields` is a dict, or the flat `[name, value, …]` list of a raw XRANGE reply.
    Pass `decoder` (a long-lived `Decoder`) to reuse what it learnt across batches,
    or `scale` to start a fresh one. Votes: per (article, voter) the vote with the
    latest event time wins; on a tie the later entry wins, as it does across batches.
    `keep` also keeps every counted event in `Batch.counted`, for the archive.
    """
    decode = (decoder or Decoder(scale)).entry
    batch = Batch(last_id=id_text(entries[-1][0]) if entries else "", entries=len(entries))
    # Per (article, hour): [reads, earliest, latest]; articles and days are derived after the loop,
    # so the hot loop touches one dict per read.
    buckets: dict[tuple[str, int], list[int]] = {}
    first_vote_ms: dict[str, int] = {}
    votes = batch.votes
    if keep:
        batch.counted = []
        counted = batch.counted.append
    for raw_id, fields in entries:
        try:
            article_id, at_ms, voter, rating = decode(fields, now_ms)
        except InvalidEvent as exc:
            if is_operation(fields):
                _stop_at_operation(batch, entries, raw_id, fields)
                break
            batch.rejected.append(Rejected(id_text(raw_id), payload_text(as_dict(fields)), str(exc)))
            continue
        if keep:  # the Emitter's field order (k, a, t, v, …) in place; anything else through a dict
            if type(fields) is list and len(fields) >= 8 and fields[6] == b"v":
                counted((raw_id, article_id, at_ms, fields[7], rating))
            else:
                counted((raw_id, article_id, at_ms, _person(fields), rating))
        if voter is None:
            key = (article_id, at_ms // MS_PER_HOUR)
            bucket = buckets.get(key)
            if bucket is None:
                buckets[key] = [1, at_ms, at_ms]
            else:
                bucket[0] += 1
                if at_ms < bucket[1]:
                    bucket[1] = at_ms
                elif at_ms > bucket[2]:
                    bucket[2] = at_ms
        else:
            if at_ms < first_vote_ms.get(article_id, at_ms + 1):
                first_vote_ms[article_id] = at_ms
            held = votes.get((article_id, voter))
            if held is None or at_ms >= held.at_ms:
                votes[(article_id, voter)] = VoteCast(article_id, voter, rating, at_ms)
    _derive(batch, buckets, first_vote_ms)
    return batch


def _stop_at_operation(batch: Batch, entries, raw_id: bytes, fields) -> None:
    """An operation entry: the batch ends before it, or, if it comes first, is that operation alone."""
    position = next(i for i, (entry_id, _) in enumerate(entries) if entry_id is raw_id)
    if position > 0:
        batch.last_id, batch.entries = id_text(entries[position - 1][0]), position
        return
    batch.last_id, batch.entries = id_text(raw_id), 1
    try:
        batch.operation = parse_operation(fields)
    except InvalidEvent as exc:
        batch.rejected.append(Rejected(id_text(raw_id), payload_text(as_dict(fields)), str(exc)))


def _person(fields: list[bytes] | dict[bytes, bytes]) -> bytes | None:
    """A valid event's visitor or voter, as stored (the decoder has checked it), or None."""
    if type(fields) is list:
        fields = as_dict(fields)
    return fields.get(b"v")


def _derive(batch: Batch, buckets: dict[tuple[str, int], list[int]], first_vote_ms: dict[str, int]) -> None:
    articles = batch.articles
    daily = batch.daily
    batch.hourly.update({key: bucket[0] for key, bucket in buckets.items()})
    for (article_id, hour), (reads, earliest, latest) in buckets.items():
        day = (article_id, hour // HOURS_PER_DAY)
        daily[day] = daily.get(day, 0) + reads  # .get: Counter's __missing__ is Python code
        stats = articles.get(article_id)
        if stats is None:
            articles[article_id] = ArticleReads(reads, earliest, latest)
            continue
        stats.reads += reads
        if earliest < stats.first_at_ms:
            stats.first_at_ms = earliest
        if latest > stats.last_read_at_ms:
            stats.last_read_at_ms = latest
    # Votes count as events for first_event_at, even ones a later vote replaced.
    for article_id, at_ms in first_vote_ms.items():
        stats = articles.get(article_id)
        if stats is None:
            articles[article_id] = ArticleReads(0, at_ms, None)
        elif at_ms < stats.first_at_ms:
            stats.first_at_ms = at_ms
