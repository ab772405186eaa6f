"""`readrate db upgrade`: the database migrations this version ships."""

from __future__ import annotations

import click

from readrate.workers.db import current_revision, head_revision, reachable, upgrade
from readrate.workers.installation import establish

from .app import App, note, pass_app


@click.group(short_help="Database migrations and the installation record.")
def db() -> None:
    """Database maintenance: migrations, and the installation record they come with."""


@db.command("upgrade", short_help="Apply the migrations; create and publish the installation record.")
@pass_app
def db_upgrade(app: App) -> None:
    """Apply the database migrations this version of readrate ships (Alembic); creates a SQLite file.

    Then creates the installation record (seeded from READRATE_SHARDS and
    READRATE_RATING_SCALE) if there is none, and publishes it to Redis.
    """
    engine = app.engine(create=True)
    with reachable(app.settings.database_url):
        before = current_revision(engine)
        after = upgrade(engine)
    if before == after:
        note(f"database already at revision {after} (head {head_revision()})")
    else:
        note(f"database upgraded from {before or 'empty'} to {after}")
    installed = establish(engine, app.redis, app.settings)
    note(f"installation {installed.installation_id}: {installed.shards} shards, rating scale {installed.rating_scale}")
