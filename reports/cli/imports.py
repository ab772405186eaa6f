"""`readrate import FILE`: bulk events from CSV or JSON Lines into the streams, with progress."""

from __future__ import annotations

import hashlib
import sys
import time
import uuid
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

import redis as redis_lib

from readrate.events.emitter import Emitter
from readrate.events.importer import FIELDS, ImportSpec, TimeUnitHint, good_lines, parse_lines
from readrate.events.jobs import drain_queue
from readrate.events.loader import ImportStopped, Loader, import_id
from readrate.events.records import MissingColumn, open_source

from ..render import plural
from .app import App, ExitCode, note, pass_app

# Bad lines listed one by one on stderr before the rest are only counted.
BAD_LINES_SHOWN = 20


def report_bad_lines(bad: list[tuple[int, str]]) -> None:
    """The first bad lines by number and reason, then how many more there were."""
    for line_no, reason in bad[:BAD_LINES_SHOWN]:
        note(f"line {line_no}: {reason}")
    if len(bad) > BAD_LINES_SHOWN:
        note(f"... and {plural(len(bad) - BAD_LINES_SHOWN, 'more bad line')}")


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
@click.option("--import-id", "import_name", metavar="NAME",
              help="Name of this import, so that running it again resumes it (default: the SHA-256 of FILE "
                   "and the options above; standard input resumes only with a name).")
@click.option("--again", is_flag=True,
              help="Send every line even if an earlier run of this import did (its events are counted twice).")
@pass_app
def import_events(app: App, file: str, input_format: str, kind: str | None, mapping: tuple[str, ...],
                  time_unit: str, import_name: str | None, again: bool) -> int:
    """Push events from FILE through the pipeline (CSV `kind,article,at,visitor,rating` or JSON Lines).

    `at` is ISO 8601 or integer epoch milliseconds. Lines are checked as the
    workers would check them; bad lines are reported by number and skipped, and
    the exit code is 1 if there were any. A CSV header without a needed column
    exits 2 before anything is sent; a file that is not text, or holds no events,
    exits 1. The good lines go to Redis in pipelined batches; run `readrate worker`
    (or `worker --burst`) to count them.

    The count printed is exactly what Redis stored. If Redis stops taking events
    part-way (down, or full), run the same command again: it resumes after the
    last line each shard stored, so no event is lost or counted twice (within
    30 days of the first run).
    """
    try:
        spec = ImportSpec.build(mapping, kind, time_unit)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--map/--kind") from None
    raw = sys.stdin.buffer if file == "-" else open(file, "rb")
    size = None if file == "-" else Path(file).stat().st_size
    with raw:
        name = _import_name(raw, file, import_name, again, spec, input_format)
        bad: list[tuple[int, str]] = []
        hint = TimeUnitHint(spec.time_unit_ms)
        started = time.monotonic()
        with _progress() as progress:
            task = progress.add_task("importing", total=size)
            # A file that is not text is refused here, before any database or record is made for it.
            source = open_source(raw, file, input_format, lambda n: progress.advance(task, n))
            settings = app.installed()
            emitter = Emitter.from_settings(settings, strict=True, redis=app.redis, queue_redis=app.queue_redis)
            try:
                loader = Loader(app.redis, settings.keys, name, queue=drain_queue(app.queue_redis, settings.keys))
            except redis_lib.OutOfMemoryError as exc:
                raise ImportStopped(f"Redis is full ({exc}): 0 events of this run were stored; run the same "
                                    "command again once the workers have drained some", 0) from None
            if loader.resumed:
                note("resuming an earlier run of this import: the lines it stored are skipped "
                     "(--again sends them again)")
            events = parse_lines(source.lines, source.format, spec, emitter.make_read, emitter.make_vote, hint)
            try:
                result = loader.load(good_lines(events, bad))
            except MissingColumn as exc:  # raised before the first line, so nothing was sent
                raise click.BadParameter(str(exc), param_hint="FILE") from None
            except ImportStopped as exc:
                raise ImportStopped(f"{exc}. {plural(exc.landed, 'event')} of this run were stored before it "
                                    f"stopped{_skipped(loader.result.skipped)}; run the same command again "
                                    "to import the rest (it resumes, counting nothing twice)", exc.landed) from None
            except redis_lib.RedisError as exc:
                raise ImportStopped(f"Redis failed part-way ({exc}): {plural(loader.result.landed, 'event')} of "
                                    "this run were stored for sure; run the same command again to import the rest "
                                    "(it resumes, counting nothing twice)", loader.result.landed) from exc
    seconds = time.monotonic() - started
    sent = result.landed
    if not sent and not bad and not result.skipped:
        raise source.nothing_found("events")
    report_bad_lines(bad)
    warning = hint.warning()
    if warning:
        note(f"warning: {warning}")
    note(f"imported {plural(sent, 'event')} in {seconds:.1f} s ({sent / max(seconds, 1e-9):,.0f}/s)"
         f"{_skipped(result.skipped)}; {plural(len(bad), 'bad line')} skipped")
    return ExitCode.FAILURE if bad else ExitCode.OK


def _skipped(skipped: int) -> str:
    return f", {plural(skipped, 'event')} already stored by an earlier run" if skipped else ""


def _import_name(raw, file: str, given: str | None, again: bool, spec: ImportSpec, input_format: str) -> str:
    """The import's id: the name given, or the file's SHA-256 with the options; a fresh one for --again."""
    if again or (given is None and file == "-"):
        return f"once-{uuid.uuid4().hex}"
    if given is not None:
        return "named-" + hashlib.sha256(given.encode("utf-8")).hexdigest()[:32]
    return import_id(raw, repr(sorted(spec.columns.items())), str(spec.kind), str(spec.time_unit_ms), input_format)


def _progress() -> Progress:
    console = Console(stderr=True)
    # Only a terminal shows a bar; in a log or a pipe it would leave an empty line behind.
    return Progress(TextColumn("{task.description}"), BarColumn(), TransferSpeedColumn(),
                    TimeRemainingColumn(), transient=True, console=console, disable=not console.is_terminal)
