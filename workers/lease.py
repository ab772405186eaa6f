"""A per-shard lease in Redis, so two workers do not waste work draining one shard.

Correctness never rests on the lease — the offset compare-and-set guards every
batch — but it keeps the second worker from doing a batch only to roll it back.
The token is the drain job's id, so an RQ retry of the same job finds its own lease.
"""

from __future__ import annotations

from redis import Redis

# Flagged allow-oom (Redis >= 7): a drain frees memory, so it must be able to lease its shard when Redis is
# full (`maxmemory` with `noeviction` refuses every other command that may grow memory).
_EXTEND = """#!lua flags=allow-oom
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_ACQUIRE = """#!lua flags=allow-oom
local held = redis.call('GET', KEYS[1])
if held == false or held == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
_RELEASE = """#!lua flags=allow-oom
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class Lease:
    """One holder's claim on one key, for `ttl_ms` at a time."""

    def __init__(self, redis: Redis, key: str, token: str, ttl_ms: int) -> None:
        self.key = key
        self.token = token
        self.ttl_ms = ttl_ms
        self._acquire = redis.register_script(_ACQUIRE)
        self._extend = redis.register_script(_EXTEND)
        self._release = redis.register_script(_RELEASE)

    def acquire(self) -> bool:
        """Take the lease if it is free or already ours."""
        return bool(self._acquire(keys=[self.key], args=[self.token, self.ttl_ms]))

    def extend(self, ttl_ms: int | None = None) -> bool:
        """Keep the lease for another `ttl_ms`; False if it expired and someone else took it."""
        return bool(self._extend(keys=[self.key], args=[self.token, ttl_ms or self.ttl_ms]))

    def release(self) -> None:
        self._release(keys=[self.key], args=[self.token])
