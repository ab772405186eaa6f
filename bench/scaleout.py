"""Scenario 7, Scale-out: 1, 2 and 4 real worker processes on the same backlog.

For each worker count the same seeded backlog is filled into staging streams
(untimed), and a fresh database is migrated. That many `readrate worker`
processes start (not burst) and the bench waits until every one is registered
with RQ and idle, so Python start-up is not timed. Then the backlog appears at
once — the staging streams are RENAMEd onto the real ones (O(1)) — and a drain
job per shard is enqueued with its doorbell rung, as a producer would. Timed from
there until every shard's committed offset in `stream_offsets` has reached the
last entry filled into it (the bench polls the database every 20 ms), then the
database's totals are checked, and that the streams were trimmed. The
baseline of each row is the one-worker rate, so the ratio is the speed-up.

What two cores allow: a worker is one Python process, so it uses at most one
core, and two workers at most two — less in practice, because Redis, the
database server and this poller run on the same two cores. Four workers cannot
add CPU; they help only by filling one worker's waits (commits, fsyncs, round
trips) with another's work, and they add lease contention and context switches.
There are four shards and one worker drains a shard at a time, so the busiest
shard (Zipf traffic does not split evenly by crc32) caps the speed-up at
1 ÷ its share of the backlog whatever the worker count. SQLite takes one writer
at a time, so there only the read-decode-aggregate part of a batch overlaps.
"""

from __future__ import annotations

from dataclasses import replace

import time

from sqlalchemy import select

from readrate.events.jobs import drain_queue, enqueue_drain
from readrate.events.wire import DOORBELL_TTL_MS
from readrate.workers.schema import stream_offsets

from . import workload
from .harness import Outcome, Row, rate, skipped
from .resources import Env, Unavailable

NAME = "scaleout"
TITLE = "7. Scale-out"
COUNTS = (1, 2, 4)
LABELS = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
POLL_S = 0.02


def sizes(quick: bool) -> dict:
    # --quick runs PostgreSQL only (the backend several workers are for), to stay within its minute.
    if quick:
        return {"events": 20_000, "backends": ("postgresql",)}
    return {"events": 300_000, "backends": ("postgresql", "sqlite")}


def run(env: Env, quick: bool) -> Outcome:
    n = sizes(quick)
    raw: dict = {"sizes": n, "workload": workload.DESCRIPTION}
    rows = []
    for backend in n["backends"]:
        label = LABELS[backend]
        base = None
        for workers in COUNTS:
            scenario = f"{TITLE} · {workers} worker{'s' if workers > 1 else ''}, {label}"
            try:
                url = env.database_url(backend, "scale")
            except Unavailable as exc:
                rows.append(skipped(scenario, str(exc), "ev/s"))
                continue
            try:
                detail = measure(env, url, n["events"], workers)
            finally:
                env.drop_database(url)
            raw[f"{backend}, {workers} workers"] = detail
            if workers == 1:
                base = detail["ev_s"]
            row = Row(scenario, detail["ev_s"], None if workers == 1 else base, "ev/s",
                      "1 worker" if workers > 1 else "")
            if detail["problem"]:
                row.invalid = True
                row.note = detail["problem"]
            elif workers == COUNTS[-1]:
                busiest = max(detail["backlog"]["per_shard"]) / max(1, n["events"])
                row.note = (f"2 cores, shared with Redis and {label}; the busiest shard holds {busiest:.0%} "
                            f"of the backlog, which caps any speed-up at {1 / busiest:.1f}×")
            rows.append(row)
    return Outcome(rows, raw, __doc__)


def measure(env: Env, url: str, count: int, workers: int) -> dict:
    settings = env.settings(f"scale{workers}w", url)
    staging = replace(settings, prefix=f"{settings.prefix}-staging")
    keys = settings.keys
    engine = workload.prepared_engine(settings)
    processes = []
    try:
        backlog = workload.fill(env.redis, staging, count)
        # Done = every shard's committed offset (what the database says) reached its last entry.
        last_ids = {shard: env.redis.xrevrange(staging.keys.stream(shard), count=1)[0][0].decode()
                    for shard in range(settings.shards) if backlog.per_shard[shard]}
        processes = [env.spawn_worker(settings, name=f"w{i}") for i in range(workers)]
        env.wait_registered(settings, workers, *processes)
        queue = drain_queue(env.redis, keys)
        started = time.perf_counter()
        # The whole backlog appears at once (RENAME is O(1)) and is announced as a producer would announce it.
        pipe = env.redis.pipeline(transaction=True)
        for shard in range(settings.shards):
            pipe.rename(staging.keys.stream(shard), keys.stream(shard))
            pipe.set(keys.doorbell(shard), 1, px=DOORBELL_TTL_MS)
        pipe.execute()
        for shard in range(settings.shards):
            enqueue_drain(queue, shard)
        shard_done_s: dict[int, float] = {}
        offsets = select(stream_offsets.c.shard, stream_offsets.c.last_id)
        deadline = time.monotonic() + 1800
        while len(shard_done_s) < settings.shards:
            with engine.connect() as conn:
                committed = dict(conn.execute(offsets).all())
            now = time.perf_counter() - started
            for shard, last_id in last_ids.items():
                if committed.get(shard) == last_id and shard not in shard_done_s:
                    shard_done_s[shard] = round(now, 3)
            if any(p.poll() is not None for p in processes) or time.monotonic() > deadline:
                break
            time.sleep(POLL_S)
        seconds = time.perf_counter() - started
        check = workload.verify(engine, backlog)
        untrimmed = workload.trimmed(env.redis, settings)
        codes = env.stop_all(processes)
        logs = [env.log_of(f"{settings.prefix}-w{i}") for i in range(workers)]
    finally:
        env.stop_all(processes)
        engine.dispose()
        env.clear(settings.prefix)
    problem = ""
    if len(shard_done_s) < len(last_ids) or any(codes):
        problem = (f"backlog not drained or a worker failed (exit codes {codes}); "
                   f"{' | '.join(log.strip()[-200:] for log in logs)}")
    elif not check["ok"]:
        problem = f"counts wrong: {check}"
    elif untrimmed:
        problem = f"{untrimmed:,} committed entries left untrimmed in Redis"
    return {"workers": workers, "backlog": backlog.as_dict(), "ev_s": round(rate(count, seconds)),
            "seconds": round(seconds, 3), "shard_committed_after_s": shard_done_s,
            "left_in_redis": untrimmed, "exit_codes": codes,
            "check": check, "problem": problem}
