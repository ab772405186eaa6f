"""`readrate archive status|compact|prune`: the archive of counted events (READRATE_ARCHIVE)."""

from __future__ import annotations

from contextlib import nullcontext
from datetime import datetime

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from sqlalchemy import func, select

from readrate.events.clock import utc_now
from readrate.workers.archive import compact_day, days_to_compact, recorded_paths, started
from readrate.workers.db import reachable
from readrate.workers.readers_index import ReadersIndex, index_archive, prune_archive
from readrate.workers.schema import archive_baseline, archive_files

from ..audit import archive_root
from ..render import Column, count, plural, render
from .app import App, When, format_option, note, pass_app

STATUS_COLUMNS = [Column("field", "field"), Column("value", "value")]


@click.group(short_help="Status, compaction and retention of the event archive.")
def archive() -> None:
    """The archive: every counted event as Parquet files under READRATE_ARCHIVE, one folder per
    event day (day=YYYY-MM-DD), read by `readrate audit` and any Parquet reader (DuckDB, pandas)."""


@archive.command("status", short_help="Where the archive is, since when, and how big.")
@format_option
@pass_app
def archive_status(app: App, fmt: str) -> None:
    """The archive's folder, when it started, its files, events, bytes and days, and how many of the
    files have their readers index (`readrate archive compact` writes it)."""
    engine = app.engine()
    with reachable(app.settings.database_url):
        folder = archive_root(engine, app.settings.archive)
        with engine.connect() as conn:
            began = started(conn)
            files, events, size, days, first, last = conn.execute(select(
                func.count(), func.coalesce(func.sum(archive_files.c.events), 0),
                func.coalesce(func.sum(archive_files.c.bytes), 0), func.count(archive_files.c.day.distinct()),
                func.min(archive_files.c.day), func.max(archive_files.c.day))).one()
            baseline = conn.scalar(select(func.count()).select_from(archive_baseline))
            index = ReadersIndex(folder)
            indexed = len(index.indexed(recorded_paths(conn)))
    events, size = int(events), int(size)  # PostgreSQL sums are Decimals
    document = {"folder": str(folder.root), "started_at": began[0], "files": files, "events": events,
                "bytes": size, "bytes_per_event": round(size / events, 2) if events else None,
                "days": days, "first_day": first, "last_day": last, "baseline_articles": baseline,
                "readers_indexed_files": indexed, "readers_index_bytes": index.bytes()}
    rows = [{"field": key, "value": "" if value is None else (count(value) if isinstance(value, int) else str(value))}
            for key, value in document.items()]
    click.echo(render(rows, STATUS_COLUMNS, fmt, title="Archive", document=document), nl=False)


@archive.command("compact", short_help="Merge each day's small files into one (safe while workers run).")
@click.option("--day", type=When(), help="Compact only this UTC day (an ISO date). [default: every day with "
                                          "more than one file]")
@pass_app
def archive_compact(app: App, day: datetime | None) -> None:
    """Merge each day's files into one file, safely while workers run: the merged file replaces
    the day's files in one transaction, and the old files are deleted after it.

    A drain writes one file per batch and event day, so a quiet site or an import of
    years of history leaves many small files; merged, they take less room and read faster.

    Then each file gets its readers index (its reads with articles and visitors as numbers),
    which makes `report top --by readers` and the readers column about three times faster;
    run it daily, e.g. from cron."""
    engine = app.engine()
    with reachable(app.settings.database_url):
        folder = archive_root(engine, app.settings.archive)
        with engine.connect() as conn:
            days = days_to_compact(conn, day=None if day is None else day.date())
        merged = files = before = after = 0
        console = Console(stderr=True)
        with Progress(TextColumn("compacting"), BarColumn(), MofNCompleteColumn(), TextColumn("days"),
                      console=console, transient=True, disable=not console.is_terminal or not days) as progress:
            task = progress.add_task("compacting", total=len(days))
            for each in days:
                done = compact_day(engine, folder, each)
                if done is not None:
                    merged += 1
                    files += done.files
                    before += done.bytes_before
                    after += done.bytes_after
                progress.advance(task)
        with console.status("indexing readers", spinner="dots") if console.is_terminal else nullcontext():
            indexed = index_archive(engine, folder)
        removed = folder.clean(engine)
    summary = (f"compacted {plural(merged, 'day')}: {plural(files, 'file')} into {merged:,}, "
               f"{before:,} bytes into {after:,}") if days else "nothing to compact: no day has more than one file"
    if indexed:
        summary += f"; indexed the readers of {plural(indexed, 'file')}"
    note(summary + (f"; removed {plural(len(removed), 'orphan file')}" if removed else ""))


@archive.command("prune", short_help="Delete the archive's days before a date.")
@click.option("--before", type=When(), required=True,
              help="First day kept (UTC): an ISO date or a duration before now (400d).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_app
def archive_prune(app: App, before: datetime, yes: bool) -> None:
    """Delete the archived events of every day before --before (retention).

    The counters keep them; only the archive forgets them. Articles that had pruned events can no
    longer be recomputed in full, so `readrate audit` reports them as "before the archive" from then on."""
    if before > utc_now():
        raise click.BadParameter("is in the future; pruning would delete today's archive", param_hint="--before")
    engine = app.engine()
    with reachable(app.settings.database_url):
        folder = archive_root(engine, app.settings.archive)
        if not yes:
            click.confirm(f"Delete every archived event before {before.date()}?", abort=True, err=True)
        files, events = prune_archive(engine, folder, before.date())
    note(f"pruned {plural(events, 'event')} in {plural(files, 'file')} before {before.date()}"
         if files else f"nothing archived before {before.date()}")
