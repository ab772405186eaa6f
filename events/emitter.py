"""The page hook API: `Emitter.read()`, `Emitter.vote()`, `Emitter.emit_many()`.

One event costs one Redis round trip: the XADD and the doorbell SET NX travel in
one write. Only when the doorbell was newly set does the emitter enqueue a
drain job (a second round trip, once per shard per drain). Every reply is read:
an event is reported stored exactly when its XADD succeeded, whatever happened to
the doorbell after it. By default a Redis failure or a bad argument is logged
and counted, never raised into page code; `strict=True` raises instead.

Shards and rating scale come from the installation record (`{PREFIX}:installation`),
read at start-up and again every few seconds, so `readrate config set` reaches
running pages without a restart.

The counting rules (events/rules.py) apply to `read()`: a bot's or a prefetch's view is
dropped when the page passes `user_agent=` and `purpose=`, and with a visitor id a
repeat within the read interval is dropped by Redis in the same round trip (one script
on the shard's slot). Dropped reads are counted per reason and day. `emit_many()`
sends events as given: it is for bulk and backfill, where the rules were applied at the source.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import redis as redis_lib
from redis import Redis

from .clock import MS_PER_DAY, day_date, now_ms
from .connections import PAGE, redis_client, stream_client
from .errors import ConfigError, EmitError, InvalidEvent, ReadrateError
from .installation import InstallationMismatch, InstallationMissing, RecordWatch
from .jobs import drain_queue, enqueue_drains
from .model import Event, Read, Vote, check_time, to_ms
from .rules import REPEAT, drop_commands, read_command, screen, scripts_again
from .scale import WHOLE_STARS, RatingScale
from .settings import Settings
from .transport import send
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
    # Views a counting rule dropped (bot, prefetch, repeat, excluded): not failures.
    ignored: int = 0


# What `submit()` says of each event Redis answered for.
QUEUED = "queued"


@dataclass(frozen=True)
class Batch:
    """One round trip's commands: `events` event commands first, then a doorbell for each shard of `rung`,
    then drop counts and extra commands."""

    commands: list[tuple]
    events: int
    rung: list[int]


class PartlyStored(EmitError):
    """Raised by a strict `Emitter` when Redis took some of the events sent and refused the others."""

    def __init__(self, message: str, stored: int) -> None:
        super().__init__(message)
        self.stored = stored


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
        queue_redis: Redis | None = None,
        settings: Settings | None = None,
        read_interval_ms: int = 0,
    ) -> None:
        self._redis = redis
        # One visitor's reads of one article count once per this many ms (0: every view counts).
        self.read_interval_ms = read_interval_ms
        self.keys = keys
        self.scale = scale
        self.strict = strict
        self._queue = drain_queue(queue_redis or redis, keys) if enqueue else None
        self._clock_ms = clock_ms
        self.stats = EmitterStats()
        self._last_warning_s = 0.0
        # With settings, the layout follows the installation record; without, `keys` and `scale` are fixed.
        self._settings = settings
        self._watch = RecordWatch(redis, keys) if settings is not None else None
        self._unusable: ReadrateError | None = None
        self._adopted = None  # the record the layout was last taken from
        # Until then `_layout` has nothing to do: the record is looked at again only after it.
        self._settled_until = 0.0
        # Set while there is no client yet: a cluster client can only be built once a node answers.
        self._connect: Callable[[], Redis] | None = None

    @classmethod
    def from_settings(cls, settings: Settings, *, strict: bool = False, redis: Redis | None = None,
                      queue_redis: Redis | None = None) -> Emitter:
        """An emitter for a page: short timeouts so a dead Redis costs the page at most a fraction of a second.

        Reads the installation record now; raises InstallationMismatch if an explicit
        setting (READRATE_SHARDS, READRATE_RATING_SCALE) differs from it. If Redis does
        not answer yet, the record is read on the first event instead.
        """
        def connect() -> Redis:
            return stream_client(settings.redis_url, PAGE, cluster=settings.cluster)

        client = redis
        if client is None:
            try:
                client = connect()
            except redis_lib.RedisError:
                pass  # no node of the Redis Cluster answers: the client is built at an event once one does
        if queue_redis is None and settings.queue_url is not None:
            queue_redis = redis_client(settings.queue_redis_url, PAGE)
        emitter = cls(client, keys=settings.keys, scale=settings.rating_scale, strict=strict,
                      queue_redis=queue_redis, settings=settings, read_interval_ms=settings.read_interval_ms)
        emitter._connect = connect if client is None else None
        try:
            emitter._connected()
            emitter._follow(force=True)
        except redis_lib.RedisError:
            pass  # Redis is down at start-up: the first event tries again, and fails as any event would
        if isinstance(emitter._unusable, InstallationMismatch):
            raise emitter._unusable
        return emitter

    @property
    def redis(self) -> Redis | None:
        """The client events go through (None until a Redis Cluster node has answered)."""
        return self._redis

    def _follow(self, *, force: bool = False) -> None:
        """Take up the installation record's shards and scale (re-read at most every few seconds)."""
        watch = self._watch
        if watch is None:
            return
        record = watch.refresh() if force else watch.current()
        if record is not None and record is self._adopted:
            return  # the same record as last time: nothing to take up (the common case, per event)
        if record is None:
            self._unusable = InstallationMissing(
                f"no readrate installation at {self.keys.installation} in Redis: start a worker or run "
                "`readrate db upgrade` once, which create it")
            return
        try:
            adopted = self._settings.adopt(record)
        except InstallationMismatch as exc:
            self._unusable = exc
            return
        self._unusable = None
        self._adopted = record
        self.keys, self.scale = adopted.keys, adopted.rating_scale

    # -- the page hook calls -------------------------------------------------

    def read(self, article_id: str, visitor: str | None = None, at: object = None, *,
             user_agent: str | None = None, purpose: str | None = None, method: str = "GET") -> bool:
        """Record that `article_id` was read; True if Redis took the event as a counted read.

        Pass the request's `user_agent` (and its Sec-Purpose or Purpose header as `purpose`, its
        `method`) to have bots, headless browsers, prefetches and HEAD requests ignored; pass
        `visitor` to have one visitor's repeat views within the read interval ignored. An
        ignored view returns False and is counted as dropped, with its reason.
        """
        try:
            event = self.make_read(article_id, visitor, at)
        except InvalidEvent as exc:
            return self._refuse(exc)
        reason = screen(user_agent, purpose=purpose, method=method)
        if reason is not None:
            self.stats.ignored += 1
            self.submit([], drops=[(event, reason)])
            return False
        return self._send([event], interval=True)

    def vote(self, article_id: str, rating: object, voter: str, at: object = None) -> bool:
        """Record that `voter` rated `article_id`; True if Redis took the event."""
        try:
            event = self.make_vote(article_id, rating, voter, at)
        except InvalidEvent as exc:
            return self._refuse(exc)
        return self._send([event])

    def emit_many(self, events: Iterable[Event]) -> int:
        """Send many events in pipelined chunks; returns how many Redis took (strict: raises at the first
        chunk Redis did not take whole; `PartlyStored.stored` says how many of that chunk it did take)."""
        sent = 0
        chunk: list[Event] = []
        for event in events:
            try:
                chunk.append(self._recheck(event))
            except InvalidEvent as exc:
                self._refuse(exc)
                continue
            if len(chunk) >= EVENTS_PER_ROUND_TRIP:
                sent += self._send_counted(chunk)
                chunk = []
        if chunk:
            sent += self._send_counted(chunk)
        return sent

    # -- building events -----------------------------------------------------

    def make_read(self, article_id: str, visitor: str | None = None, at: object = None) -> Read:
        """A checked read event (raises InvalidEvent)."""
        now = self._clock_ms()
        return Read(article_id, check_time(to_ms(at, now), now), visitor)

    def make_vote(self, article_id: str, rating: object, voter: str, at: object = None) -> Vote:
        """A checked vote event (raises InvalidEvent)."""
        self._layout()
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

    def _connected(self) -> None:
        """Build the client now if there was none (raises a RedisError while no node answers)."""
        if self._connect is not None:
            self._redis = self._connect()
            self._connect = None
            if self._watch is not None:
                self._watch.redis = self._redis

    def _layout(self) -> None:
        """Follow the record; a Redis error here only means the last known layout is kept."""
        if time.monotonic() < self._settled_until:
            return  # the per-event path: connected, and the record was looked at less than refresh_s ago
        try:
            self._connected()
            self._follow()
        except (redis_lib.RedisError, OSError, ReadrateError) as exc:
            if self._watch is not None and self._watch.record is None:
                self._unusable = exc
        watch = self._watch
        if watch is None:
            self._settled_until = float("inf") if self._connect is None else 0.0
        elif self._unusable is None and self._connect is None and watch.record is self._adopted:
            self._settled_until = time.monotonic() + watch.refresh_s
        else:
            self._settled_until = 0.0

    def _send(self, events: list[Event], *, interval: bool = False) -> bool:
        """Send `events`; True if Redis stored every one of them. Counts what it stored in the stats."""
        return self._send_counted(events, interval=interval) == len(events)

    def _send_counted(self, events: list[Event], *, interval: bool = False) -> int:
        """Send `events` in one round trip; how many Redis stored (strict: raises unless all were)."""
        outcomes = self.submit(events, interval=interval)
        refused = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        stored = outcomes.count(QUEUED)
        self.stats.ignored += len(events) - stored - len(refused)
        if refused:
            return self._failed(events, stored, refused[0], refused=len(refused))
        self.stats.emitted += stored
        return stored

    def submit(self, events: list[Event], *, interval: bool = True,
               drops: list[tuple[Event, str]] = (), extra: list[tuple] = ()) -> list[object]:
        """Send `events` (and count `drops`, events a rule dropped, with their reasons) in one round trip.

        Per event: QUEUED when Redis stored it, REPEAT when the read-interval rule dropped it
        (`interval=True`; reads with a visitor only), or the exception saying why it was not stored
        (a failed connection gives every event that exception). Never raises; touches no stats.
        `extra` commands (keyed, e.g. a voter's own-rating mark) travel last, and what they answer is ignored.
        """
        self._layout()
        if self._unusable is not None:
            return [self._unusable] * len(events)
        batch = self.prepare(events, interval=interval, drops=drops, extra=extra)
        try:
            replies = self._with_scripts(batch.commands, send(self._redis, batch.commands))
        except Exception as exc:  # a page must never break because analytics did
            # The connection failed before every reply was read: nothing can be said of these events.
            return [exc] * len(events)
        outcomes, rung = self.conclude(batch, replies)
        self.enqueue(rung)
        return outcomes

    # -- the steps of submit(), for a caller that does the I/O itself (the collector, on its event loop) --

    @property
    def unusable(self) -> BaseException | None:
        """Why the emitter cannot send now (no installation record, a mismatch), or None."""
        return self._unusable

    @property
    def layout_due(self) -> bool:
        """True when the installation record should be looked at again (`refresh_layout`) before sending."""
        return time.monotonic() >= self._settled_until

    def refresh_layout(self) -> ReadrateError | BaseException | None:
        """Follow the installation record now (may talk to Redis); what makes the emitter unusable, if anything."""
        self._layout()
        return self._unusable

    def prepare(self, events: list[Event], *, interval: bool = True, drops: list[tuple[Event, str]] = (),
                extra: list[tuple] = ()) -> Batch:
        """The commands of one round trip, in the current layout (no I/O): the events', then doorbells,
        drop counts and `extra`."""
        keys = self.keys
        interval_ms = self.read_interval_ms if interval else 0
        commands = []
        shards = set()
        for event in events:
            shard = keys.shard_of(event.article_id)
            shards.add(shard)
            if isinstance(event, Read):
                commands.append(read_command(keys, shard, event, interval_ms))
            else:
                commands.append(("XADD", keys.stream(shard), "*", *encode_flat(event)))
        rung = sorted(shards)
        commands.extend(("SET", keys.doorbell(shard), "1", "NX", "PX", DOORBELL_TTL_MS) for shard in rung)
        for event, reason in drops:
            commands.extend(drop_commands(keys, keys.shard_of(event.article_id), reason,
                                          day_date(event.at_ms // MS_PER_DAY)))
        commands.extend(extra)
        return Batch(commands, len(events), rung)

    def conclude(self, batch: Batch, replies: list) -> tuple[list[object], list[int]]:
        """(each event's outcome, the shards whose doorbell was newly rung) from a batch's replies."""
        events = batch.events
        # A doorbell that could not be rung (Redis full) is rung by the sweep.
        rung = [shard for shard, reply in zip(batch.rung, replies[events:]) if reply and not isinstance(reply, Exception)]
        outcomes = [reply if isinstance(reply, Exception) else QUEUED if reply is not None else REPEAT
                    for reply in replies[:events]]
        return outcomes, rung

    def enqueue(self, shards: list[int]) -> None:
        """Enqueue a drain job for each shard whose doorbell was newly rung (a blocking call to the queue Redis)."""
        if self._queue is not None and shards:
            self._enqueue(shards)

    def _with_scripts(self, commands: list[tuple], replies: list) -> list:
        """Replies with every NOSCRIPT answered again by EVAL (see `scripts_again`)."""
        again = scripts_again(commands, replies)
        if again:
            for i, reply in zip(again, send(self._redis, list(again.values()))):
                replies[i] = reply
        return replies

    def _failed(self, events: list[Event], stored: int, exc: BaseException, *, refused: int | None = None) -> int:
        self.stats.emitted += stored
        self.stats.failed += len(events) - stored if refused is None else refused
        said = (f"Redis took only {stored} of {len(events)} event(s): {exc}" if stored else
                f"Redis did not take {len(events)} event(s): {exc}")
        if self.strict:
            if isinstance(exc, ConfigError):
                raise exc
            if isinstance(exc, (redis_lib.RedisError, OSError, ReadrateError)):
                if stored:
                    raise PartlyStored(said, stored) from exc
                raise EmitError(said) from exc
            raise exc
        self._warn("%s; dropped by this page", said)
        return stored

    def _enqueue(self, shards: list[int]) -> None:
        try:
            enqueue_drains(self._queue, shards)
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
