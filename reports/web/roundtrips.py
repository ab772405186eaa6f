"""Concurrent requests share Redis round trips: one sender thread, one pipelined write per group.

Each write request awaits its own event's outcome, so it answers only after Redis
took (or refused) that event. While one group is on its way to Redis the next one
gathers; under load a round trip carries many requests' events, at rest it carries
one. The `Emitter` does the sending, so the collector applies the same shard layout,
installation record and counting rules as every other producer; it runs on one
thread because an Emitter is not shared between threads.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from readrate.events.emitter import Emitter
from readrate.events.model import Event

# Events per round trip at most: bounds one write's size and the wait of the requests in it.
MAX_GROUP = 500


class RoundTrips:
    """Hands events to one `Emitter` in groups; each caller gets its own event's outcome."""

    def __init__(self, emitter: Emitter) -> None:
        self.emitter = emitter
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="readrate-redis")
        self._events: list[tuple[Event, tuple, asyncio.Future]] = []
        self._drops: list[tuple[Event, str]] = []
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
        loop = asyncio.get_running_loop()
        try:
            while self._events or self._drops:
                group, self._events = self._events[:MAX_GROUP], self._events[MAX_GROUP:]
                drops, self._drops = self._drops, []
                events = [event for event, _, _ in group]
                extra = [command for _, commands, _ in group for command in commands]
                try:
                    outcomes = await loop.run_in_executor(
                        self.thread, partial(self.emitter.submit, events, interval=True, drops=drops, extra=extra))
                except Exception as exc:  # noqa: BLE001 - every waiting request must get an answer
                    outcomes = [exc] * len(group)
                self.round_trips += 1
                for (_, _, future), outcome in zip(group, outcomes):
                    if not future.done():
                        future.set_result(outcome)
        finally:
            self._sending = False

    def close(self) -> None:
        self.thread.shutdown(wait=True)
