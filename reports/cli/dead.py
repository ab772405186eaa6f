"""`readrate dead list|replay|purge`: the events workers refused, with the reason, and what to do with them."""

from __future__ import annotations

from datetime import datetime

import click

from readrate.events.clock import now_ms
from readrate.workers.db import reachable
from readrate.workers.deadletters import count_dead, list_dead, purge_dead, replay_dead

from ..render import Column, plural, render, to_json
from .app import App, When, format_option, note, pass_app


PAYLOAD_SHOWN = 80
DEAD_COLUMNS = [
    Column("id", "id", str, numeric=True),
    Column("received_at", "received (UTC)", lambda v: str(v)[:19]),
    Column("shard", "shard", str, numeric=True),
    Column("stream_id", "stream id"),
    Column("reason", "reason"),
    Column("payload", "payload", lambda v: v if len(v) <= PAYLOAD_SHOWN else v[:PAYLOAD_SHOWN] + "…"),
]

_reason_option = click.option("--reason", metavar="TEXT",
                              help="Only dead letters whose reason contains TEXT (case-insensitive), "
                                   "e.g. --reason 'not on the scale'.")


@click.group(short_help="List, replay or purge refused events.")
def dead() -> None:
    """The dead letters: events the workers refused, kept with the reason."""


@dead.command("list", short_help="Refused events, newest first, with reasons.")
@_reason_option
@click.option("--limit", type=click.IntRange(1, 1_000_000), default=50, show_default=True, metavar="N",
              help="Show at most N dead letters, newest first.")
@format_option
@pass_app
def dead_list(app: App, reason: str | None, limit: int, fmt: str) -> None:
    """List dead letters, newest first: id, shard, stream id, reason and the raw entry (JSON)."""
    with reachable(app.settings.database_url):
        rows = [row.as_dict() for row in list_dead(app.engine(), reason=reason, limit=limit)]
        total = count_dead(app.engine(), reason=reason)
    if fmt == "json":
        click.echo(to_json(rows), nl=False)
    elif rows or fmt != "table":
        click.echo(render(rows, DEAD_COLUMNS, fmt, title=f"Dead letters ({total:,})"), nl=False)
    note(f"{len(rows):,} of {plural(total, 'dead letter')} shown" if total else "no dead letters")


@dead.command("replay", short_help="Re-check with today's rules; re-emit what passes.")
@click.option("--id", "ids", type=int, multiple=True, metavar="ID", help="Replay this dead letter; repeatable.")
@click.option("--all", "everything", is_flag=True, help="Replay every dead letter (or every one --reason picks).")
@_reason_option
@format_option
@pass_app
def dead_replay(app: App, ids: tuple[int, ...], everything: bool, reason: str | None, fmt: str) -> None:
    """Check dead letters again with today's rules and re-emit those that now pass.

    Useful after widening the rating scale, or after fixing a producer's clock.
    What passes goes back into its shard's stream (and is counted by the
    workers) and leaves the table; what still fails stays, with today's reason.
    Each dead letter is replayed at most once, even if a replay is interrupted.
    """
    if bool(ids) == everything:
        raise click.UsageError("say which dead letters to replay: --id ID (repeatable) or --all")
    with reachable(app.settings.database_url):
        result = replay_dead(app.engine(), app.redis, app.installed(create=False), now_ms=now_ms(),
                             ids=list(ids) if ids else None, reason=reason)
    if fmt == "json":
        click.echo(to_json(result.as_dict()), nl=False)
    elif result.still_failing:
        rows = [row.as_dict() for row in result.still_failing]
        click.echo(render(rows, DEAD_COLUMNS, fmt, title="Still failing"), nl=False)
    still = len(result.still_failing)
    note(f"replayed {plural(result.replayed, 'dead letter')} into the streams; "
         f"{still:,} still {'fails' if still == 1 else 'fail'} and {'stays' if still == 1 else 'stay'}")


@dead.command("purge", short_help="Delete dead letters for good.")
@click.option("--before", type=When(), metavar="WHEN",
              help="Delete dead letters received before WHEN: a duration before now (24h, 7d, 2w) or an ISO "
                   "8601 date or date/time, UTC unless a zone is given (2024-06-01, 2024-06-01T10:00).")
@click.option("--all", "everything", is_flag=True, help="Delete dead letters whatever their date.")
@_reason_option
@format_option
@pass_app
def dead_purge(app: App, before: datetime | None, everything: bool, reason: str | None, fmt: str) -> None:
    """Delete dead letters for good (received before --before, or --all; optionally by --reason)."""
    if (before is not None) == everything:
        raise click.UsageError("say which dead letters to delete: --before WHEN (e.g. 7d, 2024-06-01) "
                               "or --all")
    with reachable(app.settings.database_url):
        purged = purge_dead(app.engine(), before=before, reason=reason)
    if fmt == "json":
        click.echo(to_json({"purged": purged}), nl=False)
    note(f"purged {plural(purged, 'dead letter')}")
