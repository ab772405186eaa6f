"""Send many commands in one write per Redis node and read every reply, each on its own.

Producers must tell the truth about what Redis stored, so no reply is skipped:
an error reply (out of memory, a wrong type) comes back in place as the
exception it is, beside the commands that succeeded. Nothing here retries a
command that may have run (that would count an event twice); on a Redis
Cluster only commands answered with MOVED or ASK, which did not run, are sent
again, to the node the cluster names.

What redis-py's pipelines do, without their per-command bookkeeping, which cost a
large share of a loopback round trip per event (bench/RESULTS.md, design measurements).
"""

from __future__ import annotations

from collections.abc import Sequence

from redis import Redis
from redis.cluster import RedisCluster
from redis.exceptions import AskError, MovedError, RedisClusterException, ResponseError, TryAgainError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

try:
    from hiredis import pack_command
except ImportError:  # pragma: no cover - hiredis is a dependency; redis-py packs without it
    pack_command = None

Command = Sequence[object]
# Redirections followed for one command before its MOVED reply is handed back as the failure.
MAX_REDIRECTS = 5


def send(redis: Redis, commands: Sequence[Command], *, key_index: int = 1) -> list:
    """Every command's reply, in order; error replies as exceptions. Raises only when a connection fails.

    On a cluster, a node whose connection fails gets that failure in place of its commands'
    replies while the other nodes' replies stand; it raises only when no node answered.

    `key_index` is where the key sits in each command (for routing on a cluster);
    a command without a key (MULTI, EXEC) goes with the keyed command before it.
    """
    if isinstance(redis, RedisCluster):
        return _send_cluster(redis, commands, key_index)
    return _send_one(redis, commands)


def _send_one(redis: Redis, commands: Sequence[Command]) -> list:
    pool = redis.connection_pool
    connection = pool.get_connection()
    try:
        # hiredis packs in C, several times faster than redis-py's packer around it.
        packed = b"".join([pack_command(c) for c in commands]) if pack_command else connection.pack_commands(commands)
        connection.send_packed_command([packed])
        replies = []
        for _ in commands:
            try:
                replies.append(connection.read_response())
            except ResponseError as exc:  # the reply was read whole; the next one follows on the socket
                replies.append(exc)
        return replies
    except BaseException:
        # Replies may be left unread on the socket: it must not go back into the pool as is.
        connection.disconnect()
        raise
    finally:
        pool.release(connection)


def _send_cluster(cluster: RedisCluster, commands: Sequence[Command], key_index: int) -> list:
    replies: list = [None] * len(commands)
    todo = list(range(len(commands)))
    for attempt in range(MAX_REDIRECTS + 1):
        owners = _owners(cluster, commands, key_index)
        groups: dict[str, list[int]] = {}
        for i in todo:
            groups.setdefault(owners[i], []).append(i)
        redirected = []
        failed = False
        for node_name, indexes in groups.items():
            node = cluster.get_node(node_name=node_name)
            try:
                answers = _send_one(cluster.get_redis_connection(node), [commands[i] for i in indexes])
            except (RedisConnectionError, RedisTimeoutError) as exc:
                # One node failing says nothing of the replies the others gave: its commands get the failure
                # in place (whether they ran is unknown, so they are never sent again), the others their reply.
                answers, failed = [exc] * len(indexes), True
            for i, answer in zip(indexes, answers):
                replies[i] = answer
                if isinstance(answer, (MovedError, AskError, TryAgainError)) and attempt < MAX_REDIRECTS:
                    redirected.append(i)
        if failed:
            if all(isinstance(reply, (RedisConnectionError, RedisTimeoutError)) for reply in replies):
                raise replies[0]  # no node answered: as when a standalone Redis is down
            _relearn(cluster)  # a failover may have moved the failed node's slots: route the next send anew
        if not redirected:
            return replies
        # The slot moved (resharding, a failover): learn the new map, then send what did not run again.
        cluster.nodes_manager.initialize()
        todo = _whole_transactions(commands, redirected)
    return replies


def _relearn(cluster: RedisCluster) -> None:
    try:
        cluster.nodes_manager.initialize()
    except (RedisConnectionError, RedisTimeoutError, RedisClusterException):
        pass  # no node answers now: the next send fails as this one did, and tries again


def _owners(cluster: RedisCluster, commands: Sequence[Command], key_index: int) -> list[str]:
    """The node each command goes to: its key's; MULTI goes with the command after it, EXEC with the one before."""
    owners: list[str | None] = [None] * len(commands)
    for i, command in enumerate(commands):
        # A script's first key follows its body (or SHA) and key count: EVALSHA SHA 3 KEY ….
        index = 3 if str(command[0]).upper() in ("EVAL", "EVALSHA") else key_index
        if len(command) > index:
            owners[i] = cluster.get_node_from_key(command[index]).name
    for i in range(len(commands) - 2, -1, -1):  # MULTI: the next keyed command's node
        if owners[i] is None and str(commands[i][0]).upper() == "MULTI":
            owners[i] = owners[i + 1]
    for i in range(1, len(commands)):
        if owners[i] is None:
            owners[i] = owners[i - 1]
    return owners  # type: ignore[return-value]


def _whole_transactions(commands: Sequence[Command], indexes: list[int]) -> list[int]:
    """`indexes`, widened to the whole MULTI … EXEC around any of them (a transaction is resent whole)."""
    chosen = set(indexes)
    start = None
    for i, command in enumerate(commands):
        name = str(command[0]).upper()
        if name == "MULTI":
            start = i
        elif name == "EXEC" and start is not None:
            if chosen.intersection(range(start, i + 1)):
                chosen.update(range(start, i + 1))
            start = None
    return sorted(chosen)
