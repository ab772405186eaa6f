"""Faults: Redis at `maxmemory 20mb` with `noeviction`, filled until it refuses events.

Workers must still start and drain (a drain only reads, trims and deletes; its
lease script is flagged allow-oom), which frees the memory; producers must say
exactly what Redis stored while it was full (an import refused part-way reports
its count and resumes on a re-run), and recover on their own once there is room.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace

import pytest
from redis import Redis

from readrate.events import Emitter
from readrate.events.model import Read, Vote
from readrate.reports.localredis import RedisServer
from readrate.workers.db import make_engine
from helpers import (
    RunningWorker,
    backlog,
    run_cli,
    stream_entries,
    tally,
    wait_for_state,
    wait_until,
)

MAXMEMORY = "20mb"
CHUNK = 2000


@pytest.fixture
def full_redis():
    with RedisServer() as server:
        client = Redis.from_url(server.url)
        client.config_set("maxmemory", MAXMEMORY)
        client.config_set("maxmemory-policy", "noeviction")
        yield server, client
        client.close()


def fill(emitter: Emitter, now_ms: int) -> int:
    """Emit reads and votes until Redis refuses a chunk; how many it stored."""
    stored, round_ = 0, 0
    while True:
        chunk = []
        for i in range(CHUNK):
            n = round_ * CHUNK + i
            article = f"article-{n % 997}"
            if n % 5 == 0:
                chunk.append(Vote(article, now_ms - n, f"voter-{n % 313}", float(1 + n % 5)))
            else:
                chunk.append(Read(article, now_ms - n, f"visitor-{n % 50_000:05d}"))
        took = emitter.emit_many(chunk)
        stored += took
        round_ += 1
        if took < CHUNK:
            return stored
        assert round_ < 2_000, "Redis never filled up"


def test_workers_drain_a_full_redis_and_producers_tell_exactly_what_it_stored(
        full_redis, settings, tmp_path):
    server, client = full_redis
    settings = replace(settings, redis_url=server.url, batch_size=5_000)
    assert run_cli(settings, "db", "upgrade").returncode == 0
    now_ms = time.time_ns() // 1_000_000 - 60_000

    emitter = Emitter.from_settings(settings)
    stored = fill(emitter, now_ms)
    assert stored > 50_000
    assert emitter.stats.emitted == stored and emitter.stats.failed > 0
    assert emitter.read("one-more") is False, "Redis took an event while full"
    assert int(client.info("memory")["used_memory"]) >= int(client.config_get("maxmemory")["maxmemory"]) * 0.95

    # An import refused part-way: the count it reports is what Redis took, and a re-run takes the rest.
    csv = tmp_path / "late.csv"
    csv.write_text("kind,article,at,visitor,rating\n" + "".join(
        f"read,late-{i % 7},{now_ms + i},v-{i},\n" for i in range(3_000)))
    refused = run_cli(settings, "import", str(csv))
    assert refused.returncode == 3, refused.stderr
    assert "run the same command again" in refused.stderr
    assert "Traceback" not in refused.stderr

    entries = stream_entries(client, settings)
    landed = [fields for shard in sorted(entries) for _id, fields in entries[shard]]
    assert sum(1 for f in landed if f[b"a"].startswith(b"late-")) == _stored_count(refused.stderr)

    status = run_cli(settings, "status", "--format", "json", "--check")
    doc = json.loads(status.stdout)
    assert doc["memory"]["share"] >= 0.9
    assert status.returncode == 1
    assert any("Redis memory at" in p for p in doc["check"]["problems"])

    engine = make_engine(settings.database_url)
    try:
        with RunningWorker(settings, tmp_path / "w1.log") as w1, RunningWorker(settings, tmp_path / "w2.log") as w2:
            wait_for_state(engine, tally(landed), timeout=240)
            wait_until(lambda: backlog(client, settings) == 0, timeout=60, message="the streams to be trimmed")
            assert w1.alive() and w2.alive(), w1.log()[-2000:] + w2.log()[-2000:]

            # Room again: producers recover by themselves, and the import resumes where it stopped.
            assert emitter.read("after-the-drain", at=now_ms) is True
            again = run_cli(settings, "import", str(csv))
            assert again.returncode == 0, again.stderr
            assert "already stored by an earlier run" in again.stderr or _stored_count(refused.stderr) == 0
            late = [{b"k": b"read", b"a": f"late-{i % 7}".encode(), b"t": str(now_ms + i).encode(),
                     b"v": f"v-{i}".encode()} for i in range(3_000)]
            everything = [f for f in landed if not f[b"a"].startswith(b"late-")] + late + [
                {b"k": b"read", b"a": b"after-the-drain", b"t": str(now_ms).encode()}]
            wait_for_state(engine, tally(everything), timeout=120)
        assert "Traceback" not in (tmp_path / "w1.log").read_text() + (tmp_path / "w2.log").read_text()
    finally:
        engine.dispose()


def _stored_count(stderr: str) -> int:
    """The count in "N events of this run were stored" (0 if the import stored none)."""
    for line in stderr.splitlines():
        if "of this run were stored" in line:
            words = line.split("of this run were stored")[0].split()
            return int(words[-2].replace(",", ""))
    return 0
