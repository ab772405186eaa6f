"""Settings, read once at start-up from the environment (and CLI options) and handed down.

Nothing in readrate reads the environment at import time; `Settings.from_env()`
is called by the CLI, the worker and the demo, then passed to what they build.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from .connections import check_redis_url
from .errors import ConfigError
from .scale import RatingScale, WHOLE_STARS
from .wire import Keys

DEFAULT_REDIS_URL = "redis://localhost:6379/0"
DEFAULT_DATABASE_URL = "sqlite:///readrate.db"


@dataclass(frozen=True)
class Settings:
    """Everything one readrate installation is configured by."""

    redis_url: str = DEFAULT_REDIS_URL
    database_url: str = DEFAULT_DATABASE_URL
    shards: int = 4
    prefix: str = "readrate"
    rating_scale: RatingScale = field(default=WHOLE_STARS)
    # Larger than DESIGN.md's 5,000: fewer rows per event and fewer commits (bench/RESULTS.md),
    # and one batch's XRANGE still costs Redis only a few milliseconds.
    batch_size: int = 20_000
    lease_ms: int = 10_000
    sweep_interval_ms: int = 500

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
            "batch_size": _env_int(env, "READRATE_BATCH_SIZE", 20_000, low=1, high=1_000_000),
            "lease_ms": _env_int(env, "READRATE_LEASE_MS", 10_000, low=100, high=3_600_000),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        if isinstance(values["rating_scale"], str):
            values["rating_scale"] = RatingScale.parse(values["rating_scale"])
        settings = cls(**values)  # type: ignore[arg-type]
        if not settings.prefix or any(c in settings.prefix for c in " {}\n"):
            raise ConfigError(f"prefix {settings.prefix!r} must be non-empty, without spaces or braces")
        # redis-py would raise a bare ValueError later, far from the setting that caused it.
        check_redis_url(settings.redis_url)
        return settings

    @property
    def keys(self) -> Keys:
        return Keys(self.prefix, self.shards)


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
