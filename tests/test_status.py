"""`readrate status`: backlog, lag and offsets per shard, dead letters by rule, workers, failed jobs,
risky Redis settings, `--check` and the exit codes — the pure rules first, then real processes."""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import datetime

import pytest
from redis import Redis
from rq import Queue
from rq.serializers import JSONSerializer
from sqlalchemy import update

from helpers import RunningWorker, run_cli, wait_until
from reports.localredis import RedisServer, free_port
from workers.schema import stream_offsets
from workers.status import (
    ShardStatus,
    Status,
    Thresholds,
    WorkerInfo,
    as_document,
    group_reasons,
    lag_seconds,
    problems,
    reason_rule,
    redis_warnings,
)

SAFE = {"appendonly": "yes", "appendfsync": "everysec", "save": "", "maxmemory-policy": "noeviction"}


def status_of(*, lag_s: float = 0.0, workers: int = 1, failed_recent: int = 0) -> Status:
    shards = [ShardStatus(0, 0, 0.0, "0-0"), ShardStatus(1, 5, lag_s, "10-0", "11-0")]
    return Status(queue="readrate", shards=shards, dead_letters=0, dead_letter_reasons=[],
                  workers=[WorkerInfo(f"w{n}", "idle") for n in range(workers)], failed_jobs=failed_recent,
                  failed_jobs_last_hour=failed_recent, queued_jobs=0, redis_config=SAFE)


# -- pure rules ------------------------------------------------------------------------------------

def test_ratings_refused_for_the_same_rule_are_grouped_whatever_the_value():
    nine = "rating '9' is not on the scale 1-5; accepted: 1, 2, 3, 4, 5"
    seven = "rating '7' is not on the scale 1-5; accepted: 1, 2, 3, 4, 5"
    assert reason_rule(nine) == reason_rule(seven) == "rating '…' is not on the scale 1-5; accepted: 1, 2, 3, 4, 5"


@pytest.mark.parametrize(("one", "other"), [
    ("article id 'xxxx…' is 129 characters; accepted: 1-128", "article id 'yy…' is 300 characters; accepted: 1-128"),
    ("event time 1796762755101 is 864000 s in the future; accepted: at most 300 s ahead",
     "event time 1800000000000 is 999 s in the future; accepted: at most 300 s ahead"),
    ("field 'v' is 1048576 bytes; no field may exceed 576", "field 'a' is 2000 bytes; no field may exceed 576"),
    ("unknown field 'x'; accepted: k, a, t, v, r", "unknown field 'y', 'z'; accepted: k, a, t, v, r"),
    ("article id 'it\\'s\\x00' contains a control character", "article id \"it's\\x1b\" contains a control character"),
])
def test_values_are_taken_out_of_a_reason_but_the_rule_stays(one, other):
    assert reason_rule(one) == reason_rule(other)
    assert "accepted" in reason_rule(one) or "exceed 576" in reason_rule(one) or "control" in reason_rule(one)


def test_different_rules_stay_apart_and_the_most_frequent_comes_first():
    grouped = group_reasons([
        ("rating 'abc' is not a decimal number; accepted: 1, 2, 3, 4, 5", 2),
        ("rating '9' is not on the scale 1-5; accepted: 1, 2, 3, 4, 5", 1),
        ("rating '7' is not on the scale 1-5; accepted: 1, 2, 3, 4, 5", 3),
        ("field 't' is missing", 1),
    ])
    assert grouped == [
        ("rating '…' is not on the scale 1-5; accepted: 1, 2, 3, 4, 5", 4),
        ("rating '…' is not a decimal number; accepted: 1, 2, 3, 4, 5", 2),
        ("field '…' is missing", 1),
    ]


def test_lag_is_the_age_of_the_oldest_unapplied_entry_from_its_stream_id():
    assert lag_seconds("1700000000000-3", now_ms=1700000090500) == 90.5
    assert lag_seconds(None, now_ms=1700000090500) == 0.0
    assert lag_seconds("1700000000000-0", now_ms=1699999999000) == 0.0  # clocks a little apart


def test_a_durable_non_evicting_redis_gets_no_warning():
    assert redis_warnings(SAFE) == []


@pytest.mark.parametrize(("config", "warning"), [
    ({**SAFE, "appendonly": "no", "save": ""}, "no persistence"),
    ({**SAFE, "appendonly": "no", "save": "3600 1 300 100"}, "only by snapshots"),
    ({**SAFE, "appendfsync": "no"}, "without fsync"),
    ({**SAFE, "maxmemory-policy": "allkeys-lru"}, "may evict keys when full (maxmemory-policy allkeys-lru)"),
    (None, "could not read the Redis configuration"),
])
def test_redis_settings_that_risk_events_are_warned_about(config, warning):
    assert any(warning in w for w in redis_warnings(config)), redis_warnings(config)


