"""Faults: a worker with the archive on (READRATE_ARCHIVE) SIGKILLed again and again while events flow.

A producer XADDs reads and votes (and now and then an entry that breaks the contract)
straight into the streams, as a PHP page would, keeping every stream id Redis gave it.
The worker drains in small batches, so each SIGKILL lands between writing a batch's
archive files and committing the transaction that records them, or in the middle of either.
Afterwards the counters must equal an independent tally, and the archive's recorded
files must hold every counted event exactly once, by (shard, stream id), and nothing else;
`Archive.clean` must then remove every unrecorded file and no recorded one, and
`readrate audit` must find no drift.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import replace

from redis import Redis
from sqlalchemy import select

from readrate.events.model import Read, Vote
from readrate.events.wire import shard_for
from readrate.workers.archive import Archive
from readrate.workers.schema import archive_files, rejected_events
from helpers import (
    MS_PER_DAY,
    archived,
    backlog,
    kill_hard,
    run_cli,
    start_logged_worker,
    stop,
    tally,
    wait_for_state,
    wait_until,
    wire_fields,
    wire_row,
)

KILLS = 4
CHUNK = 500  # events per pipeline: faster than a worker drains in batches of 500, so kills find it busy


class Traffic(threading.Thread):
    """XADDs events until stopped, as a producer without RQ does; keeps every entry's (shard, id, fields)."""

    def __init__(self, redis: Redis, settings, start_ms: int) -> None:
        super().__init__(daemon=True)
        self.redis, self.keys, self.at_ms = redis, settings.keys, start_ms
        self.stored: list[tuple[int, str, dict[bytes, bytes]]] = []
        self.bad: set[tuple[int, str]] = set()
        self.halt = threading.Event()
        self.error: BaseException | None = None

    def events(self, n0: int) -> list[dict[bytes, bytes] | Read | Vote]:
        chunk: list = []
        for n in range(n0, n0 + CHUNK):
            self.at_ms += 97
            article = f"article-{n % 211}"
            if n % 4 == 0:
                chunk.append(Vote(article, self.at_ms, f"voter-{n % 37}", float(1 + n % 5)))
                if n % 100 == 0:  # a re-vote at the very same time: the later entry wins
                    chunk.append(Vote(article, self.at_ms, f"voter-{n % 37}", float(1 + (n + 2) % 5)))
            elif n % 97 == 0:
                chunk.append({b"k": b"read", b"a": article.encode()})  # no time: a dead letter
            else:
                chunk.append(Read(article, self.at_ms, None if n % 3 == 0 else f"visitor-{n % 1000}"))
        return chunk

    def run(self) -> None:
        n = 0
        try:
            while not self.halt.is_set():
                chunk = self.events(n)
                n += CHUNK
                fields = [c if isinstance(c, dict) else wire_fields(c) for c in chunk]
                shards = [shard_for(f[b"a"].decode(), self.keys.shards) for f in fields]
                pipe = self.redis.pipeline(transaction=False)
                for shard, f in zip(shards, fields):
                    pipe.xadd(self.keys.stream(shard), f)
                ids = [i.decode() for i in pipe.execute()]
                for shard, i, f, c in zip(shards, ids, fields, chunk):
                    if isinstance(c, dict):
                        self.bad.add((shard, i))
                    else:
                        self.stored.append((shard, i, f))
                time.sleep(0.005)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc


def recorded_paths(engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.scalars(select(archive_files.c.path)))


