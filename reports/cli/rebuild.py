"""`readrate rebuild`: recompute counters, buckets and votes from the archive, in place or into another database."""

from __future__ import annotations

import getpass

import click

from readrate.events.urls import redact
from readrate.workers.db import make_engine, reachable
from readrate.workers.rebuild import rebuild_in_place, rebuild_into
from readrate.workers.recompute import Rules

from ..audit import archive_root
from ..render import plural
from .app import App, note, pass_app


@click.command("rebuild", short_help="Recompute every counter from the archive (in place or --into).")
@click.option("--into", "into_url", metavar="URL",
              help="Write the rebuilt installation into this empty database (sqlite:///FILE or postgresql://…) "
                   "and leave the live one as it is. [default: replace the live counters in place]")
@click.option("--exclude-voter", multiple=True, metavar="VOTER",
              help="Leave out every vote of VOTER counted so far (a spam voter); repeatable.")
@click.option("--exclude-visitor", multiple=True, metavar="VISITOR",
              help="Leave out every read by VISITOR counted so far; repeatable.")
@click.option("--exclude-article", multiple=True, metavar="ARTICLE",
              help="Leave out every event of ARTICLE counted so far; repeatable.")
@click.option("--reason", metavar="TEXT", help="Why (recorded with the rules; required with an --exclude option).")
@click.option("--by", "actor", metavar="NAME", help="Who is doing this, for the record. [default: your user name]")
@click.option("--yes", is_flag=True, help="Replace the live counters without asking.")
@pass_app
def rebuild(app: App, into_url: str | None, exclude_voter: tuple[str, ...], exclude_visitor: tuple[str, ...],
            exclude_article: tuple[str, ...], reason: str | None, actor: str | None, yes: bool) -> None:
    """Recompute every article's reads, votes, rating sum, hourly and daily buckets and current
    votes from the archive, and write them: in place (one transaction: reports see the old counters
    or the new ones, and drains wait for it), or into another, empty database with --into.

    The --exclude options apply a counting rule to the past: the events counted so far are left
    out, the ones counted afterwards count as usual. The rule is recorded (`readrate moderate log`)
    and kept by audits and later rebuilds. Counters from before the archive started cannot be
    rebuilt: the command refuses while the archive has such a baseline."""
    rules = Rules(frozenset(exclude_voter), frozenset(exclude_visitor), frozenset(exclude_article))
    if rules and not (reason or "").strip():
        raise click.UsageError("--reason is required with --exclude-voter, --exclude-visitor or --exclude-article")
    actor = actor or getpass.getuser()
    settings = app.settings  # the database alone: no Redis needed
    engine = app.engine()
    with reachable(settings.database_url):
        archive = archive_root(engine, settings.archive)
        if into_url is None:
            if not yes:
                click.confirm("Replace every counter of this installation with the archive's recomputation?",
                              abort=True, err=True)
            done = rebuild_in_place(engine, archive, rules, actor=actor, reason=reason or "")
            where = "in place"
        else:
            target = make_engine(into_url, create=True)
            try:
                with reachable(into_url):
                    done = rebuild_into(engine, target, archive, rules, actor=actor, reason=reason or "")
            finally:
                target.dispose()
            where = f"into {redact(into_url)}"
    rows = done.rows or {}
    note(f"rebuilt {where} from {plural(done.events, 'archived event')} in {plural(done.files, 'file')}: "
         f"{plural(rows.get('article_stats', 0), 'article')}, {plural(rows.get('votes', 0), 'current vote')}, "
         f"{plural(rows.get('reads_hourly', 0), 'hourly bucket')}")
