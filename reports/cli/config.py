"""`readrate config show|set`: the installation record, and the only way to change it."""

from __future__ import annotations

import click

from readrate.events.errors import ConfigError
from readrate.events.installation import read_record
from readrate.events.scale import RatingScale
from readrate.events.urls import redact
from readrate.workers.installation import change, current

from ..render import Column, render, to_json
from .app import App, format_option, note, pass_app

CONFIG_COLUMNS = [Column("setting", "setting"), Column("value", "value")]


@click.group(short_help="Show or change the installation's settings.")
def config() -> None:
    """The installation record: its id, shard count and rating scale.

    READRATE_SHARDS and READRATE_RATING_SCALE only seed a new installation; after
    that the record decides, and `config set` is the way to change it, live.
    """


@config.command("show", short_help="Print the installation record.")
@format_option
@pass_app
def config_show(app: App, fmt: str) -> None:
    """Print the installation record as the database holds it, and whether Redis publishes the same."""
    record = current(app.engine(), app.settings)
    published = read_record(app.redis, app.settings.keys)
    doc = {
        "id": record.id,
        "prefix": app.settings.prefix,
        "shards": record.shards,
        "max_shards": record.max_shards,
        "rating_scale": str(record.rating_scale),
        "wire": record.wire,
        "database": redact(app.settings.database_url),
        "redis": redact(app.settings.redis_url),
        "redis_cluster": app.settings.cluster,
        "queue": redact(app.settings.queue_redis_url),
        "published": published == record,
    }
    if published != record:
        note(f"warning: Redis {'has no copy of' if published is None else 'holds another version of'} the record "
             f"({app.settings.keys.installation}); a worker or `readrate db upgrade` publishes it again")
    if fmt == "json":
        click.echo(to_json(doc), nl=False)
        return
    rows = [{"setting": key, "value": str(value).lower() if isinstance(value, bool) else str(value)}
            for key, value in doc.items()]
    click.echo(render(rows, CONFIG_COLUMNS, fmt, title="Installation"), nl=False)


SETTINGS = ("shards", "rating-scale")


@config.command("set", short_help="Change the shard count or the rating scale, live.")
@click.argument("name", metavar="SETTING", type=click.Choice(SETTINGS))
@click.argument("value")
@pass_app
def config_set(app: App, name: str, value: str) -> None:
    """Set SETTING (shards or rating-scale) to VALUE while traffic flows.

    \b
    readrate config set shards 16
    readrate config set rating-scale 0.5-5/0.5

    Shards: producers switch within a few seconds; events already written to a
    shard stay there and are still drained, so nothing is lost or counted twice.
    Rating scale: refused while stored votes lie off the new scale.
    """
    if name == "shards":
        try:
            shards = int(value)
        except ValueError:
            raise click.BadParameter(f"{value!r} is not a whole number; accepted: 1-1024", param_hint="VALUE") from None
        if not 1 <= shards <= 1024:
            raise click.BadParameter(f"{value!r} is out of range; accepted: 1-1024", param_hint="VALUE")
        before, after = change(app.engine(), app.redis, app.settings, shards=shards)
        note(f"shards: {before.shards} -> {after.shards}; workers drain shards 0-{after.max_shards - 1} "
             f"(every shard ever written to)")
        return
    try:
        scale = RatingScale.parse(value)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="VALUE") from None
    before, after = change(app.engine(), app.redis, app.settings, rating_scale=scale)
    note(f"rating scale: {before.rating_scale} -> {after.rating_scale}")
