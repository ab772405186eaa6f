"""`readrate status` through the real command: backlog, lag and offsets per shard, dead letters by rule,
workers, failed jobs, risky Redis settings, `--check` and the exit codes (the pure rules: unit/test_health.py)."""

from __future__ import annotations

from dataclasses import replace

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
from readrate.reports.localredis import RedisServer, free_port
from readrate.workers.schema import stream_offsets

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
    assert any("0 workers alive" in p for p in problems_found)
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
    assert any("1 drain job failed in the last hour" in p for p in doc["check"]["problems"])
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
        settings = replace(sq, redis_url=server.url)
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
        "redis": replace(sq, redis_url=f"redis://127.0.0.1:{free_port()}/0"),
        "postgresql": replace(sq, database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/readrate"),
        "sqlite-file": replace(sq, database_url=f"sqlite:///{tmp_path / 'nowhere' / 'readrate.db'}"),
    }[unreachable]
    started = time.monotonic()
    result = run_cli(settings, "status", "--check")
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    assert {"redis": "Redis is unreachable", "postgresql": "is unreachable: connection failed",
            "sqlite-file": "does not exist"}[unreachable] in result.stderr
    assert not (tmp_path / "nowhere").exists(), "status must not create a database"
    assert time.monotonic() - started < 60


@sqlite_only
def test_a_database_without_readrate_tables_is_a_failure_saying_how_to_create_them(sq, tmp_path):
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    result = run_cli(replace(sq, database_url=f"sqlite:///{empty}"), "status")
    assert result.returncode == 1, result.stderr
    assert "readrate db upgrade" in result.stderr


@sqlite_only
def test_the_last_commit_time_of_each_shard_is_shown(sq, sq_engine):
    doc = status_json(sq)
    assert all(datetime.fromisoformat(s["offset_updated_at"]) for s in doc["shards"])
