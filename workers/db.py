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

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, InterfaceError, OperationalError

from events.errors import ConfigError, DatabaseUnavailable

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


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine for `url`, configured for readrate's workload; raises ConfigError for a bad URL."""
    try:
        parsed = make_url(normalize_url(url))
    except ArgumentError:
        raise ConfigError(
            f"database URL {url!r} is not a URL; e.g. sqlite:///readrate.db or postgresql://user@host/db"
        ) from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
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
    raise ConfigError(f"database {backend!r} in {url!r} is not supported; accepted: sqlite, postgresql")


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        # Let SQLAlchemy emit BEGIN itself (see below) instead of sqlite3's implicit one.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA cache_size=-32768")
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


@contextlib.contextmanager
def reachable(url: str) -> Iterator[None]:
    """Turn 'database down' errors into DatabaseUnavailable with a message naming the URL."""
    try:
        yield
    except DBAPIError as exc:
        if is_unreachable(exc):
            raise DatabaseUnavailable(f"database {_safe(url)} is unreachable: {exc.orig}") from exc
        raise


def _safe(url: str) -> str:
    try:
        return make_url(normalize_url(url)).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def _alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest migration this code ships."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config).get_current_head()


def current_revision(engine: Engine) -> str | None:
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
            command.upgrade(_alembic_config(conn), revision)
            conn.commit()
        finally:
            if conn.dialect.name == "postgresql":
                conn.rollback()
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _PG_MIGRATION_LOCK})
                conn.commit()
    return current_revision(engine) or ""
