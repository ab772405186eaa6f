"""The installation record in the database, and the one check every worker and command makes with it.

The database is the record's home; Redis holds a copy under `{PREFIX}:installation`
for producers (events/installation.py). `establish()` is what `readrate db upgrade`,
every worker and every command that writes runs first:

- no record anywhere: create one from the settings' seeds, in the database, then in Redis;
- a record in the database: publish it to Redis (a Redis restarted without persistence
  has lost it), and refuse if Redis holds another installation's;
- the database belongs to another prefix, or Redis to another database: refuse, naming both.

It returns the settings adopted to the record (`Settings.adopt`), which refuses an
explicit shard count or scale that differs from the record's.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime

from redis import Redis
from sqlalchemy import Connection, Engine, func, select, update
from sqlalchemy.exc import IntegrityError

from readrate.events.clock import utc_now
from readrate.events.errors import InvalidEvent, ReadrateError
from readrate.events.installation import (
    Installation,
    InstallationMismatch,
    InstallationMissing,
    publish,
    read_record,
)
from readrate.events.scale import RatingScale
from readrate.events.settings import Settings
from readrate.events.urls import redact
from readrate.events.wire import rating_text

from .db import reachable, writing
from .schema import installation, votes
from .writer import ensure_offsets


def load(conn: Connection) -> tuple[Installation, str] | None:
    """The database's record and the prefix it belongs to, or None for a database of no installation yet."""
    row = conn.execute(select(installation)).first()
    if row is None:
        return None
    record = Installation(row.id, row.shards, row.max_shards, RatingScale.parse(row.rating_scale), row.wire)
    return record, row.prefix


def _insert(conn: Connection, record: Installation, prefix: str, now: datetime) -> None:
    conn.execute(installation.insert().values(
        singleton=1, id=record.id, prefix=prefix, shards=record.shards, max_shards=record.max_shards,
        rating_scale=str(record.rating_scale), wire=record.wire, created_at=now, updated_at=now))


def save(conn: Connection, record: Installation) -> None:
    """Store a changed record (same id) in the open transaction."""
    conn.execute(update(installation).where(installation.c.id == record.id).values(
        shards=record.shards, max_shards=record.max_shards, rating_scale=str(record.rating_scale),
        updated_at=utc_now()))


def establish(engine: Engine, redis: Redis, settings: Settings) -> Settings:
    """Make sure the database and Redis hold this installation's record; the settings adopted to it.

    Raises InstallationMismatch when the database or Redis belongs to another
    installation, or an explicit setting differs from the record.
    """
    keys = settings.keys
    where = redact(settings.database_url)
    with reachable(settings.database_url):
        stored = _load_or_create(engine, redis, settings)
    record, prefix = stored
    if prefix != settings.prefix:
        raise InstallationMismatch(
            f"database {where} belongs to installation {record.id} with prefix {prefix!r}, not to prefix "
            f"{settings.prefix!r}: one database holds one installation's counters. Give prefix "
            f"{settings.prefix!r} a database of its own (DATABASE_URL), or use READRATE_PREFIX={prefix}")
    held = publish(redis, keys, record)
    if held != record.id:
        other = read_record(redis, keys)
        raise InstallationMismatch(
            f"Redis prefix {settings.prefix!r} belongs to {other.describe() if other else f'installation {held}'}, "
            f"but database {where} holds installation {record.id}: point DATABASE_URL at that installation's "
            f"database, or give this one another READRATE_PREFIX")
    adopted = settings.adopt(record)
    with reachable(settings.database_url):
        ensure_offsets(engine, record.max_shards)
    return adopted


