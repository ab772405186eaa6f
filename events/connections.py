"""The one Redis connection factory: every client readrate makes comes from `redis_client`,
with one of the named timeout profiles below, so a timeout changes in one place.

Which profile a caller takes says what a slow Redis may cost it: a page hook gives
up within a fraction of a second (an event lost beats a page that hangs), a worker
waits long enough to ride out a busy server, the CLI sits between the two.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import redis as redis_lib
from redis import Redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException
from redis.retry import Retry

from .errors import ConfigError
from .urls import redact

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


@dataclass(frozen=True)
class Timeouts:
    """How long a client waits for Redis, and whether it retries a command that timed out."""

    connect_s: float
    socket_s: float
    health_check_interval_s: int = 0
    # A retried XADD whose first try landed would count an event twice: producers never retry.
    retry: bool = True


# A page hook: a dead Redis costs the page at most a fraction of a second.
PAGE = Timeouts(connect_s=0.1, socket_s=0.25, retry=False)
# The drain: long XRANGE replies, and a server that may be busy trimming.
WORKER = Timeouts(connect_s=5, socket_s=30, health_check_interval_s=30)
# The sweep and the RQ worker loop: short commands, but BLPOP waits of their own.
SWEEP = Timeouts(connect_s=5, socket_s=10)
# Operators' commands, bulk import and dead-letter replay among them: wait for a busy server, never retry.
CLI = Timeouts(connect_s=3, socket_s=30, retry=False)
# "Is there a Redis at all?": answers in half a second or counts as absent.
PROBE = Timeouts(connect_s=0.5, socket_s=0.5, retry=False)


def check_redis_url(url: str) -> str:
    """The URL if it is a Redis URL; ConfigError quoting it (password hidden) otherwise."""
    if not url.startswith(REDIS_SCHEMES):
        raise ConfigError(f"Redis URL {redact(url)!r} is not a Redis URL; accepted: redis://HOST[:PORT][/DB], "
                          "rediss://… or unix://PATH")
    return url


def redis_client(url: str, timeouts: Timeouts, *, socket_timeout_s: float | None = None) -> Redis:
    """A client for `url` with `timeouts`; ConfigError for a URL redis-py cannot read.

    `socket_timeout_s` overrides the profile's for a client that blocks on purpose
    (RQ's worker waits on BLPOP longer than any profile).
    """
    options = {
        "socket_connect_timeout": timeouts.connect_s,
        "socket_timeout": timeouts.socket_s if socket_timeout_s is None else socket_timeout_s,
        "health_check_interval": timeouts.health_check_interval_s,
    }
    if not timeouts.retry:
        options["retry"] = None
    try:
        return Redis.from_url(check_redis_url(url), **options)
    except ValueError as exc:  # redis-py's own check of the URL: a database index that is not a number, …
        raise ConfigError(f"Redis URL {redact(url)!r} cannot be used: {exc}") from None


def stream_client(url: str, timeouts: Timeouts, *, cluster: bool = False) -> Redis:
    """A client for the Redis that holds the event streams: a Redis Cluster with READRATE_REDIS_CLUSTER=1.

    A cluster client follows MOVED and ASK redirects (the command did not run, so
    following them never counts an event twice) but, for profiles that never
    retry, does not resend a command whose connection dropped.
    """
    if not cluster:
        return redis_client(url, timeouts)
    options = {
        "socket_connect_timeout": timeouts.connect_s,
        "socket_timeout": timeouts.socket_s,
        "retry": Retry(NoBackoff(), 3 if timeouts.retry else 0),
    }
    try:
        client = RedisCluster.from_url(check_redis_url(url), **options)
    except ValueError as exc:
        raise ConfigError(f"Redis URL {redact(url)!r} cannot be used: {exc}") from None
    except RedisClusterException as exc:  # the client learns the slot map now, so it needs a node that answers
        if "cluster mode is not enabled" in str(exc).lower():
            raise ConfigError(f"REDIS_URL {redact(url)!r} is not a node of a Redis Cluster (cluster mode is not "
                              "enabled there); unset READRATE_REDIS_CLUSTER to use it as a standalone Redis") from None
        raise redis_lib.ConnectionError(f"no node of the Redis Cluster at {redact(url)} answers: {exc}") from None
    # redis-py raises RedisClusterException, which is no RedisError, when no node answers while it relearns the
    # slot map (after any connection error): every outage handler in readrate catches RedisError.
    client.nodes_manager.initialize = _connection_error_when_unreachable(client.nodes_manager.initialize)
    return client


def _connection_error_when_unreachable(initialize: Callable[..., None]) -> Callable[..., None]:
    def relearn(*args, **kwargs) -> None:
        try:
            initialize(*args, **kwargs)
        except RedisClusterException as exc:
            raise redis_lib.ConnectionError(f"no node of the Redis Cluster answers: {exc}") from exc
    return relearn

