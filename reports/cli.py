"""The `readrate` command: one click group, shared options declared once, named exit codes.

Data goes to stdout, diagnostics and progress to stderr. Exit codes (DESIGN.md):
0 ok, 1 failure, 2 bad usage, 3 Redis or the database unreachable.
"""

from __future__ import annotations

import logging
import sys
from enum import IntEnum
from functools import cached_property

import click
import redis as redis_lib
from redis import Redis
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from events.errors import ConfigError, ReadrateError, UnreachableError
from events.settings import Settings
from workers.db import is_unreachable, make_engine


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

    @cached_property
    def redis(self) -> Redis:
        return Redis.from_url(self.settings.redis_url, socket_connect_timeout=3, socket_timeout=30)

    @cached_property
    def engine(self) -> Engine:
        return make_engine(self.settings.database_url)

    def close(self) -> None:
        if "engine" in self.__dict__:
            self.engine.dispose()
        if "redis" in self.__dict__:
            self.redis.close()


pass_app = click.make_pass_decorator(App)


def note(message: str) -> None:
    """A diagnostic line for the operator (stderr, never mixed into data)."""
    click.echo(message, err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--redis-url", envvar="REDIS_URL", metavar="URL",
              help="Redis holding the event streams and the job queue. [env REDIS_URL; default redis://localhost:6379/0]")
@click.option("--database-url", envvar="DATABASE_URL", metavar="URL",
              help="SQL database the counters live in: sqlite:///FILE or postgresql://USER@HOST/DB. "
                   "[env DATABASE_URL; default sqlite:///readrate.db]")
@click.option("--shards", envvar="READRATE_SHARDS", type=click.IntRange(1, 1024), metavar="N",
              help="Number of event streams articles are spread over; every producer and worker must agree. "
                   "[env READRATE_SHARDS; default 4]")
@click.option("--prefix", envvar="READRATE_PREFIX", metavar="TEXT",
              help="Prefix of every Redis key and the RQ queue name. [env READRATE_PREFIX; default readrate]")
@click.option("--rating-scale", envvar="READRATE_RATING_SCALE", metavar="LOW-HIGH[/STEP]",
              help="Ratings votes may carry: 1-5 for whole stars, 0.5-5/0.5 for half stars. "
                   "[env READRATE_RATING_SCALE; default 1-5]")
@click.option("-v", "--verbose", count=True, help="Log more to stderr (-v info, -vv debug).")
@click.version_option(package_name="readrate", prog_name="readrate")
@click.pass_context
def cli(ctx: click.Context, redis_url, database_url, shards, prefix, rating_scale, verbose) -> None:
    """readrate: exact reads and ratings counters for articles, and popularity reports.

    Page hooks emit read and vote events into Redis; `readrate worker` aggregates
    them into the database; `readrate report` shows what is read and liked.
    Start with `readrate demo`.
    """
    logging.basicConfig(level=[logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)],
                        format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    settings = Settings.from_env(
        redis_url=redis_url, database_url=database_url, shards=shards, prefix=prefix, rating_scale=rating_scale
    )
    app = App(settings, verbose)
    ctx.obj = app
    ctx.call_on_close(app.close)


def _register() -> None:
    from .commands import articles, dead, demo, pipeline, report, status

    for module in (demo, pipeline, report, articles, status, dead):
        module.register(cli)


_register()


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the group and turn readrate's errors into exit codes."""
    code = ExitCode.OK
    try:
        result = cli.main(args=argv, prog_name="readrate", standalone_mode=False)
        code = result if isinstance(result, int) else ExitCode.OK
    except click.exceptions.Abort:
        note("Aborted.")
        code = ExitCode.FAILURE
    except click.ClickException as exc:
        exc.show()
        code = exc.exit_code
    except ConfigError as exc:
        note(f"Error: {exc}")
        code = ExitCode.USAGE
    except UnreachableError as exc:
        note(f"Error: {exc}")
        code = ExitCode.UNREACHABLE
    except (redis_lib.ConnectionError, redis_lib.TimeoutError) as exc:
        note(f"Error: Redis is unreachable: {exc}")
        code = ExitCode.UNREACHABLE
    except ReadrateError as exc:
        note(f"Error: {exc}")
        code = ExitCode.FAILURE
    except DBAPIError as exc:
        if not is_unreachable(exc):
            raise
        note(f"Error: the database is unreachable: {exc.orig}")
        code = ExitCode.UNREACHABLE
    except BrokenPipeError:
        code = ExitCode.FAILURE
    sys.exit(int(code))