def test_the_check_passes_within_the_thresholds():
    assert problems(status_of(lag_s=10), Thresholds(max_lag_s=60)) == []


@pytest.mark.parametrize(("status", "thresholds", "problem"), [
    (status_of(lag_s=61), Thresholds(max_lag_s=60), "lag 61.0 s on shard 1 exceeds 60 s"),
    (status_of(failed_recent=1), Thresholds(), "1 drain job(s) failed in the last hour; accepted: at most 0"),
    (status_of(failed_recent=3), Thresholds(max_failed_jobs=2), "3 drain job(s) failed"),
    (status_of(workers=0), Thresholds(), "0 worker(s) alive on queue 'readrate'; accepted: at least 1"),
    (status_of(workers=1), Thresholds(min_workers=2), "1 worker(s) alive"),
])
def test_the_check_fails_naming_each_threshold_passed(status, thresholds, problem):
    assert any(problem in p for p in problems(status, thresholds)), problems(status, thresholds)


def test_the_json_document_has_stable_snake_case_keys():
    doc = as_document(status_of(), [])
    assert list(doc) == ["queue", "backlog", "lag_s", "shards", "dead_letters", "dead_letters_by_reason",
                         "workers_alive", "workers", "queued_jobs", "failed_jobs", "failed_jobs_last_hour",
                         "warnings", "check"]
    assert list(doc["shards"][0]) == ["shard", "backlog", "lag_s", "committed_offset", "oldest_unapplied_id",
                                      "offset_updated_at"]
    assert list(doc["workers"][0]) == ["name", "state", "current_job_id", "last_heartbeat"]
    assert doc["check"] == {"ok": True, "problems": []}
    assert "check" not in as_document(status_of())


# -- through the real command ------------------------------------------------------------------------

@pytest.fixture
def sq(settings):
    """The shared `settings` fixture, on SQLite only (see the parametrize below)."""
    return settings


@pytest.fixture
def sq_engine(engine):
    return engine


# Status reads the same tables on both databases; through the real command, SQLite is enough.
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def status_json(settings, *args, expect: int = 0, **env) -> dict:
    result = run_cli(settings, "status", "--format", "json", *args, **env)
    assert result.returncode == expect, result.stderr
    return json.loads(result.stdout)


def redis_now_ms(redis) -> int:
    seconds, micros = redis.time()
    return seconds * 1000 + micros // 1000


@sqlite_only
def test_backlog_lag_and_offset_per_shard_count_only_entries_after_the_committed_offset(sq, sq_engine, redis):
    stream = sq.keys.stream(2)
    old = redis_now_ms(redis) - 120_000
    ids = [redis.xadd(stream, {"k": "read", "a": f"a-{n}", "t": "1"}, id=f"{old + n}-0").decode()
           for n in range(5)]
    # Two entries applied but not trimmed yet (a drain killed between its commit and XTRIM).
    with sq_engine.begin() as conn:
        conn.execute(update(stream_offsets).where(stream_offsets.c.shard == 2).values(last_id=ids[1]))

    doc = status_json(sq)

    shard = doc["shards"][2]
    assert shard["backlog"] == 3
    assert shard["committed_offset"] == ids[1]
    assert shard["oldest_unapplied_id"] == ids[2]
    assert 120 <= shard["lag_s"] < 180
    assert doc["backlog"] == 3 and doc["lag_s"] == shard["lag_s"]
    assert [s["backlog"] for s in doc["shards"]] == [0, 0, 3, 0]


@sqlite_only
def test_dead_letters_are_counted_in_total_and_by_rule(sq, sq_engine, redis):
    stream = sq.keys.stream(0)
    for rating in ("9", "7", "abc"):
        redis.xadd(stream, {"k": "vote", "a": "article-1", "t": "1", "v": "voter-1", "r": rating})
    redis.xadd(stream, {"k": "read", "a": "article-1"})
    drained = run_cli(sq, "worker", "--burst", timeout=120)
    assert drained.returncode == 0, drained.stderr

    doc = status_json(sq)

    assert doc["dead_letters"] == 4
    assert doc["dead_letters_by_reason"] == [
        {"reason": "rating '…' is not on the scale 1-5; accepted: 1, 2, 3, 4, 5", "count": 2},
        {"reason": "field '…' is missing", "count": 1},
        {"reason": "rating '…' is not a decimal number; accepted: 1, 2, 3, 4, 5", "count": 1},
    ]


@sqlite_only
def test_a_running_worker_is_listed_and_the_check_passes(sq, sq_engine, redis, tmp_path):
    with RunningWorker(sq, tmp_path / "worker.log"):
        wait_until(lambda: status_json(sq)["workers_alive"] == 1, timeout=60, interval=0.5,
                   message="status to list the worker")
        result = run_cli(sq, "status", "--check")
    assert result.returncode == 0, result.stderr
    assert "Workers alive: 1" in result.stdout
    assert "check passed" in result.stderr


