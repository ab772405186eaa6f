"""Database engines and migrations: one place that knows SQLite from PostgreSQL.

SQLite runs in WAL mode with full sync (a committed batch survives power loss,
because its events are trimmed from Redis right after) and a busy timeout, and
write transactions start with BEGIN IMMEDIATE so two workers never deadlock on
a lock upgrade. PostgreSQL URLs are pointed at psycopg 3.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, InterfaceError, OperationalError

from readrate.events.errors import ConfigError, DatabaseUnavailable, ReadrateError
from readrate.events.urls import redact

MIGRATIONS = Path(__file__).with_name("migrations")
# Seconds a writer waits for SQLite's lock (another worker's batch) before giving up.
SQLITE_BUSY_TIMEOUT_S = 30
PG_CONNECT_TIMEOUT_S = 5
# Any constant works: it only has to be the same in every readrate process.
_PG_MIGRATION_LOCK = 0x7265616472617465


def normalize_url(url: str) -> str:
    """Point `postgres://` and `postgresql://` at psycopg 3, the driver readrate installs."""
    for plain in ("postgres://", "postgresql://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url[len(plain):]
    return url


def _parse(url: str):
    try:
        parsed = make_url(normalize_url(url))
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise ConfigError(
            f"database URL {redact(url)!r} is not a URL; e.g. sqlite:///readrate.db or postgresql://user@host/db"
        ) from None
    if parsed.host and "@" in parsed.host:
        # SQLAlchemy ends the password at its first "@", the rest would be shown as part of the host name.
        raise ConfigError(f"database URL {redact(url)!r} has an '@' in its user name or password; write it "
                          "percent-encoded, as %40")
    if parsed.get_backend_name() == "sqlite" and parsed.host:
        # sqlite://rr.db reads as host "rr.db" and no file: SQLAlchemy would open an empty in-memory database.
        raise ConfigError(f"database URL {redact(url)!r} names no file; accepted: sqlite:///FILE (three "
                          f"slashes, e.g. sqlite:///{parsed.host}) or sqlite:////ABSOLUTE/PATH")
    return parsed


def sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names (None for other databases and in-memory SQLite)."""
    parsed = _parse(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).expanduser()


def make_engine(url: str, *, create: bool = False, echo: bool = False) -> Engine:
    """An engine for `url`, configured for readrate's workload; raises ConfigError for a bad URL.

    Only with `create` may a SQLite file (and its folder) be made: a read-only
    command on a mistyped path must say that no database is there, not create one.
    """
    parsed = _parse(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        path = sqlite_file(url)
        if path is not None and create:
            path.parent.mkdir(parents=True, exist_ok=True)
        elif path is not None and not path.exists():
            raise DatabaseMissing(f"no database at {str(path)!r}: the file does not exist; check DATABASE_URL, "
                                  "or create it with `readrate db upgrade`")
        engine = create_engine(parsed, echo=echo, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})
        _configure_sqlite(engine)
        return engine
    if backend == "postgresql":
        return create_engine(
            parsed,
            echo=echo,
            pool_pre_ping=True,
            connect_args={"connect_timeout": PG_CONNECT_TIMEOUT_S},
        )
    raise ConfigError(f"database {backend!r} in {redact(url)!r} is not supported; accepted: sqlite, postgresql")


class DatabaseMissing(DatabaseUnavailable):
    """Raised when a command that only reads is pointed at a SQLite file that does not exist."""


SQLITE_CACHE_KIB = 32_768  # each connection's page cache


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        # Let SQLAlchemy emit BEGIN itself (see below) instead of sqlite3's implicit one.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection):
        immediate = conn.get_execution_options().get("readrate_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def writing(conn: Connection) -> Connection:
    """Mark a connection as a writer: on SQLite its transactions take the write lock at BEGIN."""
    return conn.execution_options(readrate_write=True)


def is_unreachable(exc: BaseException) -> bool:
    """True when a database error means the server is down, locked or the connection dropped."""
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        message = str(exc.orig).lower()
        # SQLAlchemy maps every driver error class to its DB-API category, subclasses included
        # (psycopg's CannotConnectNow, "the database system is starting up", is an OperationalError).
        # Not "does not exist": in an OperationalError that is PostgreSQL refusing the connection
        # (database or role does not exist); a missing table is a ProgrammingError there.
        return isinstance(exc, (OperationalError, InterfaceError)) and not any(
            hint in message for hint in ("syntax error", "no such table", "no such column")
        )
    return False


class SchemaMissing(ReadrateError):
    """Raised when the database has no readrate tables (or not this version's): migrations were not applied."""


SCHEMA_HINT = "run `readrate db upgrade` (or start a worker, which applies the migrations)"


def is_schema_missing(exc: BaseException) -> bool:
    """True when a database error means a readrate table or column is not there."""
    if not isinstance(exc, DBAPIError):
        return False
    message = str(exc.orig).lower()
    # SQLite: "no such table: votes"; PostgreSQL: UndefinedTable/UndefinedColumn (SQLSTATE 42P01, 42703).
    return ("no such table" in message or "no such column" in message
            or getattr(exc.orig, "sqlstate", None) in ("42P01", "42703"))


def explain(exc: DBAPIError, url: str | None = None) -> ReadrateError | None:
    """The ReadrateError a database error means (server down, tables missing), or None for a bug."""
    name = f"database {redact(url)}" if url else "the database"
    if is_unreachable(exc):
        return DatabaseUnavailable(f"{name} is unreachable: {exc.orig}")
    if is_schema_missing(exc):
        return SchemaMissing(f"{name} has no readrate tables yet; {SCHEMA_HINT}")
    return None


@contextlib.contextmanager
def reachable(url: str) -> Iterator[None]:
    """Turn 'database down' and 'tables missing' errors into DatabaseUnavailable and SchemaMissing."""
    try:
        yield
    except DBAPIError as exc:
        explained = explain(exc, url)
        if explained is None:
            raise
        raise explained from exc


def check_database(engine: Engine) -> None:
    """Raise DatabaseUnavailable unless a connection can be made and answers (any error while connecting counts)."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except DBAPIError as exc:
        raise DatabaseUnavailable(f"database {redact(str(engine.url))} is unreachable: {exc.orig}") from exc


# Alembic is imported where migrations are run or read: commands that only read counters start without it.


def _alembic_config(connection: Connection | None = None):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest migration this code ships."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> str:
    """Apply migrations up to `revision`; safe when several processes start at once."""
    with reachable(str(engine.url)), engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            # Two workers starting together must not both create the tables.
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
            conn.commit()
        else:
            conn = writing(conn)
        try:
            from alembic import command

            command.upgrade(_alembic_config(conn), revision)
            conn.commit()
        finally:
            if conn.dialect.name == "postgresql":
                conn.rollback()
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _PG_MIGRATION_LOCK})
                conn.commit()
    return current_revision(engine) or ""
