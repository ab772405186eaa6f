"""Integration: producers that only XADD (a PHP page, `redis-cli`) are counted by a running worker.

These tests speak wire format v2 with a plain redis-py client and nothing from
`events`: the shard count is read from the installation hash, the shard computed
here with zlib's crc32, the fields are spelled out by hand, and no doorbell is
rung and no RQ job enqueued. Only a running `readrate worker` (its sweep) may
pick the entries up.
"""

from __future__ import annotations

import time
import zlib

import pytest
from redis import Redis

from conftest import REDIS_URL
from helpers import RunningWorker, backlog, run_cli, tally, wait_for_listening_worker, wait_for_state

SHARDS = 4


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def stream_key(prefix: str, article: str, shards: int = SHARDS) -> str:
    """`{PREFIX:SHARD}:events` with SHARD = crc32(utf-8 article id) mod shards, as DESIGN.md states the contract."""
    return f"{{{prefix}:{zlib.crc32(article.encode('utf-8')) % shards}}}:events"


def record_shards(plain: Redis, prefix: str) -> int:
    """`HGET {PREFIX}:installation shards`: what a plain producer reads first."""
    return int(plain.hget(f"{{{prefix}}}:installation", "shards"))


@pytest.fixture
def plain():
    client = Redis.from_url(REDIS_URL, decode_responses=True)
    yield client
    client.close()


def xadd_all(plain: Redis, prefix: str, entries: list[dict[str, str]]) -> None:
    shards = record_shards(plain, prefix)
    for fields in entries:
        plain.xadd(stream_key(prefix, fields["a"], shards), fields)


def as_bytes(entries: list[dict[str, str]]):
    return [{k.encode(): v.encode() for k, v in e.items()} for e in entries]


def page_traffic(t: int) -> list[dict[str, str]]:
    """What a PHP page might send: reads with and without visitors, votes, a re-vote, non-ASCII ids."""
    entries = []
    for i, article in enumerate(["article-42", "php/page/7", "Überblick-2024", "article-42"] * 5):
        fields = {"k": "read", "a": article, "t": str(t - i * 60_000)}
        if i % 2:
            fields["v"] = f"visitor-{i}"
        entries.append(fields)
    entries += [
        {"k": "vote", "a": "article-42", "t": str(t - 7_200_000), "v": "user-1001", "r": "4"},
        {"k": "vote", "a": "php/page/7", "t": str(t - 7_100_000), "v": "user-1001", "r": "2"},
        {"k": "vote", "a": "article-42", "t": str(t - 3_600_000), "v": "user-1002", "r": "5"},
        {"k": "vote", "a": "article-42", "t": str(t - 60_000), "v": "user-1001", "r": "1"},  # re-vote
    ]
    return entries


def test_the_readme_shard_example_holds():
    assert stream_key("readrate", "article-42") == "{readrate:2}:events"


def test_events_xadded_by_a_plain_client_are_counted_by_a_running_worker_alone(
    settings, engine, redis, plain, tmp_path
):
    assert settings.shards == SHARDS
    with RunningWorker(settings, tmp_path / "worker.log") as worker:
        wait_for_listening_worker(redis, settings)
        entries = page_traffic(now_ms())

        xadd_all(plain, settings.prefix, entries)

        assert len({stream_key(settings.prefix, e["a"]) for e in entries}) == 3
        wait_for_state(engine, tally(as_bytes(entries)), timeout=120)
        assert worker.alive(), worker.log()
    assert backlog(redis, settings) == 0


def test_entries_xadded_one_at_a_time_while_the_worker_runs_are_all_counted(
    settings, engine, redis, plain, tmp_path
):
    with RunningWorker(settings, tmp_path / "worker.log"):
        wait_for_listening_worker(redis, settings)
        entries = []
        t = now_ms()
        for round_ in range(3):
            more = [{"k": "read", "a": f"article-{n}", "t": str(t - n)} for n in range(round_, 40, 3)]
            xadd_all(plain, settings.prefix, more)
            entries += more
            # Each round waits for the last to be counted, so later XADDs hit shards that were drained.
            wait_for_state(engine, tally(as_bytes(entries)), timeout=120)


def test_entries_xadded_before_the_worker_started_are_counted_when_it_starts(
    settings, engine, redis, plain, tmp_path
):
    assert run_cli(settings, "db", "upgrade").returncode == 0  # the installation exists; no worker yet
    entries = page_traffic(now_ms())
    xadd_all(plain, settings.prefix, entries)
    assert backlog(redis, settings) == len(entries)

    with RunningWorker(settings, tmp_path / "worker.log"):
        wait_for_state(engine, tally(as_bytes(entries)), timeout=120)
