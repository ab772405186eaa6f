"""The `readrate` command: the root group with its global options, the commands, and `main()`.

This is a composition root (with the HTTP app): it wires events, workers and
reports together, and nothing below imports it.
"""

from __future__ import annotations

import logging
import os
import sys

import click

from readrate.events.settings import Settings

from . import (archive, articles, audit, config, db, dead, demo, emit, imports, moderate, rebuild, report, serve,
               status, worker)
from .app import App, ExitCode, failure, note

log = logging.getLogger("readrate.cli")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--redis-url", envvar="REDIS_URL", metavar="URL",
              help="Redis holding the event streams (a node of the Redis Cluster with READRATE_REDIS_CLUSTER=1) and, "
                   "unless READRATE_QUEUE_URL names another, the job queue. "
                   "[env REDIS_URL; default redis://localhost:6379/0]")
@click.option("--database-url", envvar="DATABASE_URL", metavar="URL",
              help="SQL database the counters live in: sqlite:///FILE or postgresql://USER@HOST/DB. "
                   "[env DATABASE_URL; default sqlite:///readrate.db]")
@click.option("--shards", envvar="READRATE_SHARDS", type=click.IntRange(1, 1024), metavar="N",
              help="Shard count of a new installation (afterwards `readrate config set shards`); if given, it "
                   "must match the installation's. [env READRATE_SHARDS; default 4]")
@click.option("--prefix", envvar="READRATE_PREFIX", metavar="TEXT",
              help="Prefix of every Redis key and the RQ queue name. [env READRATE_PREFIX; default readrate]")
@click.option("--rating-scale", envvar="READRATE_RATING_SCALE", metavar="LOW-HIGH[/STEP]",
              help="Rating scale of a new installation: 1-5 for whole stars, 0.5-5/0.5 for half stars "
                   "(afterwards `readrate config set rating-scale`). [env READRATE_RATING_SCALE; default 1-5]")
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


for command in (demo.demo, worker.worker, emit.emit, imports.import_events, db.db, articles.articles,
                report.report, status.status, dead.dead, config.config, serve.serve, audit.audit_command, archive.archive,
                rebuild.rebuild, moderate.moderate):
    cli.add_command(command)


def run(argv: list[str] | None = None) -> int:
    """Run the command line; the exit code. Every exception ends here as a one-line message."""
    try:
        result = cli.main(args=argv, prog_name="readrate", standalone_mode=False)
        return int(result) if isinstance(result, int) else ExitCode.OK
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except Exception as exc:  # noqa: BLE001 - this is the boundary
        code, message = failure(exc)
        log.debug("the command failed", exc_info=exc)
        if message:
            note(f"Error: {message}")
        return code
    except KeyboardInterrupt:
        note("Aborted.")
        return ExitCode.FAILURE


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    code = run(argv)
    try:
        sys.stdout.flush()  # a full device or a closed pipe shows here, not at interpreter exit
    except OSError as exc:
        if not isinstance(exc, BrokenPipeError):
            note(f"Error: cannot write standard output: {exc.strerror or exc}")
        code = code or ExitCode.FAILURE
        # Point stdout at /dev/null, so the interpreter's own flush at exit has nothing left to fail
        # on (it would print "Exception ignored …").
        _silence_stdout()
    sys.exit(int(code))


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
