"""The page hook API: `Emitter.read()`, `Emitter.vote()`, `Emitter.emit_many()`.

One event costs one Redis round trip: the XADD and the doorbell SET NX travel in
one pipeline. Only when the doorbell was newly set does the emitter enqueue a
drain job (a second round trip, once per shard per drain). By default a Redis
failure or a bad argument is logged and counted, never raised into page code;
`strict=True` raises instead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import redis as redis_lib

try:
    from hiredis import pack_command
except ImportError:  # pragma: no cover - hiredis is a dependency; redis-py packs without it
    pack_command = None
from redis import Redis

from .clock import now_ms
from .connections import PAGE, redis_client
from .errors import EmitError, InvalidEvent, ReadrateError
from .jobs import drain_queue, enqueue_drain
from .model import Event, Read, Vote, check_time, to_ms
from .scale import RatingScale, WHOLE_STARS
from .settings import Settings
from .wire import DOORBELL_TTL_MS, Keys, encode_flat

log = logging.getLogger("readrate.emitter")
# Events per round trip in emit_many: large enough to amortise round trips, small enough to bound memory.
EVENTS_PER_ROUND_TRIP = 2000


@dataclass
class EmitterStats:
    """What an emitter did, for a page's own metrics."""

    emitted: int = 0
    failed: int = 0
    rejected: int = 0


class Emitter:
    """Sends read and vote events to Redis for the workers to count."""

    def __init__(
        self,
        redis: Redis,
        *,
        keys: Keys = Keys(),
        scale: RatingScale = WHOLE_STARS,
        strict: bool = False,
        enqueue: bool = True,
        clock_ms: Callable[[], int] = now_ms,
    ) -> None:
        self._redis = redis
        self.keys = keys
        self.scale = scale
        self.strict = strict
        self._queue = drain_queue(redis, keys) if enqueue else None
        self._clock_ms = clock_ms
        self.stats = EmitterStats()
        self._last_warning_s = 0.0

    @classmethod
    def from_settings(cls, settings: Settings, *, strict: bool = False, redis: Redis | None = None) -> Emitter:
        """An emitter for a page: short timeouts so a dead Redis costs the page at most a fraction of a second."""
        client = redis or redis_client(settings.redis_url, PAGE)
        return cls(client, keys=settings.keys, scale=settings.rating_scale, strict=strict)

    # -- the page hook calls -------------------------------------------------

    def read(self, article_id: str, visitor: str | None = None, at: object = None) -> bool:
        """Record that `article_id` was read; True if Redis took the event."""
        try:
            event = self.make_read(article_id, visitor, at)
        except InvalidEvent as exc:
            return self._refuse(exc)
        return self._send([event])

    def vote(self, article_id: str, rating: object, voter: str, at: object = None) -> bool:
        """Record that `voter` rated `article_id`; True if Redis took the event."""
        try:
            event = self.make_vote(article_id, rating, voter, at)
        except InvalidEvent as exc:
            return self._refuse(exc)
        return self._send([event])

    def emit_many(self, events: Iterable[Event]) -> int:
        """Send many events in pipelined chunks; returns how many Redis took."""
        sent = 0
        chunk: list[Event] = []
        for event in events:
            try:
                chunk.append(self._recheck(event))
            except InvalidEvent as exc:
                self._refuse(exc)
                continue
            if len(chunk) >= EVENTS_PER_ROUND_TRIP:
                sent += len(chunk) if self._send(chunk) else 0
                chunk = []
        if chunk:
            sent += len(chunk) if self._send(chunk) else 0
        return sent

    # -- building events -----------------------------------------------------

    def make_read(self, article_id: str, visitor: str | None = None, at: object = None) -> Read:
        """A checked read event (raises InvalidEvent)."""
        now = self._clock_ms()
        return Read(article_id, check_time(to_ms(at, now), now), visitor)

    def make_vote(self, article_id: str, rating: object, voter: str, at: object = None) -> Vote:
        """A checked vote event (raises InvalidEvent)."""
        now = self._clock_ms()
        return Vote(article_id, check_time(to_ms(at, now), now), voter, self.scale.check(rating))

    def _recheck(self, event: Event) -> Event:
        if not isinstance(event, (Read, Vote)):
            raise InvalidEvent(f"{event!r} is not a Read or a Vote")
        check_time(event.at_ms, self._clock_ms())
        if isinstance(event, Vote):
            self.scale.check(event.rating)
        return event

    # -- talking to Redis ----------------------------------------------------

    def _send(self, events: list[Event]) -> bool:
        keys = self.keys
        commands = []
        shards = set()
        for event in events:
            shard = keys.shard_of(event.article_id)
            shards.add(shard)
            commands.append(("XADD", keys.stream(shard), "*", *encode_flat(event)))
        rung = sorted(shards)
        commands.extend(("SET", keys.doorbell(shard), "1", "NX", "PX", DOORBELL_TTL_MS) for shard in rung)
        try:
            replies = self._round_trip(commands)
        except Exception as exc:  # a page must never break because analytics did
            self.stats.failed += len(events)
            if self.strict:
                if isinstance(exc, (redis_lib.RedisError, OSError)):
                    raise EmitError(f"Redis did not take {len(events)} event(s): {exc}") from exc
                raise
            self._warn("Redis did not take %d event(s), dropped by this page: %s", len(events), exc)
            return False
        self.stats.emitted += len(events)
        if self._queue is not None:
            self._enqueue([shard for shard, reply in zip(rung, replies[len(events):]) if reply])
        return True

    def _round_trip(self, commands: list[tuple]) -> list:
        """Send `commands` in one write and read every reply.

        What redis-py's Pipeline does, without its per-command bookkeeping, which cost
        a large share of a loopback round trip per event (bench/RESULTS.md, design measurements). Never retried: a command that may
        have reached Redis is not sent twice (that would count an event twice).
        """
        pool = self._redis.connection_pool
        connection = pool.get_connection()
        try:
            # hiredis packs in C, several times faster than redis-py's packer around it.
            packed = b"".join([pack_command(c) for c in commands]) if pack_command else connection.pack_commands(commands)
            connection.send_packed_command([packed])
            return [connection.read_response() for _ in commands]
        except BaseException:
            # Replies may be left unread on the socket: it must not go back into the pool as is.
            connection.disconnect()
            raise
        finally:
            pool.release(connection)

    def _enqueue(self, shards: list[int]) -> None:
        if not shards:
            return
        # The events are already in their streams; if this fails, the sweep enqueues within a second.
        try:
            with self._redis.pipeline() as pipe:
                for shard in shards:
                    enqueue_drain(self._queue, shard, pipeline=pipe)
                pipe.execute()
        except redis_lib.RedisError as exc:
            self._warn("could not enqueue a drain job (the sweep will): %s", exc)

    def _refuse(self, exc: ReadrateError) -> bool:
        self.stats.rejected += 1
        if self.strict:
            raise exc
        self._warn("event refused: %s", exc)
        return False

    def _warn(self, message: str, *args: object) -> None:
        # A page under load must not flood its log: at most one warning a second.
        now = time.monotonic()
        if now - self._last_warning_s >= 1.0:
            self._last_warning_s = now
            log.warning(message, *args)