@sqlite_only
def test_the_check_fails_with_exit_1_on_lag_and_without_workers(sq, sq_engine, redis):
    redis.xadd(sq.keys.stream(1), {"k": "read", "a": "a", "t": "1"}, id=f"{redis_now_ms(redis) - 600_000}-0")

    doc = status_json(sq, "--check", "--max-lag-s", "300", expect=1)

    problems_found = doc["check"]["problems"]
    assert doc["check"]["ok"] is False
    assert any(p.startswith("lag ") and "exceeds 300 s" in p for p in problems_found)
    assert any("0 worker(s) alive" in p for p in problems_found)
    assert json.loads(run_cli(sq, "status", "--format", "json", "--check", "--max-lag-s", "3600",
                              "--min-workers", "0").stdout)["check"]["ok"] is True


@sqlite_only
def test_failed_drain_jobs_are_counted_and_fail_the_check(sq, sq_engine, redis, tmp_path):
    queue = Queue(sq.keys.queue, connection=redis, serializer=JSONSerializer)
    with RunningWorker(sq, tmp_path / "worker.log"):
        job = queue.enqueue("builtins.print", "refused", job_id=f"{sq.prefix}-not-a-drain")
        wait_until(lambda: job.get_status(refresh=True) == "failed", timeout=60, message="the job to be refused")
        doc = status_json(sq, "--check", expect=1)
    assert doc["failed_jobs"] == doc["failed_jobs_last_hour"] == 1
    assert any("1 drain job(s) failed in the last hour" in p for p in doc["check"]["problems"])
    assert status_json(sq, "--check", "--max-failed-jobs", "1", "--min-workers", "0")["check"]["ok"] is True


@pytest.mark.parametrize(("appendonly", "policy", "expected"), [
    (False, "noeviction", ["no persistence"]),
    (True, "noeviction", []),
    (True, "allkeys-lru", ["maxmemory-policy allkeys-lru"]),
])
@sqlite_only
def test_redis_settings_are_read_from_the_server_and_warned_about(sq, sq_engine, appendonly, policy, expected):
    with RedisServer(appendonly=appendonly) as server:
        with Redis.from_url(server.url) as client:
            client.config_set("maxmemory-policy", policy)
        settings = sq.but(redis_url=server.url)
        result = run_cli(settings, "status", "--format", "json")
    assert result.returncode == 0, result.stderr
    warnings = json.loads(result.stdout)["warnings"]
    assert len(warnings) == len(expected) and all(e in w for e, w in zip(expected, warnings)), warnings
    assert all(f"warning: {w}" in result.stderr for w in warnings)


@sqlite_only
def test_the_table_and_markdown_reports_show_every_section_and_csv_the_shards(sq, sq_engine):
    table = run_cli(sq, "status")
    markdown = run_cli(sq, "status", "--format", "markdown")
    csv = run_cli(sq, "status", "--format", "csv")
    assert table.returncode == markdown.returncode == csv.returncode == 0
    for text in (table.stdout, markdown.stdout):
        for section in ("events not yet counted", "Dead letters: 0", "Workers alive: 0", "Drain jobs: 0 queued"):
            assert section in text
    assert "| shard | backlog |" in markdown.stdout
    lines = csv.stdout.splitlines()
    assert lines[0] == "shard,backlog,lag_s,committed_offset,oldest_unapplied_id,offset_updated_at"
    assert len(lines) == 1 + sq.shards


@pytest.mark.parametrize("unreachable", ["redis", "postgresql", "sqlite-file"])
@sqlite_only
def test_an_unreachable_redis_or_database_exits_3_with_a_clear_message(sq, sq_engine, unreachable, tmp_path):
    settings = {
        "redis": sq.but(redis_url=f"redis://127.0.0.1:{free_port()}/0"),
        "postgresql": sq.but(database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/readrate"),
        "sqlite-file": sq.but(database_url=f"sqlite:///{tmp_path / 'nowhere' / 'readrate.db'}"),
    }[unreachable]
    started = time.monotonic()
    result = run_cli(settings, "status", "--check")
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    assert {"redis": "Redis is unreachable", "postgresql": "database is unreachable",
            "sqlite-file": "does not exist"}[unreachable] in result.stderr
    assert not (tmp_path / "nowhere").exists(), "status must not create a database"
    assert time.monotonic() - started < 60


@sqlite_only
def test_a_database_without_readrate_tables_is_a_failure_saying_how_to_create_them(sq, tmp_path):
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    result = run_cli(sq.but(database_url=f"sqlite:///{empty}"), "status")
    assert result.returncode == 1, result.stderr
    assert "readrate db upgrade" in result.stderr


@sqlite_only
def test_the_last_commit_time_of_each_shard_is_shown(sq, sq_engine):
    doc = status_json(sq)
    assert all(datetime.fromisoformat(s["offset_updated_at"]) for s in doc["shards"])
