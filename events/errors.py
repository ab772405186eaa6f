"""The exceptions readrate raises on purpose, under one root.

Callers catch `ReadrateError` to handle anything readrate refuses; the CLI maps
the subclasses to its exit codes (see reports/cli.py).
"""


class ReadrateError(Exception):
    """Raised for any failure readrate detects and can explain; the root of all others."""


class ConfigError(ReadrateError):
    """Raised when a setting (environment variable or CLI option) has a value readrate cannot use."""


class InvalidEvent(ReadrateError, ValueError):
    """Raised when an event breaks the event contract; the message quotes the value and the rule."""


class UnreachableError(ReadrateError):
    """Raised when a server readrate needs (Redis or the database) does not answer."""


class RedisUnavailable(UnreachableError):
    """Raised when Redis refuses or drops the connection, or does not answer in time."""


class DatabaseUnavailable(UnreachableError):
    """Raised when the SQL database refuses or drops the connection, or is locked past the timeout."""


class EmitError(RedisUnavailable):
    """Raised by a strict `Emitter` when Redis did not take an event."""
