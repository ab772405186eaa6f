"""`readrate dead list|replay|purge` against real workers, Redis and both databases.

Dead letters are made the way production makes them: raw entries XADDed into a
stream and drained by `readrate worker --burst`. Replay is checked end to end —
re-validated with today's rules, re-emitted to the right stream, counted once by
the next drain — including a replay interrupted after its XADDs but before its
database commit.
"""

from __future__ import annotations

from dataclasses import replace

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from conftest import REDIS_URL
from sqlalchemy import func, select, text, update

from readrate.events.clock import now_ms, utc_now
from readrate.workers.db import make_engine
from readrate.events.scale import RatingScale
from readrate.events.settings import Settings
from helpers import counters, run_cli
from readrate.workers.deadletters import list_dead, marker_key, replay_dead
from readrate.workers.schema import rejected_events

HALF_STARS = "0.5-5/0.5"


def widen(settings) -> None:
    """`readrate config set rating-scale 0.5-5/0.5`: the installation takes half stars from now on."""
    result = run_cli(settings, "config", "set", "rating-scale", HALF_STARS, READRATE_RATING_SCALE="")
    assert result.returncode == 0, result.stderr


def drain(settings, **env) -> None:
    result = run_cli(settings, "worker", "--burst", timeout=120, **env)
    assert result.returncode == 0, result.stderr


def dead_rows(engine) -> list:
    with engine.connect() as conn:
        return list(conn.execute(select(rejected_events).order_by(rejected_events.c.id)))


def vote_fields(article: str, rating: str, voter: str = "voter-1", at: int | None = None) -> dict:
    return {"k": "vote", "a": article, "t": str(at or now_ms() - 60_000), "v": voter, "r": rating}


@pytest.fixture
def refused(settings, engine, redis):
    """Half-star votes and others a whole-star installation refused, and a read missing its time."""
    for n, (article, rating) in enumerate([("a-half", "4.5"), ("b-half", "2.5"), ("c-nine", "9"), ("d-abc", "abc")]):
        redis.xadd(settings.keys.stream(settings.keys.shard_of(article)), vote_fields(article, rating, f"voter-{n}"))
    redis.xadd(settings.keys.stream(0), {"k": "read", "a": "e-no-time"})
    drain(settings)
    assert len(dead_rows(engine)) == 5
    return settings


def test_list_shows_dead_letters_newest_first_with_their_reason_and_raw_entry(refused, engine):
    result = run_cli(refused, "dead", "list", "--format", "json")

    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["id"] for r in rows] == sorted((r["id"] for r in rows), reverse=True)
    assert set(rows[0]) == {"id", "shard", "stream_id", "reason", "payload", "received_at"}
    by_article = {json.loads(r["payload"]).get("a"): r for r in rows}
    assert by_article["c-nine"]["reason"].startswith("rating '9' is not on the scale 1-5")
    assert json.loads(by_article["a-half"]["payload"])["r"] == "4.5"
    assert "5 of 5 dead letters shown" in result.stderr


def test_list_filters_by_reason_and_limits_the_rows(refused):
    scale = json.loads(run_cli(refused, "dead", "list", "--reason", "NOT ON THE SCALE", "--format", "json").stdout)
    limited = run_cli(refused, "dead", "list", "--limit", "2", "--format", "csv")

    assert len(scale) == 3
    assert limited.stdout.splitlines()[0] == "id,received_at,shard,stream_id,reason,payload"
    assert len(limited.stdout.splitlines()) == 3
    assert "2 of 5 dead letters shown" in limited.stderr


def test_replay_after_widening_the_scale_re_emits_what_now_passes_and_keeps_what_still_fails(refused, engine, redis):
    widen(refused)
    result = run_cli(refused, "dead", "replay", "--all", "--format", "json", READRATE_RATING_SCALE="")

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["replayed"] == 2 and report["still_failing"] == 3
    left = {json.loads(r.payload).get("a"): r.reason for r in dead_rows(engine)}
    assert set(left) == {"c-nine", "d-abc", "e-no-time"}
    # Today's reason, given with today's scale.
    assert left["c-nine"].startswith("rating '9' is not on the scale 0.5-5/0.5")
    for article in ("a-half", "b-half"):
        stream = refused.keys.stream(refused.keys.shard_of(article))
        assert [f[b"a"] for _i, f in redis.xrange(stream)] == [article.encode()]
    drain(refused, READRATE_RATING_SCALE="")
    assert counters(engine) == {"a-half": (0, 1, 4.5), "b-half": (0, 1, 2.5)}


