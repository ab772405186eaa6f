"""`readrate import FILE`: bulk events from CSV or JSON Lines into the streams, with progress."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from readrate.events.emitter import Emitter
from readrate.events.importer import FIELDS, ImportSpec, TimeUnitHint, good_events, parse_lines
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
@pass_app
def import_events(app: App, file: str, input_format: str, kind: str | None, mapping: tuple[str, ...],
                  time_unit: str) -> int:
    """Push events from FILE through the pipeline (CSV `kind,article,at,visitor,rating` or JSON Lines).

    `at` is ISO 8601 or integer epoch milliseconds. Lines are checked as the
    workers would check them; bad lines are reported by number and skipped, and
    the exit code is 1 if there were any. A CSV header without a needed column
    exits 2 before anything is sent; a file that is not text, or holds no events,
    exits 1. The good lines go to Redis in pipelined batches; run `readrate worker`
    (or `worker --burst`) to count them.
    """
    try:
        spec = ImportSpec.build(mapping, kind, time_unit)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--map/--kind") from None
    emitter = Emitter.from_settings(app.settings, strict=True, redis=app.redis)
    raw = sys.stdin.buffer if file == "-" else open(file, "rb")
    size = None if file == "-" else Path(file).stat().st_size
    bad: list[tuple[int, str]] = []
    hint = TimeUnitHint(spec.time_unit_ms)
    started = time.monotonic()
    with raw, _progress() as progress:
        task = progress.add_task("importing", total=size)
        source = open_source(raw, file, input_format, lambda n: progress.advance(task, n))
        events = parse_lines(source.lines, source.format, spec, emitter.make_read, emitter.make_vote, hint)
        try:
            sent = emitter.emit_many(good_events(events, bad))
        except MissingColumn as exc:  # raised before the first line, so nothing was sent
            raise click.BadParameter(str(exc), param_hint="FILE") from None
    seconds = time.monotonic() - started
    if not sent and not bad:
        raise source.nothing_found("events")
    report_bad_lines(bad)
    warning = hint.warning()
    if warning:
        note(f"warning: {warning}")
    note(f"imported {plural(sent, 'event')} in {seconds:.1f} s ({sent / max(seconds, 1e-9):,.0f}/s); "
         f"{plural(len(bad), 'bad line')} skipped")
    return ExitCode.FAILURE if bad else ExitCode.OK


def _progress() -> Progress:
    console = Console(stderr=True)
    # Only a terminal shows a bar; in a log or a pipe it would leave an empty line behind.
    return Progress(TextColumn("{task.description}"), BarColumn(), TransferSpeedColumn(),
                    TimeRemainingColumn(), transient=True, console=console, disable=not console.is_terminal)
