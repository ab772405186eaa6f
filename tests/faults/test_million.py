"""Faults at volume: two workers drain 1,000,000 events into PostgreSQL; the totals are exact.

The events come from the seeded generator the demo uses, through `emit_many`;
the oracle is computed from a second run of the same generator. Both workers
run in burst mode at once, competing for shards: each says how many events it
applied, and the two numbers must add up to exactly the number emitted.
"""

from __future__ import annotations

import re
import subprocess
import time


from readrate.events import Emitter
from readrate.events.synthetic import traffic
from helpers import READRATE, assert_same_state, backlog, env_for, offsets, snapshot, tally_events

from .conftest import delete_keys, fault_settings, prepared_engine


EVENTS = 1_000_000
WORKERS = 2


def test_two_workers_drain_a_million_events_with_exact_totals(pg_database_url, redis, tmp_path):
    settings = fault_settings(pg_database_url, batch_size=5_000, lease_ms=2_000)
    engine = prepared_engine(settings)
    start_ms = time.time_ns() // 1_000_000

    def generate():
        return traffic(events=EVENTS, articles=2_000, days=2, now_ms=start_ms, seed=1_000_000)

    try:
        emitter = Emitter(redis, keys=settings.keys, scale=settings.rating_scale, strict=True, enqueue=False)
        assert emitter.emit_many(generate()) == EVENTS
        last_ids = {s: redis.xrevrange(settings.keys.stream(s), count=1)[0][0].decode() for s in range(settings.shards)}
        logs = [open(tmp_path / f"worker-{n}.log", "w+") for n in range(WORKERS)]
        workers = [subprocess.Popen([*READRATE, "worker", "--burst"], env=env_for(settings), stdout=subprocess.DEVNULL,
                                    stderr=log, start_new_session=True) for log in logs]
        try:
            codes = [w.wait(timeout=420) for w in workers]
        finally:
            for w in workers:
                if w.poll() is None:
                    w.kill()
                    w.wait()
        texts = []
        for log in logs:
            log.seek(0)
            texts.append(log.read())
            log.close()
        assert codes == [0] * WORKERS, texts
        drained = [int(re.search(r"drained ([\d,]+) events", t).group(1).replace(",", "")) for t in texts]
        assert sum(drained) == EVENTS, drained
        assert all(n > 0 for n in drained), f"one worker did all the work: {drained}"
        assert backlog(redis, settings) == 0
        assert offsets(engine) == last_ids
        assert_same_state(snapshot(engine), tally_events(generate()))
    finally:
        engine.dispose()
        delete_keys(redis, settings.prefix)
