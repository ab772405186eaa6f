"""`readrate emit read|vote`: one event by hand, as a page hook would send it."""

from __future__ import annotations

import click

from readrate.events.clock import ms_to_datetime
from readrate.events.emitter import Emitter
from readrate.events.errors import InvalidEvent
from readrate.events.model import Event, Read
from readrate.events.wire import rating_text

from .app import App, note, pass_app


@click.group(short_help="Emit one read or vote by hand.")
def emit() -> None:
    """Emit one event by hand (as a page hook would)."""


_at_option = click.option("--at", metavar="TIME",
                          help="Event time: ISO 8601 (UTC unless a zone is given) or epoch milliseconds. [default: now]")


def _emit(app: App, make) -> None:
    emitter = Emitter.from_settings(app.installed(), strict=True, redis=app.redis, queue_redis=app.queue_redis)
    try:
        event = make(emitter)
    except InvalidEvent as exc:
        raise click.BadParameter(str(exc)) from None
    emitter.emit_many([event])
    note(f"emitted {describe(event)}")


def describe(event: Event) -> str:
    """An event in words: `a read of 'article-42' by visitor 'v-1' at 2026-12-02 10:00:00.000 UTC`."""
    at = ms_to_datetime(event.at_ms).isoformat(sep=" ", timespec="milliseconds")
    if isinstance(event, Read):
        who = f" by visitor {event.visitor!r}" if event.visitor else ""
        return f"a read of {event.article_id!r}{who} at {at} UTC"
    return f"a vote of {rating_text(event.rating)} on {event.article_id!r} by voter {event.voter!r} at {at} UTC"


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
