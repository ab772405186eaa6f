"""Settings, read once at start-up from the environment (and CLI options) and handed down.

Nothing in readrate reads the environment at import time; `Settings.from_env()`
is called by the CLI, the worker and the demo, then passed to what they build.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from .connections import check_redis_url
from .errors import ConfigError
from .installation import Installation, InstallationMismatch
from .rules import DEFAULT_READ_INTERVAL_MS, parse_interval
from .scale import RatingScale, WHOLE_STARS
from .wire import Keys

DEFAULT_REDIS_URL = "redis://localhost:6379/0"
DEFAULT_DATABASE_URL = "sqlite:///readrate.db"


@dataclass(frozen=True)
class Settings:
    """Everything one readrate installation is configured by."""

    redis_url: str = DEFAULT_REDIS_URL
    database_url: str = DEFAULT_DATABASE_URL
    # Until `adopt()`, shards and scale are seeds: what a new installation starts with.
    shards: int = 4
    prefix: str = "readrate"
    rating_scale: RatingScale = field(default=WHOLE_STARS)
    # The queue Redis (RQ's keys); None: the same Redis as the streams.
    queue_url: str | None = None
    # True: REDIS_URL is a node of a Redis Cluster, which holds the streams (the queue cannot live there).
    cluster: bool = False
    # Which of shards/rating_scale the environment or an option set: those must match the record.
    explicit: frozenset[str] = frozenset()
    # Set by adopt(): the installation these settings belong to, and the shards workers drain.
    installation_id: str | None = None
    max_shards: int = 0
    # Larger than DESIGN.md's 5,000: fewer rows per event and fewer commits (bench/RESULTS.md),
    # and one batch's XRANGE still costs Redis only a few milliseconds.
    batch_size: int = 20_000
    lease_ms: int = 10_000
    sweep_interval_ms: int = 500
    # One visitor's reads of one article count once per this many ms (READRATE_READ_INTERVAL; 0: every view).
    read_interval_ms: int = DEFAULT_READ_INTERVAL_MS
    # READRATE_ARCHIVE: the folder every counted event is archived to, as Parquet (None: no archive).
    archive: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Build settings from `env` (default: os.environ); keyword overrides win (CLI options)."""
        env = os.environ if env is None else env
        values: dict[str, object] = {
            "redis_url": _env_text(env, "REDIS_URL", DEFAULT_REDIS_URL),
            "database_url": _env_text(env, "DATABASE_URL", DEFAULT_DATABASE_URL),
            "shards": _env_int(env, "READRATE_SHARDS", 4, low=1, high=1024),
            "prefix": _env_text(env, "READRATE_PREFIX", "readrate"),
            "rating_scale": RatingScale.parse(_env_text(env, "READRATE_RATING_SCALE", "1-5")),
            "queue_url": env.get("READRATE_QUEUE_URL") or None,
            "cluster": env_flag(env, "READRATE_REDIS_CLUSTER"),
            "batch_size": _env_int(env, "READRATE_BATCH_SIZE", 20_000, low=1, high=1_000_000),
            "lease_ms": _env_int(env, "READRATE_LEASE_MS", 10_000, low=100, high=3_600_000),
            "read_interval_ms": parse_interval(env.get("READRATE_READ_INTERVAL") or "30m"),
            "archive": env.get("READRATE_ARCHIVE") or None,
        }
        given = {k for k, v in overrides.items() if v is not None}
        explicit = {name for name, var in _SEEDS.items() if env.get(var) or name in given}
        values.update({k: v for k, v in overrides.items() if v is not None})
        if isinstance(values["rating_scale"], str):
            values["rating_scale"] = RatingScale.parse(values["rating_scale"])
        values["explicit"] = frozenset(explicit) | frozenset(values.get("explicit") or ())
        settings = cls(**values)  # type: ignore[arg-type]
        if not settings.prefix or any(c in settings.prefix for c in " {}\n"):
            raise ConfigError(f"prefix {settings.prefix!r} must be non-empty, without spaces or braces")
        # redis-py would raise a bare ValueError later, far from the setting that caused it.
        check_redis_url(settings.redis_url)
        if settings.queue_url is not None:
            check_redis_url(settings.queue_url)
        if settings.cluster and settings.queue_url is None:
            raise ConfigError("READRATE_REDIS_CLUSTER=1 needs READRATE_QUEUE_URL: RQ's queue cannot live on a "
                              "Redis Cluster, so give it a standalone Redis (e.g. redis://queue-host:6379/0)")
        return settings

    @property
    def keys(self) -> Keys:
        return Keys(self.prefix, self.shards, self.max_shards)

    @property
    def queue_redis_url(self) -> str:
        """Where RQ's queue lives: READRATE_QUEUE_URL, or REDIS_URL."""
        return self.queue_url or self.redis_url

    def seed(self, installation_id: str) -> Installation:
        """A new installation's record, seeded from these settings."""
        return Installation(installation_id, self.shards, self.shards, self.rating_scale)

    def adopt(self, record: Installation) -> Settings:
        """These settings with the record's shards and scale; InstallationMismatch if an explicit one differs."""
        differ = []
        if "shards" in self.explicit and self.shards != record.shards:
            differ.append(f"READRATE_SHARDS (or --shards) is {self.shards} but the installation has "
                          f"{record.shards} shards")
        if "rating_scale" in self.explicit and self.rating_scale != record.rating_scale:
            differ.append(f"READRATE_RATING_SCALE (or --rating-scale) is {self.rating_scale} but the installation's "
                          f"rating scale is {record.rating_scale}")
        if differ:
            raise InstallationMismatch(
                f"{'; '.join(differ)} (installation {record.id}, prefix {self.prefix!r}). These settings only "
                "seed a new installation: unset them to follow the installation, or change the installation "
                "with `readrate config set shards N` / `readrate config set rating-scale SCALE`")
        return replace(self, shards=record.shards, max_shards=record.max_shards, rating_scale=record.rating_scale,
                       installation_id=record.id)


_SEEDS = {"shards": "READRATE_SHARDS", "rating_scale": "READRATE_RATING_SCALE"}


def env_flag(env: Mapping[str, str], name: str) -> bool:
    """A yes/no variable (1/0, true/false, yes/no, on/off; empty or unset: no); ConfigError otherwise."""
    raw = (env.get(name) or "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(f"{name}={raw!r} is not a yes/no value; accepted: 1, 0, true, false, yes, no")


def _env_text(env: Mapping[str, str], name: str, default: str) -> str:
    # Set but empty means the default, as for the numbers below and for click's envvar options.
    return env.get(name) or default


def _env_int(env: Mapping[str, str], name: str, default: int, *, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer; accepted: {low}-{high}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}={raw!r} is out of range; accepted: {low}-{high}")
    return value
