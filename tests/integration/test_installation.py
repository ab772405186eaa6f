"""The installation record: one prefix, one database, one shard count and scale, kept by every process.

Environment variables only seed a new installation; afterwards a process whose
explicit setting differs is refused before it sends or drains anything, a second
installation is refused a database that has one, and `config set` is the only way
to change the record.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import replace

import pytest

from readrate.events import Emitter, Settings
from readrate.events.installation import InstallationMismatch, read_record
from readrate.workers.db import make_engine
from helpers import backlog, counters, install, run_cli

NOT_SET = {"READRATE_SHARDS": "", "READRATE_RATING_SCALE": ""}


def seeded(settings: Settings, **env: str):
    """`readrate db upgrade` with these seeds: the installation is created."""
    result = run_cli(settings, "db", "upgrade", **env)
    assert result.returncode == 0, result.stderr
    return result


def following(settings: Settings) -> Settings:
    """Settings as a process with no READRATE_SHARDS / READRATE_RATING_SCALE sees them."""
    return replace(settings, explicit=frozenset())


def test_db_upgrade_creates_the_record_in_the_database_and_publishes_it_in_redis(settings, redis):
    result = seeded(settings, READRATE_SHARDS="8", READRATE_RATING_SCALE="0.5-5/0.5")

    record = read_record(redis, settings.keys)
    assert (record.shards, record.max_shards, str(record.rating_scale), record.wire) == (8, 8, "0.5-5/0.5", 2)
    assert redis.hgetall(f"{{{settings.prefix}}}:installation") == {
        b"id": record.id.encode(), b"shards": b"8", b"max_shards": b"8", b"rating_scale": b"0.5-5/0.5",
        b"wire": b"2"}
    assert record.id in result.stderr
    shown = run_cli(settings, "config", "show", "--format", "json", **NOT_SET)
    assert shown.returncode == 0, shown.stderr
    doc = json.loads(shown.stdout)
    assert {k: doc[k] for k in ("id", "prefix", "shards", "max_shards", "rating_scale", "wire", "published")} == {
        "id": record.id, "prefix": settings.prefix, "shards": 8, "max_shards": 8, "rating_scale": "0.5-5/0.5",
        "wire": 2, "published": True}


@pytest.mark.parametrize("fmt", ["table", "csv", "markdown"])
def test_config_show_prints_every_field_in_each_format(settings, fmt):
    seeded(settings)
    shown = run_cli(settings, "config", "show", "--format", fmt, **NOT_SET)
    assert shown.returncode == 0, shown.stderr
    for field in ("id", "shards", "max_shards", "rating_scale", "wire"):
        assert field in shown.stdout


@pytest.mark.parametrize(("producer", "worker"), [(8, 4), (4, 8)], ids=["producers-8-workers-4",
                                                                         "producers-4-workers-8"])
def test_processes_whose_shard_count_differs_from_the_record_are_refused_before_anything_is_lost(
        settings, redis, tmp_path, producer, worker):
    seeded(settings, READRATE_SHARDS=str(producer))
    engine = make_engine(settings.database_url)

    # A worker told another shard count refuses to start, naming both values.
    refused = run_cli(settings, "worker", "--burst", READRATE_SHARDS=str(worker))
    assert refused.returncode == 2, refused.stderr
    assert f"READRATE_SHARDS (or --shards) is {worker} but the installation has {producer} shards" in refused.stderr
    # So does a producer: the CLI, and a page's Emitter.
    cli = run_cli(settings, "emit", "read", "a-1", READRATE_SHARDS=str(worker))
    assert cli.returncode == 2 and "READRATE_SHARDS" in cli.stderr
    with pytest.raises(InstallationMismatch, match=f"installation has {producer} shards"):
        Emitter.from_settings(replace(settings, shards=worker, explicit=frozenset({"shards"})), redis=redis)
    assert backlog(redis, replace(settings, shards=max(producer, worker))) == 0

    # Producers and workers that follow the record agree, whatever their environment seeds say elsewhere.
    emitter = Emitter.from_settings(following(settings), redis=redis, strict=True)
    articles = [f"article-{i}" for i in range(200)]
    assert emitter.emit_many([emitter.make_read(a) for a in articles]) == 200
    used = {zlib.crc32(a.encode()) % producer for a in articles}
    assert used == set(range(producer))
    drained = run_cli(settings, "worker", "--burst", **NOT_SET)
    assert drained.returncode == 0, drained.stderr
    assert sum(r for r, _v, _s in counters(engine).values()) == 200
    engine.dispose()


def test_a_second_prefix_on_a_database_that_has_an_installation_is_refused_and_trims_nothing(
        settings, redis, prefix):
    site_a = settings
    site_b = replace(settings, prefix=f"{prefix}-b")
    seeded(site_a)
    # Site B's events wait in its own streams (its record exists in Redis: a worker of B ran elsewhere).
    install(redis, site_b)
    b_emitter = Emitter.from_settings(site_b, redis=redis, strict=True)
    assert b_emitter.emit_many([b_emitter.make_read(f"b-{i}") for i in range(500)]) == 500

    for args in (["worker", "--burst"], ["db", "upgrade"], ["config", "show"]):
        refused = run_cli(site_b, *args)
        assert refused.returncode == 2, (args, refused.stderr)
        assert f"prefix {site_a.prefix!r}" in refused.stderr and f"prefix {site_b.prefix!r}" in refused.stderr
    assert backlog(redis, site_b) == 500, "site B's streams were touched"


def test_a_database_of_no_installation_is_refused_a_prefix_that_another_database_counts(settings, redis, tmp_path):
    seeded(settings)
    other = replace(settings, database_url=f"sqlite:///{tmp_path / 'other.db'}")

    refused = run_cli(other, "worker", "--burst")

    assert refused.returncode == 2, refused.stderr
    assert "already belongs to installation" in refused.stderr


def test_a_redis_that_lost_the_record_gets_it_back_from_the_database(settings, redis):
    seeded(settings)
    record = read_record(redis, settings.keys)
    redis.delete(settings.keys.installation)

    assert run_cli(settings, "worker", "--burst").returncode == 0
    assert read_record(redis, settings.keys) == record


def test_config_set_shards_moves_producers_and_keeps_draining_every_shard_ever_used(settings, redis):
    seeded(settings)
    engine = make_engine(settings.database_url)
    emitter = Emitter.from_settings(following(settings), redis=redis, strict=True)
    assert emitter.emit_many([emitter.make_read(f"a-{i}") for i in range(300)]) == 300

    changed = run_cli(settings, "config", "set", "shards", "16", **NOT_SET)
    assert changed.returncode == 0, changed.stderr
    assert "4 -> 16" in changed.stderr
    record = read_record(redis, settings.keys)
    assert (record.shards, record.max_shards) == (16, 16)
    emitter._follow(force=True)  # what every page does by itself within a few seconds
    assert emitter.emit_many([emitter.make_read(f"a-{i}") for i in range(300)]) == 300
    shrunk = run_cli(settings, "config", "set", "shards", "8", **NOT_SET)
    assert shrunk.returncode == 0, shrunk.stderr
    assert (read_record(redis, settings.keys).shards, read_record(redis, settings.keys).max_shards) == (8, 16)

    drained = run_cli(settings, "worker", "--burst", **NOT_SET)
    assert drained.returncode == 0, drained.stderr
    assert sum(r for r, _v, _s in counters(engine).values()) == 600
    assert backlog(redis, replace(settings, shards=16)) == 0
    engine.dispose()


def test_a_rating_scale_that_stored_votes_lie_off_is_refused_and_one_that_holds_them_is_taken(settings, redis):
    seeded(settings)
    emitter = Emitter.from_settings(following(settings), redis=redis, strict=True)
    emitter.vote("a", 4, voter="u-1")
    emitter.vote("b", 5, voter="u-2")
    assert run_cli(settings, "worker", "--burst", **NOT_SET).returncode == 0

    refused = run_cli(settings, "config", "set", "rating-scale", "1-3", **NOT_SET)
    assert refused.returncode == 1, refused.stderr
    assert "would leave 2 stored vote(s) off the scale: ratings 4 (1), 5 (1)" in refused.stderr
    assert str(read_record(redis, settings.keys).rating_scale) == "1-5"

    taken = run_cli(settings, "config", "set", "rating-scale", "0.5-5/0.5", **NOT_SET)
    assert taken.returncode == 0, taken.stderr
    assert str(read_record(redis, settings.keys).rating_scale) == "0.5-5/0.5"
    emitter._follow(force=True)
    assert emitter.vote("a", "3.5", voter="u-3") is True
    assert run_cli(settings, "worker", "--burst", **NOT_SET).returncode == 0
    engine = make_engine(settings.database_url)
    assert counters(engine)["a"][1:] == (2, 7.5)
    engine.dispose()


@pytest.mark.parametrize("value", ["0", "1025", "many"])
def test_config_set_shards_refuses_a_bad_count_with_exit_2(settings, value):
    seeded(settings)
    result = run_cli(settings, "config", "set", "shards", value, **NOT_SET)
    assert result.returncode == 2
    assert "accepted: 1-1024" in result.stderr
