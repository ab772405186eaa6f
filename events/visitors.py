"""Visitors as the collector sees them: a hash of address and user agent under a salt that rotates daily.

"One visitor's reads count once per interval" needs a visitor id, and a raw address
must never be stored. The collector derives `d1-…` ids with a keyed BLAKE2b over the
client address and user agent; the key is a random salt of the UTC day, shared by every
collector process through Redis (`{PREFIX}:salt:YYYY-MM-DD`, created once with SET NX and
expired two days later). The salt never travels with the events, so once it is gone
nobody can tell which address a stored id came from, and ids of one day cannot be
linked to the next.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from datetime import date

from redis import Redis

from .privacy import canonical_ip

ID_PREFIX = "d1-"
SALT_BYTES = 32
# The salt outlives its day by one: a request at 23:59:59 still finds it when it is answered.
SALT_TTL_S = 2 * 86_400


def salt_key(prefix: str, day: date) -> str:
    return f"{{{prefix}}}:salt:{day.isoformat()}"


def visitor_id(salt: bytes, address: str, user_agent: str | None) -> str:
    """The day's id for one client: 25 characters, the same for the same address and agent under one salt."""
    message = f"{canonical_ip(address)}\n{(user_agent or '').strip()}".encode("utf-8", "surrogatepass")
    digest = hashlib.blake2b(message, key=salt, digest_size=16).digest()
    return ID_PREFIX + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class DailySalt:
    """The current day's salt, fetched from Redis once per day and per process."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self._day: date | None = None
        self._salt = b""

    def for_day(self, day: date) -> bytes:
        """The salt of `day`; raises a RedisError when Redis cannot be asked for a new day's salt."""
        if day != self._day:
            key = salt_key(self.prefix, day)
            self.redis.set(key, secrets.token_bytes(SALT_BYTES), nx=True, ex=SALT_TTL_S)
            salt = self.redis.get(key)
            if not salt:  # expired between the two commands: only possible for a day long past
                salt = secrets.token_bytes(SALT_BYTES)
            self._day, self._salt = day, salt
        return self._salt
