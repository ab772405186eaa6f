"""Scenario 6, Lag: how long an event waits between emit and committed, at a steady 5,000 events/s.

readrate: one real `readrate worker` (not burst) runs on a fresh prefix and a fresh
SQLite database. This process emits workload events stamped "now" at 5,000/s for
30 s (fewer in --quick) in 10 ms ticks of 50 events, each tick one
`Emitter.emit_many()` call (XADDs, doorbells, and a drain job when a doorbell was
newly rung) — page hooks elsewhere would send them one by one, but Redis and the
worker see the same streams.

How "committed" is observed, without relying on stream ids or trimming: lag is
followed on every read of the 64 most popular articles (over half of all
events, on every shard). An article's reads reach the database in the order they
were emitted, so its k-th read is committed once the article's `reads` counter in
`article_stats` reaches k. After every tick the bench reads those 64 counters —
what a report would see — and each newly counted read gets lag = time that read
returned − wall time just before its tick was sent. This errs long by up to one
tick (10 ms) plus the query. Reads still not counted when the grace period after
emitting ends count with the time waited so far (a lower bound) and are reported;
the database's totals are then checked against every event emitted.

Baseline: the naive design at the same rate — one RQ job per event enqueued
(pipelined per tick) for a real RQ SimpleWorker process (`python -m bench.naive`)
on a fresh SQLite database; lag = the job's `ended_at` (after its commit) − the
time its tick was enqueued, for every job. It runs for at most 10 s (a shorter
run means a shorter queue, which flatters the baseline); jobs not finished in the
grace period count with the time waited so far, so its figures are lower bounds.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from collections.abc import Callable
from datetime import timezone

from redis import Redis
from rq.job import Job
from rq.utils import utcparse
from sqlalchemy import select

from readrate.events.emitter import Emitter
from readrate.events.clock import now_ms
from readrate.events.model import Event, Read, Vote
from readrate.events.synthetic import Expected, article_id
from readrate.workers.schema import article_stats

from . import naive, workload
from .harness import Outcome, Row, below, summary
from .resources import Env, env_for

NAME = "lag"
TITLE = "6. Lag"
RATE_EV_S = 5_000
TICK_S = 0.01
PER_TICK = int(RATE_EV_S * TICK_S)
# Lag is followed on the reads of the most popular articles (Zipf: over half of all reads, on every shard).
TRACKED = [article_id(i) for i in range(64)]


def sizes(quick: bool) -> dict:
    if quick:
        return {"seconds": 4, "naive_seconds": 3, "grace_s": 15, "naive_grace_s": 2}
    return {"seconds": 30, "naive_seconds": 10, "grace_s": 30, "naive_grace_s": 5}


def run(env: Env, quick: bool) -> Outcome:
    n = sizes(quick)
    ours = readrate_lag(env, n["seconds"], n["grace_s"])
    theirs = naive_lag(env, n["naive_seconds"], n["naive_grace_s"])
    raw = {"sizes": n, "rate_ev_s": RATE_EV_S, "tick_s": TICK_S, "readrate": ours, "naive": theirs}
    label = "naive RQ job per event" + (", lower bound" if theirs["not_committed"] else "")
    p50 = Row(f"{TITLE} · p50 emit→committed at {RATE_EV_S:,} ev/s", ours["lag_ms"].get("p50"),
              theirs["lag_ms"].get("p50"), "ms", label)
    if theirs["not_committed"]:
        kept = theirs["committed"] / (theirs["seconds_running"] or 1)
        p50.note = (f"the naive design counted {theirs['committed']:,} of {theirs['emitted']:,} events "
                    f"(~{kept:,.0f} ev/s of {RATE_EV_S:,}): its queue and lag grow without bound, so its "
                    f"figures only say how long this run waited")
    p99 = Row(f"{TITLE} · p99 emit→committed at {RATE_EV_S:,} ev/s", ours["lag_ms"].get("p99"),
              theirs["lag_ms"].get("p99"), "ms", label, (below(1000, "< 1,000 ms"),))
    notes = []
    lateness = ours["pacing"]["lateness_ms"].get("max", 0)
    if lateness > 100:
        notes.append(f"this process was itself held up to {lateness:,.0f} ms (2 busy cores), so some ticks "
                     f"went out late, in bursts")
    if ours["achieved_ev_s"] < 0.95 * RATE_EV_S:
        notes.append(f"the emitter reached only {ours['achieved_ev_s']:,.0f} ev/s")
    if ours["not_committed"]:
        notes.append(f"{ours['not_committed']:,} events not committed within {n['grace_s']} s "
                     f"(counted as waited)")
    if ours["problem"]:
        p99.invalid = True
        notes.append(ours["problem"])
    p99.note = "; ".join(notes)
    return Outcome([p50, p99], raw, __doc__)


def templates(count: int) -> list[Event]:
    return list(workload.events(count, seed=21))


def restamp(event: Event, at_ms: int) -> Event:
    if isinstance(event, Vote):
        return Vote(event.article_id, at_ms, event.voter, event.rating)
    return Read(event.article_id, at_ms, event.visitor)


def paced(seconds: float, tick: Callable[[int], None]) -> dict:
    """Call `tick(k)` every TICK_S for `seconds`, on an absolute schedule (late ticks catch up)."""
    ticks = int(seconds / TICK_S)
    late: list[float] = []
    started = time.perf_counter()
    for k in range(ticks):
        delay = started + k * TICK_S - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        else:
            late.append(-delay * 1000)
        tick(k)
    elapsed = time.perf_counter() - started
    return {"ticks": ticks, "seconds": round(elapsed, 3), "late_ticks": len(late),
            "lateness_ms": summary(late) if late else {}}


def readrate_lag(env: Env, seconds: float, grace_s: float) -> dict:
    settings = env.settings("lag", env.sqlite_url("lag"))
    engine = workload.prepared_engine(settings)
    keys = settings.keys
    client = Redis.from_url(settings.redis_url, socket_timeout=5)
    emitter = Emitter(client, keys=keys, scale=settings.rating_scale, strict=True)
    # Emit times of the tracked articles' reads not yet seen counted, oldest first, and the reads seen so far.
    waiting: dict[str, deque] = {a: deque() for a in TRACKED}
    counted = dict.fromkeys(TRACKED, 0)
    lags: list[float] = []
    expected = Expected()
    per_shard = [0] * settings.shards
    source = templates(int(seconds * RATE_EV_S))
    order = 0
    reads = article_stats.c
    query = select(reads.article_id, reads.reads).where(reads.article_id.in_(TRACKED))

    def poll() -> None:
        with engine.connect() as conn:
            rows = conn.execute(query).all()
        seen = time.time()
        for article, total in rows:
            queue = waiting[article]
            for _ in range(min(int(total) - counted[article], len(queue))):
                lags.append((seen - queue.popleft()) * 1000)
            counted[article] = int(total)

    def tick(k: int) -> None:
        nonlocal order
        now = now_ms()
        batch = [restamp(e, now) for e in source[k * PER_TICK:(k + 1) * PER_TICK]]
        sent_at = time.time()
        emitter.emit_many(batch)
        for event in batch:
            if isinstance(event, Read) and event.article_id in waiting:
                waiting[event.article_id].append(sent_at)
            per_shard[keys.shard_of(event.article_id)] += 1
            expected.add(event, order)
            order += 1
        poll()

    worker = env.spawn_worker(settings, name="w")
    try:
        env.wait_registered(settings, 1, worker)
        pacing = paced(seconds, tick)
        deadline = time.monotonic() + grace_s
        while any(waiting.values()) and time.monotonic() < deadline and worker.poll() is None:
            time.sleep(TICK_S)
            poll()
        stopped_at = time.time()
        left = [(stopped_at - t) * 1000 for queue in waiting.values() for t in queue]
        if not left:  # every tracked read is in: wait for the rest of the backlog before checking totals
            wait_for(lambda: workload.pending(env.redis, settings) == 0, grace_s)
        exit_code = env.stop(worker)
        check = workload.verify(engine, workload.expect(expected, order, per_shard)) if not left else {}
    finally:
        env.stop(worker)
        client.close()
        engine.dispose()
        env.clear(settings.prefix)
        env.drop_database(settings.database_url)
    problem = ""
    if check and not check["ok"]:
        problem = f"counts check failed: {check}"
    elif exit_code not in (0, None):
        problem = f"worker exited with {exit_code}: {env.log_of(f'{settings.prefix}-w').strip()[-300:]}"
    all_lags = lags + left
    return {"emitted": order, "achieved_ev_s": round(order / pacing["seconds"]), "pacing": pacing,
            "tracked_articles": len(TRACKED), "tracked_reads": len(all_lags),
            "tracked_share": round(len(all_lags) / max(1, order), 3), "per_shard": per_shard,
            "lag_ms": summary(all_lags), "committed": len(lags), "not_committed": len(left),
            "emitter_stats": vars(emitter.stats).copy(), "check": check, "worker_exit_code": exit_code,
            "problem": problem}


def wait_for(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def naive_lag(env: Env, seconds: float, grace_s: float) -> dict:
    settings = env.settings("naivelag", env.sqlite_url("naivelag"))
    engine = workload.prepared_engine(settings)
    naive.create_table(engine)
    queue = naive.queue(env.redis, settings.prefix)
    sent: list[tuple[str, float]] = []
    source = templates(int(seconds * RATE_EV_S))

    def tick(k: int) -> None:
        now = now_ms()
        batch = [restamp(e, now) for e in source[k * PER_TICK:(k + 1) * PER_TICK]]
        enqueued_at = time.time()
        for job_id in naive.enqueue(queue, settings.database_url, batch, settings.prefix, start=k * PER_TICK,
                                    chunk=PER_TICK):
            sent.append((job_id, enqueued_at))

    name = f"{settings.prefix}-naive"
    worker = env.spawn([sys.executable, "-m", "bench.naive", settings.redis_url, settings.prefix, name],
                       env=env_for(settings), log_name=name)
    try:
        env.wait_registered(settings, 1, worker)
        started_at = time.time()
        pacing = paced(seconds, tick)
        deadline = time.monotonic() + grace_s
        while queue.count and time.monotonic() < deadline and worker.poll() is None:
            time.sleep(0.1)
        stopped_at = time.time()
        env.stop(worker)
        ended = _ended_at(env.redis, [job_id for job_id, _ in sent])
    finally:
        env.stop(worker)
        naive.dispose_engines()
        engine.dispose()
        env.clear(settings.prefix)
        env.drop_database(settings.database_url)
    lags = []
    left = 0
    for (_job_id, enqueued_at), end in zip(sent, ended):
        if end is None:
            left += 1
            lags.append((stopped_at - enqueued_at) * 1000)
        else:
            lags.append((end - enqueued_at) * 1000)
    return {"emitted": len(sent), "achieved_ev_s": round(len(sent) / pacing["seconds"]), "pacing": pacing,
            "lag_ms": summary(lags), "committed": len(sent) - left, "not_committed": left,
            "seconds_running": round(stopped_at - started_at, 3)}


def _ended_at(redis: Redis, job_ids: list[str]) -> list[float | None]:
    out: list[float | None] = []
    for start in range(0, len(job_ids), 5000):
        pipe = redis.pipeline(transaction=False)
        for job_id in job_ids[start:start + 5000]:
            pipe.hget(Job.key_for(job_id), "ended_at")
        for value in pipe.execute():
            out.append(utcparse(value.decode()).replace(tzinfo=timezone.utc).timestamp() if value else None)
    return out
