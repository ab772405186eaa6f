"""Resumable bulk loading: `readrate import` sends events so that a re-run after any failure counts
nothing twice and loses nothing.

Each chunk's events go, per shard, in one MULTI … EXEC together with that shard's
progress mark, `{PREFIX:SHARD}:import:ID` = the last line number it took. A
transaction is all or nothing (out of memory refuses it whole), and the mark
shares the stream's hash slot, so this holds on a Redis Cluster too. A re-run of
the same import reads the marks and skips, shard by shard, every line at or
before its mark. The import's shard count is recorded on the first run
(`{PREFIX}:import:ID`, field `shards`), so a re-run after `config set shards`
routes lines as the first run did; those shards are still drained.

The import id is the SHA-256 of the file and the options that shape its events,
so running the same command again resumes it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import BinaryIO

from redis import Redis, RedisError
from rq import Queue

from .errors import EmitError
from .jobs import enqueue_drains
from .model import Event
from .transport import send
from .wire import DOORBELL_TTL_MS, Keys, encode_flat

# Events per round trip: as `Emitter.emit_many`.
CHUNK = 2000
# How long progress marks are kept: a re-run within this resumes; a later one starts afresh.
PROGRESS_TTL_S = 30 * 24 * 3600
HASH_BLOCK = 1 << 20


class ImportStopped(EmitError):
    """Raised when Redis refused part of an import; `landed` events of this run were stored before it."""

    def __init__(self, message: str, landed: int) -> None:
        super().__init__(message)
        self.landed = landed


def import_id(raw: BinaryIO, *parts: str) -> str:
    """The SHA-256 (hex, first 32 digits) of a seekable file's bytes and `parts`; the file is rewound."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8") + b"\0")
    while block := raw.read(HASH_BLOCK):
        digest.update(block)
    raw.seek(0)
    return digest.hexdigest()[:32]


@dataclass
class LoadResult:
    """What one run of an import did."""

    landed: int = 0  # events this run stored
    skipped: int = 0  # events an earlier run had stored already
    shards_rung: set[int] = field(default_factory=set)


class Loader:
    """Sends (line number, event) pairs of one import, resuming where an earlier run of it stopped."""

    def __init__(self, redis: Redis, keys: Keys, import_id: str, *, queue: Queue | None = None,
                 ttl_s: int = PROGRESS_TTL_S) -> None:
        self.redis = redis
        self.import_id = import_id
        self.queue = queue
        self.ttl_s = ttl_s
        self.result = LoadResult()
        state = f"{{{keys.prefix}}}:import:{import_id}"
        # The first run's shard count wins: a re-run must route each line where the first run did.
        redis.hsetnx(state, "shards", keys.shards)
        redis.expire(state, ttl_s)
        shards = int(redis.hget(state, "shards"))
        self.keys = Keys(keys.prefix, shards, max(shards, keys.max_shards))
        marks = redis.pipeline(transaction=False)
        for shard in range(shards):
            marks.get(self.keys.import_progress(shard, import_id))
        self.marks = [int(m) if m else 0 for m in marks.execute()]

    @property
    def resumed(self) -> bool:
        """True when an earlier run of this import stored some of its lines."""
        return any(self.marks)

    def load(self, pairs: Iterable[tuple[int, Event]]) -> LoadResult:
        """Send every pair not stored before; raises ImportStopped at the first chunk Redis did not take whole."""
        chunk: list[tuple[int, Event]] = []
        for pair in pairs:
            chunk.append(pair)
            if len(chunk) >= CHUNK:
                self._send(chunk)
                chunk = []
        if chunk:
            self._send(chunk)
        return self.result

    def _send(self, chunk: list[tuple[int, Event]]) -> None:
        keys, marks = self.keys, self.marks
        by_shard: dict[int, list[tuple[int, Event]]] = {}
        for line_no, event in chunk:
            shard = keys.shard_of(event.article_id)
            if line_no <= marks[shard]:
                self.result.skipped += 1
            else:
                by_shard.setdefault(shard, []).append((line_no, event))
        if not by_shard:
            return
        commands: list[tuple] = []
        order = sorted(by_shard)
        for shard in order:
            stream = keys.stream(shard)
            commands.append(("MULTI",))
            commands.extend(("XADD", stream, "*", *encode_flat(event)) for _line, event in by_shard[shard])
            commands.append(("SET", keys.import_progress(shard, self.import_id), by_shard[shard][-1][0],
                             "EX", self.ttl_s))
            commands.append(("EXEC",))
        commands.extend(("SET", keys.doorbell(shard), "1", "NX", "PX", DOORBELL_TTL_MS) for shard in order)
        replies = send(self.redis, commands)
        refused, at, rung = None, 0, []
        for shard in order:
            size = len(by_shard[shard]) + 3
            executed = replies[at + size - 1]
            at += size
            if isinstance(executed, list):  # EXEC ran every command: the events and the mark are stored
                self.result.landed += len(by_shard[shard])
                marks[shard] = by_shard[shard][-1][0]
            else:
                refused = refused or _reason(replies[at - size:at])
        for shard, reply in zip(order, replies[at:]):
            if reply is True or reply == b"OK":
                rung.append(shard)
        self._enqueue(rung)
        if refused is not None:
            raise ImportStopped(f"Redis refused events: {refused}", self.result.landed)

    def _enqueue(self, shards: list[int]) -> None:
        self.result.shards_rung.update(shards)
        if self.queue is None or not shards:
            return
        try:
            enqueue_drains(self.queue, shards)
        except RedisError:
            pass  # the events are stored; the workers' sweep enqueues within a second


def _reason(replies: list) -> str:
    """Why a shard's transaction did not run: the first error among its replies."""
    for reply in replies:
        if isinstance(reply, Exception):
            return " ".join(str(reply).split())
    return "the transaction was not executed"

