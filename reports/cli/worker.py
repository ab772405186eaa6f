"""`readrate worker`: drain event streams into the database."""

from __future__ import annotations

import time

import click

from readrate.events.urls import redact
from readrate.workers.runner import WorkerProcess

from ..render import plural
from .app import App, note, pass_app


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
        try:
            totals = process.run_burst()
        finally:
            process.close()
        seconds = time.monotonic() - started
        note(f"drained {plural(totals.entries, 'event')} ({totals.rejected:,} rejected to dead letters) "
             f"in {seconds:.1f} s")
        return
    process.prepare()
    note(f"readrate worker: draining {plural(len(process.settings.keys.drained), 'shard')} of "
         f"{app.settings.prefix!r} into {redact(app.settings.database_url)}; Ctrl-C to stop")
    process.run_forever()