def test_a_second_replay_replays_nothing_twice(refused, engine, redis):
    widen(refused)
    run_cli(refused, "dead", "replay", "--all", READRATE_RATING_SCALE="")
    again = run_cli(refused, "dead", "replay", "--all", "--format", "json", READRATE_RATING_SCALE="")

    assert json.loads(again.stdout)["replayed"] == 0
    assert sum(redis.xlen(refused.keys.stream(s)) for s in range(refused.shards)) == 2


def test_replay_by_id_replays_only_that_dead_letter(refused, engine, redis):
    wanted = next(r for r in dead_rows(engine) if json.loads(r.payload)["a"] == "b-half")
    widen(refused)

    result = run_cli(refused, "dead", "replay", "--id", str(wanted.id), READRATE_RATING_SCALE="")

    assert result.returncode == 0, result.stderr
    assert "replayed 1 dead letter into the streams; 0 still fail and stay" in result.stderr
    assert wanted.id not in {r.id for r in dead_rows(engine)}
    assert len(dead_rows(engine)) == 4


def test_a_replay_interrupted_after_its_xadd_but_before_its_commit_does_not_emit_again(refused, engine, redis):
    rows = [r for r in list_dead(engine) if json.loads(r.payload).get("a") == "a-half"]
    stream = refused.keys.stream(refused.keys.shard_of("a-half"))
    # What the interrupted replay left behind: the entry re-emitted with its marker, the row not deleted.
    redis.xadd(stream, vote_fields("a-half", "4.5", "voter-0"))
    redis.set(marker_key(refused.keys, rows[0]), 1)

    result = replay_dead(engine, redis, replace(refused, rating_scale=RatingScale.parse(HALF_STARS)), now_ms=now_ms(),
                         ids=[rows[0].id])

    assert result.replayed == 1
    assert redis.xlen(stream) == 1
    assert rows[0].id not in {r.id for r in dead_rows(engine)}


def test_an_entry_cut_short_when_stored_is_not_replayed_and_keeps_its_reason(settings, engine, redis):
    redis.xadd(settings.keys.stream(0), {"k": "read", "a": "x" * (1 << 20), "t": str(now_ms())})
    drain(settings)
    before = dead_rows(engine)

    result = run_cli(settings, "dead", "replay", "--all", "--format", "json")

    assert json.loads(result.stdout)["replayed"] == 0
    assert [r.reason for r in dead_rows(engine)] == [before[0].reason]
    assert "1048576 bytes" in before[0].reason


def test_purge_before_a_date_deletes_only_older_dead_letters(refused, engine):
    oldest = dead_rows(engine)[:2]
    with engine.begin() as conn:
        conn.execute(update(rejected_events).where(rejected_events.c.id.in_([r.id for r in oldest]))
                     .values(received_at=datetime(2020, 1, 1)))

    result = run_cli(refused, "dead", "purge", "--before", "2021-01-01", "--format", "json")

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"purged": 2}
    assert {r.id for r in dead_rows(engine)}.isdisjoint({r.id for r in oldest})
    assert len(dead_rows(engine)) == 3


def age(engine, rows, days: int) -> None:
    with engine.begin() as conn:
        conn.execute(update(rejected_events).where(rejected_events.c.id.in_([r.id for r in rows]))
                     .values(received_at=utc_now() - timedelta(days=days)))


@pytest.mark.parametrize("before", ["7d", "1w", "168h", " 7D "])
def test_purge_before_a_duration_deletes_what_was_received_longer_ago_than_that(refused, engine, before):
    rows = dead_rows(engine)
    age(engine, rows[:2], 30)
    age(engine, rows[2:3], 6)

    result = run_cli(refused, "dead", "purge", "--before", before, "--format", "json")

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"purged": 2}
    assert "purged 2 dead letters" in result.stderr
    assert [r.id for r in dead_rows(engine)] == [r.id for r in rows[2:]]


def test_purge_before_an_iso_time_with_a_zone_takes_it_to_utc(refused, engine):
    rows = dead_rows(engine)
    with engine.begin() as conn:
        conn.execute(update(rejected_events).where(rejected_events.c.id == rows[0].id)
                     .values(received_at=datetime(2024, 6, 1, 9, 59)))
        conn.execute(update(rejected_events).where(rejected_events.c.id == rows[1].id)
                     .values(received_at=datetime(2024, 6, 1, 10, 0)))

    result = run_cli(refused, "dead", "purge", "--before", "2024-06-01T12:00+02:00")

    assert result.returncode == 0, result.stderr
    assert "purged 1 dead letter\n" in result.stderr
    assert rows[0].id not in {r.id for r in dead_rows(engine)}


