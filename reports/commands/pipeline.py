"""Commands that run the pipeline: `worker`, `emit`, `import`, `db upgrade`."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from events.emitter import Emitter
from events.errors import InvalidEvent
from events.importer import FIELDS, ImportSpec, detect_format, parse_lines
from workers.db import current_revision, head_revision, reachable, upgrade
from workers.runner import WorkerProcess

from ..cli import App, ExitCode, note, pass_app

# Bad lines listed one by one on stderr before the rest are only counted.
BAD_LINES_SHOWN = 20


@click.command(short_help="Drain event streams into the database (RQ worker + sweep).")
@click.option("--burst", is_flag=True, help="Drain every shard until no backlog is left, then exit.")
@click.option("--name", metavar="TEXT", help="Worker name shown by `rq info` and `readrate status` (default: random).")
@pass_app
def worker(app: App, burst: bool, name: str | None) -> None:
    """Run an RQ worker that drains event streams into the database, plus the sweep.

    Applies database migrations first. Without --burst it runs until SIGTERM or
    Ctrl-C, finishing the batch in hand before it stops; with --burst it drains
    what is there and exits. Run as many as you like: shards are leased, and every
    batch is applied exactly once whatever crashes.
    """
    level = ["WARNING", "INFO", "DEBUG"][min(app.verbose, 2)]
    process = WorkerProcess(app.settings, name=name, logging_level=level)
    if burst:
        started = time.monotonic()
        totals = process.run_burst()
        process.close()
        seconds = time.monotonic() - started
        note(f"drained {totals.entries:,} events ({totals.rejected:,} rejected to dead letters) in {seconds:.1f} s")
        return
    note(f"readrate worker: draining {app.settings.shards} shards of {app.settings.prefix!r} into "
         f"{process.engine.url.render_as_string(hide_password=True)}; Ctrl-C to stop")
    process.run_forever()


@click.group(short_help="Emit one read or vote by hand.")
def emit() -> None:
    """Emit one event by hand (as a page hook would)."""


_at_option = click.option("--at", metavar="TIME",
                          help="Event time: ISO 8601 (UTC unless a zone is given) or epoch milliseconds. [default: now]")


def _emit(app: App, make) -> None:
    emitter = Emitter.from_settings(app.settings, strict=True, redis=app.redis)
    try:
        event = make(emitter)
    except InvalidEvent as exc:
        raise click.BadParameter(str(exc)) from None
    emitter.emit_many([event])
    note(f"emitted {event}")


@emit.command("read", short_help="Record that an article was read.")
@click.argument("article")
@click.option("--visitor", metavar="ID", help="Opaque visitor id (at most 128 characters).")
@_at_option
@pass_app
def emit_read(app: App, article: str, visitor: str | None, at: str | None) -> None:
    """Record that ARTICLE was read."""
    _emit(app, lambda e: e.make_read(article, visitor, at))


@emit.command("vote", short_help="Record a reader's rating of an article.")
@click.argument("article")
@click.argument("rating")
@click.option("--voter", required=True, metavar="ID", help="Opaque voter id; one vote per voter per article.")
@_at_option
@pass_app
def emit_vote(app: App, article: str, rating: str, voter: str, at: str | None) -> None:
    """Record that VOTER rated ARTICLE with RATING (on the configured scale)."""
    _emit(app, lambda e: e.make_vote(article, rating, voter, at))


@click.command("import", short_help="Bulk events from CSV or JSON Lines.")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=str))
@click.option("--input-format", type=click.Choice(["auto", "csv", "jsonl"]), default="auto", show_default=True,
              help="CSV with a header row, or JSON Lines; auto goes by the file name, then the first line.")
@click.option("--kind", type=click.Choice(["read", "vote"]),
              help="Treat every line as this kind (for files without a kind column).")
@click.option("--map", "mapping", multiple=True, metavar="FIELD=COLUMN",
              help=f"Take FIELD ({', '.join(FIELDS)}) from COLUMN; repeatable. E.g. --map article=movieId.")
@click.option("--time-unit", type=click.Choice(["ms", "s"]), default="ms", show_default=True,
              help="Unit of integer times in the file: epoch milliseconds or seconds.")
@pass_app
def import_(app: App, file: str, input_format: str, kind: str | None, mapping: tuple[str, ...],
            time_unit: str) -> int:
    """Push events from FILE through the pipeline (CSV `kind,article,at,visitor,rating` or JSON Lines).

    `at` is ISO 8601 or integer epoch milliseconds. Lines are checked as the
    workers would check them; bad lines are reported by number and skipped, and
    the exit code is 1 if there were any. The good ones go to Redis in pipelined
    batches; run `readrate worker` (or `worker --burst`) to count them.
    """
    try:
        spec = ImportSpec.build(mapping, kind, time_unit)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--map/--kind") from None
    emitter = Emitter.from_settings(app.settings, strict=True, redis=app.redis)
    raw = sys.stdin.buffer if file == "-" else open(file, "rb")
    size = None if file == "-" else Path(file).stat().st_size
    bad: list[tuple[int, str]] = []
    started = time.monotonic()
    with raw, _progress() as progress:
        task = progress.add_task("importing", total=size)
        lines = _decoded_lines(raw, lambda n: progress.advance(task, n))
        first = next(lines, "")
        fmt = detect_format(file, first) if input_format == "auto" else input_format
        events = parse_lines(_chain(first, lines), fmt, spec, emitter.make_read, emitter.make_vote)
        sent = emitter.emit_many(_good(events, bad))
    seconds = time.monotonic() - started
    for line_no, reason in bad[:BAD_LINES_SHOWN]:
        note(f"line {line_no}: {reason}")
    if len(bad) > BAD_LINES_SHOWN:
        note(f"... and {len(bad) - BAD_LINES_SHOWN:,} more bad lines")
    note(f"imported {sent:,} events in {seconds:.1f} s ({sent / max(seconds, 1e-9):,.0f}/s); "
         f"{len(bad):,} bad lines skipped")
    return ExitCode.FAILURE if bad else ExitCode.OK


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
                    transient=True, console=_stderr_console())


def _stderr_console():
    from rich.console import Console
    return Console(stderr=True)


def _decoded_lines(raw, advance):
    done = 0
    for number, line in enumerate(raw, start=1):
        done += len(line)
        if number % 4096 == 0:  # redrawing per line would cost more than the import
            advance(done)
            done = 0
        # Undecodable bytes survive as surrogates, which event validation refuses line by line.
        yield line.decode("utf-8", "surrogateescape")
    advance(done)


def _chain(first: str, rest):
    if first:
        yield first
    yield from rest


def _good(pairs, bad: list[tuple[int, str]]):
    for line_no, item in pairs:
        if isinstance(item, InvalidEvent):
            bad.append((line_no, str(item)))
        else:
            yield item


@click.group(short_help="Database migrations.")
def db() -> None:
    """Database maintenance."""


@db.command("upgrade", short_help="Apply the migrations this version ships.")
@pass_app
def db_upgrade(app: App) -> None:
    """Apply the database migrations this version of readrate ships (Alembic)."""
    with reachable(app.settings.database_url):
        before = current_revision(app.engine)
        after = upgrade(app.engine)
    if before == after:
        note(f"database already at revision {after} (head {head_revision()})")
    else:
        note(f"database upgraded from {before or 'empty'} to {after}")


def register(group: click.Group) -> None:
    for command in (worker, emit, import_, db):
        group.add_command(command)
