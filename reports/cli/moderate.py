"""`readrate moderate reset|unvote|undo|log`: audited corrections to counters, applied in order by the drain."""

from __future__ import annotations

import getpass
import json
import time

import click
from sqlalchemy import select

from readrate.events.jobs import drain_queue
from readrate.events.wire import shard_for
from readrate.workers.db import reachable
from readrate.workers.moderation import log_rows, queue_operation, undo_target
from readrate.workers.schema import operations

from ..render import Column, render
from .app import App, ExitCode, format_option, note, pass_app

LOG_COLUMNS = [
    Column("id", "id", str, numeric=True),
    Column("created_at", "when (UTC)", lambda v: str(v)[:19]),
    Column("actor", "who"),
    Column("action", "action"),
    Column("article_id", "article"),
    Column("voter_id", "voter"),
    Column("reason", "why"),
    Column("state", "state"),
    Column("effect", "effect"),
]
WAIT_S = 60.0

_reason = click.option("--reason", required=True, metavar="TEXT", help="Why: kept in the log with who and when.")
_by = click.option("--by", "actor", metavar="NAME", help="Who is doing this. [default: your user name]")
_wait = click.option("--wait", is_flag=True,
                     help=f"Wait (up to {WAIT_S:.0f} s) until a worker has applied it, and say what it did.")


@click.group(short_help="Audited corrections: reset, unvote, undo, log.")
def moderate() -> None:
    """Corrections to counters, each recorded with who, when and why (`readrate moderate log`).

    An action travels through the article's event stream, so the workers apply it exactly once, in
    order with the reads and votes around it: what came before it is removed, what comes after
    counts. `undo` puts back exactly what an action removed, and keeps what came later."""


def _queue(app: App, *, action: str, actor: str | None, reason: str, params: dict, article_id: str | None,
           voter_id: str | None, shard: int, wait: bool) -> int:
    engine = app.engine()
    with reachable(app.settings.database_url):
        keys = app.installed(create=False).keys
        op_id = queue_operation(engine, app.redis, keys, action=action, actor=actor or getpass.getuser(),
                                reason=reason, params=params, article_id=article_id, voter_id=voter_id,
                                shard=shard, queue=drain_queue(app.queue_redis, keys))
        note(f"operation {op_id} queued: the workers apply it in order with the events around it")
        if not wait:
            return ExitCode.OK
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                applied = conn.scalar(select(operations.c.applied_at).where(operations.c.id == op_id))
            if applied is not None:
                with engine.connect() as conn:
                    row = next(r for r in log_rows(conn, limit=None) if r["id"] == op_id)
                note(f"operation {op_id} applied: {row['effect']}")
                return ExitCode.OK
            time.sleep(0.2)
    note(f"operation {op_id} is not applied yet after {WAIT_S:.0f} s: is a `readrate worker` running?")
    return ExitCode.FAILURE


@moderate.command("reset", short_help="Set an article's reads and/or votes back to zero.")
@click.argument("article_id", metavar="ARTICLE")
@click.option("--reads", is_flag=True, help="Reset the reads (and their hourly and daily buckets).")
@click.option("--votes", is_flag=True, help="Reset the votes (every voter's vote, the rating, daily buckets).")
@_reason
@_by
@_wait
@pass_app
def moderate_reset(app: App, article_id: str, reads: bool, votes: bool, reason: str, actor: str | None,
                   wait: bool) -> int:
    """Remove every read and/or vote ARTICLE has counted so far (both without --reads or --votes).
    Events after it count as usual; `readrate moderate undo` puts the removed ones back."""
    if not reads and not votes:
        reads = votes = True
    shards = app.installed(create=False).shards
    return _queue(app, action="reset", actor=actor, reason=reason, params={"reads": reads, "votes": votes},
                  article_id=article_id, voter_id=None, shard=shard_for(article_id, shards), wait=wait)


@moderate.command("unvote", short_help="Remove a voter's votes, everywhere or on one article.")
@click.option("--voter", required=True, metavar="VOTER", help="The voter whose votes go.")
@click.option("--article", "article_id", metavar="ARTICLE", help="Only this article's vote. [default: every article]")
@_reason
@_by
@_wait
@pass_app
def moderate_unvote(app: App, voter: str, article_id: str | None, reason: str, actor: str | None,
                    wait: bool) -> int:
    """Remove VOTER's votes counted so far, on every article or on --article: counts, rating sums and
    daily buckets follow. Votes VOTER casts afterwards count as usual."""
    shards = app.installed(create=False).shards
    shard = shard_for(article_id if article_id is not None else voter, shards)
    return _queue(app, action="unvote", actor=actor, reason=reason, params={}, article_id=article_id,
                  voter_id=voter, shard=shard, wait=wait)


@moderate.command("undo", short_help="Put back exactly what an earlier action removed.")
@click.argument("op_id", metavar="OP_ID", type=click.IntRange(1))
@click.option("--reason", default="", metavar="TEXT", help="Why it is undone.")
@_by
@_wait
@pass_app
def moderate_undo(app: App, op_id: int, reason: str, actor: str | None, wait: bool) -> int:
    """Undo operation OP_ID (a reset or an unvote): the reads it removed are added back, and each vote
    it removed comes back unless that voter has voted on the article since (the latest vote wins)."""
    app.installed(create=False)
    with reachable(app.settings.database_url), app.engine().connect() as conn:
        target = undo_target(conn, op_id)
    shard = json.loads(target["params"])["shard"]
    return _queue(app, action="undo", actor=actor, reason=reason or f"undo of operation {op_id}",
                  params={"undoes": op_id}, article_id=target["article_id"], voter_id=target["voter_id"],
                  shard=shard, wait=wait)


@moderate.command("log", short_help="Every action: who, when, what, why, and what it did.")
@click.option("--article", "article_id", metavar="ARTICLE", help="Only the actions on this article.")
@click.option("--limit", type=click.IntRange(1, 1_000_000), default=50, show_default=True, metavar="N",
              help="The newest N actions.")
@format_option
@pass_app
def moderate_log(app: App, article_id: str | None, limit: int, fmt: str) -> None:
    """The operations log, newest first: moderation actions and rebuilds with counting rules, with
    who did them, when, why, whether a worker has applied them, and what they removed or restored."""
    with reachable(app.settings.database_url), app.engine().connect() as conn:
        rows = log_rows(conn, limit=limit, article_id=article_id)
    if rows or fmt != "table":
        click.echo(render(rows, LOG_COLUMNS, fmt, title="Operations"), nl=False)
    if not rows:
        note("no operations yet")
