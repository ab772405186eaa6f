"""`readrate audit`: compare every counter with what the archive says it must be."""

from __future__ import annotations

from datetime import datetime

import click

from readrate.workers.db import reachable

from ..audit import archive_root, audit
from ..render import Column, plural, render
from .app import App, ExitCode, When, format_option, note, pass_app


def _value(v: object) -> str:
    if v is None:
        return "—"
    if isinstance(v, float) and not v.is_integer():
        return f"{v:,.2f}"
    return f"{int(v):,}" if isinstance(v, (int, float)) and abs(v) < 1e15 and float(v).is_integer() else str(v)


DRIFT_COLUMNS = [
    Column("article_id", "article"),
    Column("what", "what"),
    Column("database", "database", _value, numeric=True),
    Column("archive", "archive", _value, numeric=True),
    Column("before_archive", "note", lambda v: "before the archive" if v else "drift"),
]


@click.command("audit", short_help="Recompute the counters from the archive and show any drift.")
@click.option("--since", type=When(),
              help="Compare only the daily and hourly buckets and the votes from this day (UTC) on: a duration "
                   "before now (30d) or an ISO date. [default: everything, totals included]")
@click.option("--show-before", is_flag=True,
              help="Also list the differences of articles counted before the archive started (not drift).")
@format_option
@pass_app
def audit_command(app: App, since: datetime | None, show_before: bool, fmt: str) -> int:
    """Recompute every article's reads, votes, rating sum, daily and hourly buckets and current votes
    from the archive (READRATE_ARCHIVE), compare them with the database, and print every difference.

    Exits 1 when anything drifted. Articles that had counters before the archive started are
    listed as "before the archive": their earlier events were never archived, so they are not drift."""
    settings = app.settings  # the database alone: no Redis needed
    engine = app.engine()
    with reachable(settings.database_url):
        archive = archive_root(engine, settings.archive)
        result = audit(engine, archive, since=None if since is None else since.date())
    drifted = result.drifted
    window = "" if result.since is None else f" from {result.since}"
    title = (f"Audit of {plural(result.articles, 'article')} against {plural(result.events, 'archived event')}"
             f"{window} in {plural(result.files, 'file')}")
    shown = result.drift if show_before else drifted
    before = len(result.drift) - len(drifted)
    if shown or fmt != "table":
        document = {"events": result.events, "files": result.files, "articles": result.articles,
                    "since": result.since, "archive_started_at": result.started_at,
                    "baseline_articles": result.baseline_articles, "drifted": len(drifted),
                    "before_archive": before, "drift": shown}
        click.echo(render(shown, DRIFT_COLUMNS, fmt, title=title, document=document), nl=False)
    if before:
        note(f"{plural(before, 'difference')} in {plural(result.baseline_articles, 'article')} counted before the "
             f"archive started or pruned from it: not drift" + ("" if show_before else " (--show-before lists them)"))
    if drifted:
        note(f"drift: {plural(len(drifted), 'value')} in "
             f"{plural(len({d.article_id for d in drifted}), 'article')} differ from the archive")
        return ExitCode.FAILURE
    note(f"{title}: no drift")
    return ExitCode.OK
