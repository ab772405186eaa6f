"""What every `readrate` command shares: the App context, named exit codes, options declared once,
output that never overwrites by surprise, and the one error boundary.

Data goes to stdout, diagnostics and progress to stderr. Exit codes (DESIGN.md):
0 ok, 1 failure, 2 bad usage, 3 Redis or the database unreachable. `failure()`
maps every exception to one of them and a one-line message, so no traceback ever
reaches a user.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from enum import IntEnum
from functools import cached_property
from pathlib import Path

import click
import redis as redis_lib
from redis import Redis
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from readrate.events.clock import utc_now
from readrate.events.connections import CLI, redis_client, stream_client
from readrate.events.errors import ConfigError, ReadrateError, UnreachableError
from readrate.events.installation import read_record
from readrate.events.settings import Settings
from readrate.workers.db import explain, make_engine, upgrade
from readrate.workers.installation import establish

from ..render import FORMATS
from ..windows import parse_duration, parse_when

log = logging.getLogger("readrate.cli")


class ExitCode(IntEnum):
    OK = 0
    FAILURE = 1
    USAGE = 2
    UNREACHABLE = 3


class App:
    """What every command needs: the settings, and Redis and the database made on first use."""

    def __init__(self, settings: Settings, verbose: int = 0) -> None:
        self.settings = settings
        self.verbose = verbose
        self._engine: Engine | None = None
        self._installed: Settings | None = None

    @cached_property
    def redis(self) -> Redis:
        """The Redis (or Redis Cluster) holding the event streams."""
        return stream_client(self.settings.redis_url, CLI, cluster=self.settings.cluster)

    @cached_property
    def queue_redis(self) -> Redis:
        """The Redis holding RQ's queue (READRATE_QUEUE_URL, or the streams' Redis)."""
        if self.settings.queue_url is None and not self.settings.cluster:
            return self.redis
        return redis_client(self.settings.queue_redis_url, CLI)

    def installed(self, *, create: bool = True) -> Settings:
        """The settings adopted to the installation record.

        Producers' commands (emit, import) read the record from Redis; when Redis has
        none, this is the first command of a new installation (`create`: the database
        and the record are made), or Redis lost its data: the database's record is
        published again. Without `create` a database with no tables is SchemaMissing.
        """
        if self._installed is None:
            record = read_record(self.redis, self.settings.keys)
            if record is not None:
                self._installed = self.settings.adopt(record)
            else:
                engine = self.engine(create=create)
                if create:
                    upgrade(engine)
                self._installed = establish(engine, self.redis, self.settings)
        return self._installed

    def engine(self, *, create: bool = False) -> Engine:
        """The database; only commands that write pass `create`, so a mistyped SQLite path is not created."""
        if self._engine is None:
            self._engine = make_engine(self.settings.database_url, create=create)
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
        if "queue_redis" in self.__dict__:
            self.queue_redis.close()
        if "redis" in self.__dict__:
            self.redis.close()


pass_app = click.make_pass_decorator(App)


def note(message: str) -> None:
    """A diagnostic line for the operator (stderr, never mixed into data)."""
    click.echo(message, err=True)


# -- options several commands share ---------------------------------------------------------------

format_option = click.option(
    "--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
    help="Output format: a table for people, CSV/JSON for scripts, Markdown for documents.",
)
force_option = click.option("--force", is_flag=True, help="Overwrite --output and --plot files that exist.")


class When(click.ParamType):
    """A window end: a duration before now or an ISO date/time, as naive UTC."""

    name = "TIME"

    def convert(self, value, param, ctx) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            return parse_when(value, utc_now())
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class Duration(click.ParamType):
    name = "DURATION"

    def convert(self, value, param, ctx) -> timedelta:
        if isinstance(value, timedelta):
            return value
        try:
            return parse_duration(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def check_target(path: Path | None, force: bool, option: str) -> None:
    """Refuse, before any work is done, a file that exists (without --force) or a folder that does not."""
    if path is None:
        return
    if path.is_dir():
        raise click.BadParameter(f"{str(path)!r} is a folder; give a file name", param_hint=option)
    if not path.parent.is_dir():
        raise click.BadParameter(f"folder {str(path.parent)!r} does not exist", param_hint=option)
    if path.exists() and not force and not _is_device(path):
        raise click.BadParameter(f"{str(path)!r} exists; pass --force to overwrite it", param_hint=option)


def _is_device(path: Path) -> bool:
    # /dev/stdout, /dev/null: writing to them is what the user asked for, not an overwrite.
    return not path.is_file()


def write_output(text: str, output: Path | None, force: bool) -> None:
    """`text` to stdout, or to `output` (created; replaced only with --force)."""
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        with open(output, "w" if force or _is_device(output) else "x", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        raise OutputError(f"cannot write {str(output)!r}: {exc.strerror or exc}") from None
    note(f"wrote {output}")


class OutputError(ReadrateError):
    """Raised when --output cannot be written (a full disk, no permission, a read-only folder)."""


# -- the error boundary ---------------------------------------------------------------------------

def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def failure(exc: BaseException) -> tuple[ExitCode, str | None]:
    """The exit code and the one-line message for an exception that ended a command (None: say nothing)."""
    if isinstance(exc, click.exceptions.Abort):
        return ExitCode.FAILURE, "Aborted."
    if isinstance(exc, ConfigError):
        return ExitCode.USAGE, _one_line(exc)
    if isinstance(exc, UnreachableError):
        return ExitCode.UNREACHABLE, _one_line(exc)
    if isinstance(exc, ReadrateError):
        return ExitCode.FAILURE, _one_line(exc)
    if isinstance(exc, redis_lib.AuthenticationError):
        return ExitCode.UNREACHABLE, ("Redis authentication failed: it refused the user name or password in "
                                      f"REDIS_URL or READRATE_QUEUE_URL ({_one_line(exc)})")
    if isinstance(exc, (redis_lib.ConnectionError, redis_lib.TimeoutError)):
        return ExitCode.UNREACHABLE, f"Redis is unreachable: {_one_line(exc)}"
    if isinstance(exc, redis_lib.ResponseError) and "DB index is out of range" in str(exc):
        return ExitCode.USAGE, ("Redis has no database with the number REDIS_URL ends with (DB index is out of "
                                "range); accepted: 0 up to the server's `databases` setting less one (0-15 by default)")
    if isinstance(exc, redis_lib.RedisError):
        return ExitCode.FAILURE, f"Redis refused: {_one_line(exc)}"
    if isinstance(exc, DBAPIError):
        explained = explain(exc)
        if explained is not None:
            return failure(explained)
        return ExitCode.FAILURE, f"the database refused: {_one_line(exc.orig)}"
    if isinstance(exc, SQLAlchemyError):
        return ExitCode.FAILURE, f"the database: {_one_line(exc)}"
    if isinstance(exc, BrokenPipeError):
        return ExitCode.FAILURE, None  # the reader went away (`| head`): nothing to say to it
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename else ""
        return ExitCode.FAILURE, f"input or output failed: {exc.strerror or _one_line(exc)}{where}"
    return ExitCode.FAILURE, (f"unexpected {type(exc).__name__}: {_one_line(exc)}; this is a bug, please "
                              "report it (run with -vv to log the details)")
