"""`readrate status`: how far behind the workers are, what was refused, who is working, what is at risk."""

from __future__ import annotations

import click

from ..health import Status, Thresholds, as_document, problems
from ..render import Column, count, render, to_json
from ..status import gather
from .app import App, ExitCode, format_option, note, pass_app

SHARD_COLUMNS = [
    Column("shard", "shard", str, numeric=True),
    Column("backlog", "backlog", count, numeric=True),
    Column("lag_s", "lag (s)", lambda v: f"{v:,.1f}", numeric=True),
    Column("committed_offset", "committed offset"),
    Column("oldest_unapplied_id", "oldest unapplied"),
    Column("offset_updated_at", "last commit (UTC)", lambda v: v.replace("T", " ")[:19]),
]
REASON_COLUMNS = [
    Column("count", "count", count, numeric=True),
    Column("reason", "rule broken"),
]
WORKER_COLUMNS = [
    Column("name", "worker"),
    Column("state", "state"),
    Column("current_job_id", "current job"),
]


@click.command(short_help="Backlog, lag, dead letters, workers, risky Redis settings.")
@format_option
@click.option("--check", is_flag=True,
              help="Exit 1 when the lag, failed drain jobs or missing workers pass the thresholds below, or "
                   "Redis memory reaches 90% of maxmemory (for an alert or a health check); the report is "
                   "printed either way.")
@click.option("--max-lag-s", type=click.FloatRange(0), default=60.0, show_default=True, metavar="SECONDS",
              envvar="READRATE_CHECK_MAX_LAG_S",
              help="--check fails when the oldest event not yet counted is older than this. "
                   "[env READRATE_CHECK_MAX_LAG_S]")
@click.option("--max-failed-jobs", type=click.IntRange(0), default=0, show_default=True, metavar="N",
              envvar="READRATE_CHECK_MAX_FAILED_JOBS",
              help="--check fails when more drain jobs than this failed in the last hour (retries "
                   "exhausted, refused jobs). [env READRATE_CHECK_MAX_FAILED_JOBS]")
@click.option("--min-workers", type=click.IntRange(0), default=1, show_default=True, metavar="N",
              envvar="READRATE_CHECK_MIN_WORKERS",
              help="--check fails when fewer workers than this are alive on the queue. "
                   "[env READRATE_CHECK_MIN_WORKERS]")
@pass_app
def status(app: App, fmt: str, check: bool, max_lag_s: float, max_failed_jobs: int, min_workers: int) -> int:
    """Backlog and lag per shard, dead letters by rule, workers, failed jobs, and risky Redis settings.

    Backlog is the number of events after the shard's committed offset; lag is
    the age of the oldest of them. Redis memory is shown against maxmemory, with a
    warning from 80%; --check fails from 90%. Exit codes: 0 ok, 1 when --check
    finds a problem, 3 when Redis or the database is unreachable.
    """
    result = gather(app.settings, app.redis, app.engine(), app.queue_redis)
    found = problems(result, Thresholds(max_lag_s, max_failed_jobs, min_workers)) if check else None
    doc = as_document(result, found)
    if fmt == "json":
        click.echo(to_json(doc), nl=False)
    elif fmt == "csv":
        click.echo(render(doc["shards"], SHARD_COLUMNS, "csv"), nl=False)
    else:
        click.echo(_report(result, doc, fmt), nl=False)
    if fmt in ("json", "csv"):  # the table and Markdown reports list them themselves
        for warning in result.warnings:
            note(f"warning: {warning}")
    if found:
        for problem in found:
            note(f"check failed: {problem}")
        return ExitCode.FAILURE
    if check:
        note("check passed")
    return ExitCode.OK


def _report(result: Status, doc: dict, fmt: str) -> str:
    """The people's version: a table per section (terminal or Markdown)."""
    heading = (lambda text: f"### {text}\n\n") if fmt == "markdown" else (lambda text: f"{text}\n")
    parts = [
        heading(f"Queue {result.queue!r}: {result.backlog:,} events not yet counted, lag {result.lag_s:,.1f} s"),
        render(doc["shards"], SHARD_COLUMNS, fmt),
        heading(f"Dead letters: {result.dead_letters:,}"),
    ]
    if result.memory is not None:
        parts.insert(2, heading(f"Redis memory: {result.memory.describe()}"))
    if doc["dead_letters_by_reason"]:
        parts.append(render(doc["dead_letters_by_reason"], REASON_COLUMNS, fmt))
    parts.append(heading(f"Workers alive: {len(result.workers)}"))
    if doc["workers"]:
        parts.append(render(doc["workers"], WORKER_COLUMNS, fmt))
    parts.append(heading(f"Drain jobs: {result.queued_jobs:,} queued, {result.failed_jobs:,} failed "
                         f"({result.failed_jobs_last_hour:,} in the last hour)"))
    if result.warnings:
        parts.append(heading("Warnings"))
        parts.extend(f"- {w}\n" for w in result.warnings)
    return ("\n" if fmt == "markdown" else "").join(parts)
