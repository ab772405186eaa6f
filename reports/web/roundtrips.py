"""Concurrent requests share Redis round trips: one pipelined write per group.

Each write request awaits its own event's outcome, so it answers only after Redis
took (or refused) that event. While one group is on its way to Redis the next one
gathers; under load a round trip carries many requests' events, at rest it carries
one. The `Emitter` builds and reads each round trip, so the collector applies the same
shard layout, installation record and counting rules as every other producer; the I/O
runs on the event loop (`AsyncPipe`) on a standalone Redis, or on one thread (an Emitter
is not shared between threads) on a Redis Cluster.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from readrate.events.emitter import Emitter
from readrate.events.model import Event
from readrate.events.rules import scripts_again

from .pipe import AsyncPipe

# Events per round trip at most: bounds one write's size and the wait of the requests in it.
MAX_GROUP = 500


class RoundTrips:
    """Hands events to one `Emitter` in groups; each caller gets its own event's outcome."""

    def __init__(self, emitter: Emitter, pipe: AsyncPipe | None = None) -> None:
        self.emitter = emitter
        # With a pipe (a standalone Redis) the events go out from the event loop; without, from the thread.
        self.pipe = pipe
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="readrate-redis")
        self._events: list[tuple[Event, tuple, asyncio.Future]] = []
        self._drops: list[tuple[Event, str]] = []
        # One round trip at a time: measured, several in flight on their own connections made each
        # slower and the groups smaller, for less throughput and no better latency (bench/RESULTS.md).
        self._sending = False
        self.round_trips = 0

    async def send(self, event: Event, extra: tuple = ()) -> object:
        """QUEUED, REPEAT, or the exception that says why Redis did not store `event`.

        `extra` commands travel in the same round trip, after the events (see `Emitter.submit`).
        """
        future = asyncio.get_running_loop().create_future()
        self._events.append((event, extra, future))
        self._start()
        return await future

    def count_drop(self, event: Event, reason: str) -> None:
        """Count `event` as dropped for `reason` with the next round trip (nobody waits for it)."""
        self._drops.append((event, reason))
        self._start()

    async def call(self, function, *args):
        """Run a blocking call that uses the emitter's Redis on the sender thread."""
        return await asyncio.get_running_loop().run_in_executor(self.thread, function, *args)

    def _start(self) -> None:
        if not self._sending:
            self._sending = True
            asyncio.get_running_loop().create_task(self._send_all())

    async def _send_all(self) -> None:
        try:
            while self._events or self._drops:
                group, self._events = self._events[:MAX_GROUP], self._events[MAX_GROUP:]
                drops, self._drops = self._drops, []
                events = [event for event, _, _ in group]
                extra = [command for _, commands, _ in group for command in commands]
                try:
                    outcomes = await self._round_trip(events, drops, extra)
                except Exception as exc:  # noqa: BLE001 - every waiting request must get an answer
                    outcomes = [exc] * len(group)
                self.round_trips += 1
                for (_, _, future), outcome in zip(group, outcomes):
                    if not future.done():
                        future.set_result(outcome)
        finally:
            self._sending = False

    async def _round_trip(self, events: list[Event], drops: list, extra: list) -> list[object]:
        emitter = self.emitter
        if self.pipe is None:
            return await self.call(partial(emitter.submit, events, interval=True, drops=drops, extra=extra))
        # Emitter.submit's steps, with the I/O on the loop; only a look at the installation record (every
        # few seconds) and enqueueing a drain job (once per doorbell) block, so they go to the thread.
        unusable = await self.call(emitter.refresh_layout) if emitter.layout_due else emitter.unusable
        if unusable is not None:
            return [unusable] * len(events)
        batch = emitter.prepare(events, interval=True, drops=drops, extra=extra)
        try:
            replies = await self.pipe.send(batch.commands)
            again = scripts_again(batch.commands, replies)
            if again:
                for i, reply in zip(again, await self.pipe.send(list(again.values()))):
                    replies[i] = reply
        except Exception as exc:  # noqa: BLE001 - the connection failed: nothing can be said of these events
            return [exc] * len(events)
        outcomes, rung = emitter.conclude(batch, replies)
        if rung:
            asyncio.get_running_loop().run_in_executor(self.thread, emitter.enqueue, rung)
        return outcomes

    def close(self) -> None:
        self.thread.shutdown(wait=True)
