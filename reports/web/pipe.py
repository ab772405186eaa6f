"""The collector's connection to a standalone Redis, on its event loop: a group's commands in one write.

The same exchange as events/transport.py's `send()` (one packed write, every reply read,
an error reply kept in place as the exception it is), without a thread: handing each
round trip to a thread and back cost more than the round trip itself, in CPU and in
wake-ups (bench/RESULTS.md, scenario 9). A Redis Cluster keeps the threaded path.
"""

from __future__ import annotations

from collections.abc import Sequence

from hiredis import pack_command
from readrate.events.connections import Timeouts
from redis.asyncio import ConnectionPool
from redis.exceptions import ResponseError


class AsyncPipe:
    """One connection at a time to the Redis at `url`, used by one coroutine at a time."""

    def __init__(self, url: str, timeouts: Timeouts) -> None:
        self._pool = ConnectionPool.from_url(url, socket_connect_timeout=timeouts.connect_s,
                                             socket_timeout=timeouts.socket_s, max_connections=4)

    async def send(self, commands: Sequence[Sequence[object]]) -> list:
        """Every command's reply, in order; error replies as exceptions. Raises only when the connection fails
        (then nothing can be said of which commands ran)."""
        connection = await self._pool.get_connection()
        try:
            await connection.send_packed_command(b"".join([pack_command(c) for c in commands]), check_health=False)
            replies = []
            for _ in commands:
                try:
                    replies.append(await connection.read_response())
                except ResponseError as exc:  # read whole; the next reply follows on the socket
                    replies.append(exc)
            return replies
        except BaseException:
            await connection.disconnect()  # replies may be left unread: the connection cannot be reused
            raise
        finally:
            await self._pool.release(connection)

    async def close(self) -> None:
        await self._pool.disconnect()