def test_sigkilled_archiving_worker_leaves_every_counted_event_in_the_archive_exactly_once(
        settings, engine, redis, tmp_path):
    settings = replace(settings, batch_size=500, lease_ms=1_000)
    root = tmp_path / "archive"
    env = {"READRATE_ARCHIVE": str(root)}
    log = tmp_path / "worker.log"
    # Times from a little before yesterday's midnight UTC (batches span it), 97 ms apart: all in the past.
    midnight = (time.time_ns() // 1_000_000 // MS_PER_DAY - 1) * MS_PER_DAY
    traffic = Traffic(redis, settings, midnight - 20_000 * 97)
    worker = start_logged_worker(settings, log, **env)
    traffic.start()
    kills, behind = 0, []
    try:
        for _ in range(KILLS):
            time.sleep(1.5)
            wait_until(lambda: recorded_paths(engine), timeout=30, message="the worker to archive a batch")
            behind.append(backlog(redis, settings))
            kill_hard(worker)
            assert worker.returncode == -9, log.read_text()[-3000:]
            kills += 1
            worker = start_logged_worker(settings, log, **env)
        time.sleep(1.0)
    finally:
        traffic.halt.set()
        traffic.join(timeout=30)
    assert traffic.error is None, traffic.error
    assert kills == KILLS
    try:
        wait_for_state(engine, tally(f for _, _, f in traffic.stored), timeout=120)
        wait_until(lambda: backlog(redis, settings) == 0, timeout=60, message="every stream to be trimmed")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nbacklog {backlog(redis, settings)}, worker alive "
                             f"{worker.poll() is None}; log:\n{log.read_text()[-4000:]}") from None
    finally:
        code = stop(worker)
    assert code == 0, log.read_text()[-3000:]
    text = log.read_text()
    assert "Traceback" not in text, text[text.index("Traceback") - 300:][:4000]

    # The archive: every counted entry once, by (shard, stream id), with its fields; no dead letter.
    rows = archived(engine, root)
    keys = Counter((r[0], r[1]) for r in rows)
    twice = [k for k, n in keys.items() if n > 1]
    assert not twice, f"{len(twice)} entries archived more than once, e.g. {twice[:5]}"
    expected = {(shard, i): wire_row(shard, i, f) for shard, i, f in traffic.stored}
    missing = expected.keys() - keys.keys()
    extra = keys.keys() - expected.keys()
    assert not missing and not extra, (f"{len(missing)} missing, e.g. {sorted(missing)[:5]}; "
                                       f"{len(extra)} extra, e.g. {sorted(extra)[:5]}")
    assert sorted(rows) == sorted(expected.values())
    assert len(rows) == len(traffic.stored) > 20_000
    with engine.connect() as conn:
        dead = {(r.shard, r.stream_id) for r in conn.execute(select(rejected_events.c.shard,
                                                                    rejected_events.c.stream_id))}
    assert dead == traffic.bad and traffic.bad

    # Files the killed workers wrote but never recorded stay until clean() removes them, and only them.
    archive = Archive(root)
    recorded = set(recorded_paths(engine))
    before = {name for name, _ in archive.on_disk()}
    assert recorded <= before, f"recorded files missing on disk: {sorted(recorded - before)[:5]}"
    removed = archive.clean(engine, older_than_s=0)
    assert set(removed) == before - recorded
    after = {name for name, _ in archive.on_disk()}
    assert after == recorded
    assert not [p for p in root.rglob("*") if p.is_file() and p.relative_to(root).as_posix() not in recorded]

    # Nothing left to drain, and the audit agrees with the counters.
    burst = run_cli(settings, "worker", "--burst", timeout=120, **env)
    assert burst.returncode == 0 and "Traceback" not in burst.stderr, burst.stderr[-3000:]
    audited = run_cli(settings, "audit", timeout=120, **env)
    assert audited.returncode == 0, audited.stdout[-3000:] + audited.stderr[-3000:]
    assert "no drift" in audited.stderr
    print(f"{len(rows)} events in {len(recorded)} files; {len(removed)} unrecorded files removed; "
          f"{len(traffic.bad)} dead letters; backlog at each kill {behind}")


def test_compaction_while_two_workers_drain_loses_and_doubles_nothing(settings, engine, redis, tmp_path):
    """`readrate archive compact` again and again while events flow and two workers archive batches:
    each run swaps a day's files for one merged file in one transaction, while new files for the same
    day keep arriving. Afterwards every counted event is in the archive once and the audit is clean."""
    settings = replace(settings, batch_size=500, lease_ms=1_000)
    root = tmp_path / "archive"
    env = {"READRATE_ARCHIVE": str(root)}
    logs = [tmp_path / "worker-1.log", tmp_path / "worker-2.log"]
    # Times from a little before yesterday's midnight: batches land on two days.
    midnight = (time.time_ns() // 1_000_000 // MS_PER_DAY - 1) * MS_PER_DAY
    traffic = Traffic(redis, settings, midnight - 10_000 * 97)
    workers = [start_logged_worker(settings, log, **env) for log in logs]
    traffic.start()
    compactions = []
    try:
        for _ in range(6):
            time.sleep(1.0)
            wait_until(lambda: len(recorded_paths(engine)) > 1, timeout=30, message="files to compact")
            done = run_cli(settings, "archive", "compact", timeout=120, **env)
            assert done.returncode == 0, done.stderr[-3000:]
            compactions.append(done.stderr.strip())
    finally:
        traffic.halt.set()
        traffic.join(timeout=30)
    assert traffic.error is None, traffic.error
    try:
        wait_for_state(engine, tally(f for _, _, f in traffic.stored), timeout=120)
        wait_until(lambda: backlog(redis, settings) == 0, timeout=60, message="every stream to be trimmed")
    finally:
        codes = [stop(worker) for worker in workers]
    assert codes == [0, 0], [log.read_text()[-3000:] for log in logs]
    assert any(line.startswith("compacted") and not line.startswith("compacted 0") for line in compactions), \
        compactions
    final = run_cli(settings, "archive", "compact", timeout=120, **env)
    assert final.returncode == 0, final.stderr

    rows = archived(engine, root)
    keys = Counter((r[0], r[1]) for r in rows)
    assert not [k for k, n in keys.items() if n > 1], "an event archived twice"
    expected = {(shard, i): wire_row(shard, i, f) for shard, i, f in traffic.stored}
    assert sorted(rows) == sorted(expected.values())
    with engine.connect() as conn:
        days = list(conn.execute(select(archive_files.c.day, archive_files.c.shard)))
    assert len({d for d, _ in days}) == len(days), f"a day with several files after the last compaction: {days}"
    # Every merged-away file is gone from disk; only what the archive records remains.
    assert {name for name, _ in Archive(root).on_disk()} == set(recorded_paths(engine))
    audited = run_cli(settings, "audit", timeout=120, **env)
    assert audited.returncode == 0 and "no drift" in audited.stderr, audited.stdout[-3000:] + audited.stderr