def _load_or_create(engine: Engine, redis: Redis, settings: Settings) -> tuple[Installation, str]:
    # Redis first, then the database: a process creating the installation at the same moment publishes
    # only after its insert commits, so a record seen in Redis here is already in this database if it is
    # this database's.
    in_redis = read_record(redis, settings.keys)
    with engine.connect() as conn:
        found = load(conn)
    if found is not None:
        return found
    # No record in the database. One in Redis means another database counts this prefix's events (or this
    # database was replaced): adopting it would split the events between two databases.
    if in_redis is not None:
        raise InstallationMismatch(
            f"Redis prefix {settings.prefix!r} already belongs to {in_redis.describe()}, but database "
            f"{redact(settings.database_url)} has no installation: point DATABASE_URL at that installation's "
            f"database or choose another READRATE_PREFIX. If that installation's database is gone for good, "
            f"delete the record (redis-cli DEL '{settings.keys.installation}') and start again")
    record = settings.seed(uuid.uuid4().hex)
    try:
        with writing(engine.connect()) as conn, conn.begin():
            _insert(conn, record, settings.prefix, utc_now())
    except IntegrityError:
        pass  # another process created it first: theirs is the record
    with engine.connect() as conn:
        found = load(conn)
    assert found is not None
    return found


def current(engine: Engine, settings: Settings) -> Installation:
    """The database's record, checked to belong to `settings.prefix`; InstallationMismatch otherwise."""
    with reachable(settings.database_url), engine.connect() as conn:
        found = load(conn)
    if found is None:
        raise InstallationMissing(f"database {redact(settings.database_url)} has no installation yet: run "
                                  "`readrate db upgrade` (or start a worker) first")
    record, prefix = found
    if prefix != settings.prefix:
        raise InstallationMismatch(f"database {redact(settings.database_url)} belongs to installation {record.id} "
                                   f"with prefix {prefix!r}, not to prefix {settings.prefix!r}")
    return record


def change(engine: Engine, redis: Redis, settings: Settings, *, shards: int | None = None,
           rating_scale: RatingScale | None = None) -> tuple[Installation, Installation]:
    """Change the shard count or the rating scale, live; (before, after).

    Shards: producers move to the new count within a few seconds (they re-read the
    record), and `max_shards` keeps every shard ever written to drained, so no event
    is stranded or counted twice. Scale: refused while stored votes lie off it.
    """
    with reachable(settings.database_url), writing(engine.connect()) as conn, conn.begin():
        found = load(conn)
        if found is None or found[1] != settings.prefix:
            raise InstallationMissing(f"database {redact(settings.database_url)} has no installation for prefix "
                                      f"{settings.prefix!r}: run `readrate db upgrade` first")
        before = found[0]
        after = before
        if shards is not None:
            after = replace(after, shards=shards, max_shards=max(before.max_shards, shards))
        if rating_scale is not None:
            off = _votes_off_scale(conn, rating_scale)
            if off:
                shown = ", ".join(f"{rating:g} ({count:,})" for rating, count in off[:5])
                total = sum(count for _r, count in off)
                raise ScaleRefused(
                    f"rating scale {rating_scale} would leave {total:,} stored vote(s) off the scale: ratings "
                    f"{shown}; accepted: {rating_scale.describe()}. Choose a scale that holds them (e.g. one "
                    f"with a finer step)")
            after = replace(after, rating_scale=rating_scale)
        save(conn, after)
    ensure_offsets(engine, after.max_shards)
    held = publish(redis, settings.keys, after)
    if held != after.id:
        raise InstallationMismatch(f"Redis prefix {settings.prefix!r} belongs to installation {held}, not to this "
                                   f"database's {after.id}; the database was changed, Redis was not")
    return before, after


class ScaleRefused(ReadrateError):
    """Raised when a new rating scale would leave stored votes off the scale."""


def _votes_off_scale(conn: Connection, scale: RatingScale) -> list[tuple[float, int]]:
    rows = conn.execute(select(votes.c.rating, func.count()).group_by(votes.c.rating).order_by(votes.c.rating))
    off = []
    for rating, count in rows:
        try:
            scale.check(rating_text(float(rating)))
        except InvalidEvent:
            off.append((float(rating), int(count)))
    return off
