"""The installation record as producers read it: the hash `{PREFIX}:installation` (a contract).

One installation is one key prefix, one database and one set of settings
(DESIGN.md, "The installation"). The database holds the record; workers and the
CLI publish it to Redis, where every producer reads it: a page `Emitter`, a PHP
page (`HGET {readrate}:installation shards`), the collector. Environment
variables only seed a new installation; afterwards a process whose explicit
setting disagrees with the record refuses to run (`Settings.adopt`).

The record's parsing is pure; `read_record` and `publish` are the only Redis calls.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from redis import Redis

from .errors import ConfigError
from .scale import RatingScale
from .wire import WIRE_VERSION, Keys

FIELDS = ("id", "shards", "max_shards", "rating_scale", "wire")
MAX_SHARDS = 1024
# How often a long-lived producer looks at the record again, so a `config set shards` reaches it.
REFRESH_S = 2.0


class InstallationMismatch(ConfigError):
    """Raised when a setting, a database or a Redis record belongs to another installation than this one."""


class InstallationMissing(ConfigError):
    """Raised when a producer finds no installation record in Redis (no worker or `db upgrade` has run)."""


@dataclass(frozen=True)
class Installation:
    """One installation's record: its id, shard counts, rating scale and wire version."""

    id: str
    shards: int
    max_shards: int
    rating_scale: RatingScale
    wire: int = WIRE_VERSION

    def as_hash(self) -> dict[str, str]:
        """The fields of `{PREFIX}:installation`, all strings."""
        return {"id": self.id, "shards": str(self.shards), "max_shards": str(self.max_shards),
                "rating_scale": str(self.rating_scale), "wire": str(self.wire)}

    @classmethod
    def from_hash(cls, fields: dict, where: str) -> Installation:
        """A record from HGETALL's reply (bytes or text); ConfigError naming `where` if a field is bad."""
        text = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
                for k, v in fields.items()}
        missing = [name for name in FIELDS if not text.get(name)]
        if missing:
            raise ConfigError(f"the installation record {where} lacks {', '.join(missing)}; "
                              "run `readrate db upgrade` to publish it again")
        try:
            shards, max_shards, wire = int(text["shards"]), int(text["max_shards"]), int(text["wire"])
        except ValueError:
            raise ConfigError(f"the installation record {where} has a shard count or wire version that is "
                              f"not a number: {text}") from None
        if not 1 <= shards <= max_shards <= MAX_SHARDS:
            raise ConfigError(f"the installation record {where} says shards={shards}, max_shards={max_shards}; "
                              f"accepted: 1 <= shards <= max_shards <= {MAX_SHARDS}")
        if wire != WIRE_VERSION:
            raise ConfigError(f"the installation record {where} is wire format {wire}; this readrate speaks "
                              f"wire format {WIRE_VERSION} only")
        return cls(text["id"], shards, max_shards, RatingScale.parse(text["rating_scale"]), wire)

    def keys(self, prefix: str) -> Keys:
        return Keys(prefix, self.shards, self.max_shards)

    def describe(self) -> str:
        """The record in words, for messages: `installation 3f2a… (4 shards, rating scale 1-5)`."""
        wider = f", {self.max_shards} drained" if self.max_shards > self.shards else ""
        return f"installation {self.id} ({self.shards} shards{wider}, rating scale {self.rating_scale})"


def read_record(redis: Redis, keys: Keys) -> Installation | None:
    """The record published under `keys.installation`, or None when there is none."""
    fields = redis.hgetall(keys.installation)
    return Installation.from_hash(fields, f"in Redis ({keys.installation})") if fields else None


# Publish only when there is no record, or the record is this installation's: another installation's
# record is never overwritten (the caller sees its id and refuses). Flagged allow-oom: publishing the
# record is what lets workers start, and they must start to free memory when Redis is full.
_PUBLISH = """#!lua flags=allow-oom
local held = redis.call('HGET', KEYS[1], 'id')
if held == false or held == ARGV[1] then
  redis.call('HSET', KEYS[1], unpack(ARGV, 2))
  return ARGV[1]
end
return held
"""


def publish(redis: Redis, keys: Keys, record: Installation) -> str:
    """Publish `record` unless another installation's is there; the id the hash holds afterwards."""
    flat = [item for pair in record.as_hash().items() for item in pair]
    held = redis.eval(_PUBLISH, 1, keys.installation, record.id, *flat)
    return held.decode() if isinstance(held, bytes) else held


class RecordWatch:
    """The record as a long-lived process sees it: read again at most every `refresh_s`.

    A `config set shards N` reaches every producer and worker within `refresh_s`,
    without a read per event. `current()` may raise what `read_record` raises.
    """

    def __init__(self, redis: Redis, keys: Keys, *, refresh_s: float = REFRESH_S,
                 record: Installation | None = None) -> None:
        self.redis = redis
        self._keys = keys
        self.refresh_s = refresh_s
        self.record = record
        # True when the last read found no record in Redis (restarted without persistence, or deleted).
        self.missing = False
        self._read_at = time.monotonic() if record is not None else float("-inf")

    def current(self) -> Installation | None:
        """The record, read again when the last read is older than `refresh_s` (every time while none is known)."""
        if self.record is None or time.monotonic() - self._read_at >= self.refresh_s:
            self.refresh()
        return self.record

    def refresh(self) -> Installation | None:
        """Read the record now. Keeps the last good one if Redis fails (and raises)."""
        self._read_at = time.monotonic()
        found = read_record(self.redis, self._keys)
        self.missing = found is None
        if found is not None:
            if self.record is not None and found.id != self.record.id:
                raise InstallationMismatch(
                    f"the installation record in Redis ({self._keys.installation}) changed from installation "
                    f"{self.record.id} to {found.id}; restart this process")
            if found != self.record:  # an unchanged record stays the same object: followers skip it cheaply
                self.record = found
        return self.record
