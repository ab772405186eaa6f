"""readrate's producer side: event types, wire format v2, the page hook `Emitter`, bulk import.

A page hook needs only this package and Redis:

    from readrate.events import Emitter, Settings
    emitter = Emitter.from_settings(Settings.from_env())
    emitter.read("article-42", visitor="v-1")
"""

from .emitter import Emitter, EmitterStats
from .errors import (
    ConfigError,
    DatabaseUnavailable,
    EmitError,
    InvalidEvent,
    ReadrateError,
    RedisUnavailable,
    UnreachableError,
)
from .model import Event, Read, Vote
from .scale import RatingScale
from .settings import Settings
from .wire import Keys, shard_for

__all__ = [
    "ConfigError",
    "DatabaseUnavailable",
    "EmitError",
    "Emitter",
    "EmitterStats",
    "Event",
    "InvalidEvent",
    "Keys",
    "RatingScale",
    "Read",
    "ReadrateError",
    "RedisUnavailable",
    "Settings",
    "UnreachableError",
    "Vote",
    "shard_for",
]