@pytest.mark.parametrize("before", ["yesterday", "0d", "7x", "2024-13-01"])
def test_purge_before_something_that_is_not_a_time_exits_2_quoting_it(refused, engine, before):
    result = run_cli(refused, "dead", "purge", "--before", before)

    assert result.returncode == 2, result.stderr
    assert repr(before) in result.stderr
    assert "24h, 7d, 2w" in result.stderr, "the message says what is accepted"
    assert len(dead_rows(engine)) == 5


def test_replay_of_an_id_that_does_not_exist_exits_1_naming_it_and_replays_nothing(refused, engine, redis):
    real = dead_rows(engine)[0].id

    missing = run_cli(refused, "dead", "replay", "--id", "999999", READRATE_RATING_SCALE="")
    mixed = run_cli(refused, "dead", "replay", "--id", str(real), "--id", "999998", "--id", "999999",
                    READRATE_RATING_SCALE="")

    assert missing.returncode == 1, missing.stderr
    assert missing.stderr.startswith("Error: no dead letter with id 999999; nothing was replayed")
    assert "replayed 0" not in missing.stderr
    assert mixed.returncode == 1, mixed.stderr
    assert "no dead letters with ids 999998, 999999; nothing was replayed" in mixed.stderr
    assert len(dead_rows(engine)) == 5
    assert sum(redis.xlen(refused.keys.stream(s)) for s in range(refused.shards)) == 0


def test_purge_all_by_reason_and_purge_all(refused, engine):
    by_reason = run_cli(refused, "dead", "purge", "--all", "--reason", "decimal number")
    assert "purged 1 dead letter\n" in by_reason.stderr
    everything = run_cli(refused, "dead", "purge", "--all")
    assert "purged 4 dead letters\n" in everything.stderr
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(rejected_events)) == 0


@pytest.mark.parametrize("args", [("replay",), ("replay", "--all", "--id", "1"), ("purge",),
                                  ("purge", "--all", "--before", "2024-01-01"), ("purge", "--before", "yesterday")])
def test_replay_and_purge_without_saying_which_are_usage_errors(settings, engine, args):
    result = run_cli(settings, "dead", *args)

    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr


def test_an_unreachable_database_exits_3(settings):
    result = run_cli(replace(settings, database_url="postgresql://postgres@127.0.0.1:1/none"), "dead", "list")

    assert result.returncode == 3, result.stderr
    assert "unreachable" in result.stderr


# -- before `readrate db upgrade`, or on a SQLite file that is not there ----------------------

DEAD_COMMANDS = [("list",), ("list", "--format", "json"), ("replay", "--all"), ("replay", "--id", "1"),
                 ("purge", "--all"), ("purge", "--before", "7d")]


def tables(url: str) -> list[str]:
    """The tables of the database at `url`, which is made to exist (a SQLite file) but never upgraded."""
    engine = make_engine(url, create=True)
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                conn.execute(text("CREATE TABLE IF NOT EXISTS unrelated (x INTEGER)"))  # the file exists now
                conn.commit()
                query = "SELECT name FROM sqlite_master WHERE type = 'table'"
            else:
                query = "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            return [r[0] for r in conn.execute(text(query))]
    finally:
        engine.dispose()


@pytest.mark.parametrize("args", DEAD_COMMANDS, ids=" ".join)
def test_dead_commands_before_db_upgrade_exit_1_with_one_line_saying_to_run_it(settings, args):
    assert "rejected_events" not in tables(settings.database_url)

    result = run_cli(settings, "dead", *args)

    assert result.returncode == 1, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "has no readrate tables yet; run `readrate db upgrade`" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert "rejected_events" not in tables(settings.database_url), "a read-only command creates no tables"


@pytest.mark.parametrize("args", DEAD_COMMANDS, ids=" ".join)
def test_dead_commands_on_a_sqlite_file_that_does_not_exist_exit_3_naming_it_and_create_nothing(
        prefix, tmp_path, args):
    path = tmp_path / "typo" / "readrat.db"
    settings = Settings.from_env({}, redis_url=REDIS_URL, database_url=f"sqlite:///{path}", prefix=prefix)

    result = run_cli(settings, "dead", *args)

    assert result.returncode == 3, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert f"no database at {str(path)!r}: the file does not exist" in result.stderr
    assert "Traceback" not in result.stderr
    assert not Path(path).exists() and not path.parent.exists()
