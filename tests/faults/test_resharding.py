"""Faults: resharding 4 -> 16 -> 8 while events flow and a worker is SIGKILLed again and again.

A page's Emitter keeps emitting reads and votes the whole time, following the
installation record by itself; `readrate config set shards` changes the count
twice; a worker is killed with SIGKILL five times and started again. Nothing may
be lost or counted twice: the counters must equal a tally of every event the
emitter reported stored, computed independently.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace

from readrate.events import Emitter
from readrate.events.installation import read_record
from readrate.events.model import Read, Vote
from readrate.workers.db import make_engine
from helpers import (
    backlog,
    kill_hard,
    run_cli,
    start_logged_worker,
    stop,
    tally_events,
    wait_for_state,
    wait_until,
)

NOT_SET = {"READRATE_SHARDS": "", "READRATE_RATING_SCALE": ""}
KILLS = 5


class Traffic(threading.Thread):
    """Emits events until stopped; keeps every event Redis stored, in order (distinct times: no ties)."""

    def __init__(self, emitter: Emitter, start_ms: int) -> None:
        super().__init__(daemon=True)
        self.emitter, self.at_ms = emitter, start_ms
        self.stored: list = []
        self.shards_seen: set[int] = set()
        self.halt = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.halt.is_set():
            chunk = []
            for _ in range(200):
                n += 1
                self.at_ms += 1
                article = f"article-{n % 211}"
                if n % 4 == 0:
                    chunk.append(Vote(article, self.at_ms, f"voter-{n % 37}", float(1 + n % 5)))
                else:
                    chunk.append(Read(article, self.at_ms, f"visitor-{n % 1000}"))
            took = self.emitter.emit_many(chunk)
            assert took == len(chunk)
            self.stored.extend(chunk)
            self.shards_seen.add(self.emitter.keys.shards)
            time.sleep(0.01)


def test_resharding_4_16_8_under_traffic_with_five_sigkills_counts_every_event_once(
        settings, redis, tmp_path):
    settings = replace(settings, batch_size=500, lease_ms=1_000)
    assert run_cli(settings, "db", "upgrade").returncode == 0
    engine = make_engine(settings.database_url)
    follow = replace(settings, explicit=frozenset())
    emitter = Emitter.from_settings(follow, redis=redis, strict=True)
    emitter._watch.refresh_s = 0.5  # pages re-read the record every few seconds; quicker here
    traffic = Traffic(emitter, time.time_ns() // 1_000_000 - 3_600_000)
    log = tmp_path / "worker.log"
    worker = start_logged_worker(settings, log, **NOT_SET)
    traffic.start()
    kills = 0
    try:
        plan = ["kill", "reshard:16", "kill", "kill", "reshard:8", "kill", "kill"]
        for step in plan:
            time.sleep(1.5)
            if step == "kill":
                wait_until(lambda: len(traffic.stored) > 0, timeout=30)
                kill_hard(worker)
                assert worker.returncode == -9, log.read_text()[-3000:]
                kills += 1
                worker = start_logged_worker(settings, log, **NOT_SET)
            else:
                shards = step.split(":")[1]
                changed = run_cli(settings, "config", "set", "shards", shards, **NOT_SET)
                assert changed.returncode == 0, changed.stderr
                wait_until(lambda: emitter.keys.shards == int(shards), timeout=10,
                           message=f"the emitter to follow the record to {shards} shards")
        time.sleep(1.0)
    finally:
        traffic.halt.set()
        traffic.join(timeout=30)
    assert kills == KILLS
    assert traffic.shards_seen == {4, 16, 8}
    record = read_record(redis, settings.keys)
    assert (record.shards, record.max_shards) == (8, 16)
    try:
        wait_for_state(engine, tally_events(traffic.stored), timeout=300)
        wait_until(lambda: backlog(redis, replace(settings, shards=16)) == 0, timeout=60,
                   message="every one of the 16 streams to be trimmed")
    finally:
        code = stop(worker)
        engine.dispose()
    assert code == 0, log.read_text()[-3000:]
    text = log.read_text()
    assert "Traceback" not in text, text[text.index("Traceback") - 300:][:4000]
