"""Scenario 1, Emit: what a page pays per event, and how fast events go in bulk.

Single events: `Emitter.read()` (a page emitter: XADD and doorbell in one pipeline,
a drain job enqueued when the doorbell was newly set) against a bare redis-py
`XADD` of the same fields on its own connection. Calls are timed one by one and
interleaved in blocks of 100 (the order alternating per block), so both sides see
the same noise. Measured twice: with no worker (the doorbell stays rung, so
almost no enqueues: the pure cost) and with a real `readrate worker` draining the prefix
(it clears doorbells, so calls now and then also enqueue a drain job, as on a live
site).

Bulk: `emit_many()` against a bare pipelined XADD loop over the same events,
pre-encoded, in chunks of the same size (rounds alternate, median reported), and
the real `readrate import` CLI on a generated CSV, timed wall clock as the user
waits (Python start-up included; the CLI's own figure is in the raw JSON).
"""

from __future__ import annotations

import csv
import re
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from redis import Redis

from readrate.events.emitter import EVENTS_PER_ROUND_TRIP as CHUNK, Emitter
from readrate.events.clock import now_ms
from readrate.events.model import Read, Vote
from readrate.events.rules import DEFAULT_READ_INTERVAL_MS
from readrate.events.wire import encode

from . import workload
from .harness import (
    Outcome,
    Row,
    at_least,
    below,
    median,
    percentile,
    quiet_heap,
    rate,
    ratio_at_most,
    summary,
)
from .resources import READRATE, Env, env_for

NAME = "emit"
TITLE = "1. Emit"
BLOCK = 100


def sizes(quick: bool) -> dict:
    if quick:
        return {"single": 1_000, "warmup": 200, "many": 20_000, "rounds": 1, "import": 20_000}
    return {"single": 20_000, "warmup": 1_000, "many": 200_000, "rounds": 3, "import": 500_000}


def run(env: Env, quick: bool) -> Outcome:
    n = sizes(quick)
    raw: dict = {"sizes": n}
    rows: list[Row] = []
    for condition, with_worker in (("no worker", False), ("worker draining", True)):
        p50, p99, per_s, fixed_p50, detail = single(env, n["single"], n["warmup"], with_worker)
        raw[f"single read, {condition}"] = detail
        if not with_worker:
            rows.append(Row(f"{TITLE} · single read p50, the installation record followed ({condition})",
                            p50[0], fixed_p50, "µs", "the same emitter with a fixed layout",
                            (ratio_at_most(1.05, "≤ 1.05× fixed layout"),),
                            note="the cost of re-reading {PREFIX}:installation every 2 s"))
        rows += [
            Row(f"{TITLE} · single read p50 ({condition})", p50[0], p50[1], "µs", "bare XADD",
                (ratio_at_most(1.3, "≤ 1.3× bare XADD"),)),
            Row(f"{TITLE} · single read p99 ({condition})", p99[0], p99[1], "µs", "bare XADD",
                (below(1000),)),
            Row(f"{TITLE} · single reads one after another ({condition})", per_s[0], per_s[1], "ev/s",
                "bare XADD"),
        ]
    many, bare, detail = bulk(env, n["many"], n["rounds"])
    raw["emit_many"] = detail
    rows.append(Row(f"{TITLE} · emit_many()", many, bare, "ev/s", "bare pipelined XADD",
                    (at_least(100_000),)))
    imported, detail = import_cli(env, n["import"])
    raw["import"] = detail
    row = Row(f"{TITLE} · `readrate import` (CSV, wall clock)", imported, bare, "ev/s", "bare pipelined XADD",
              (at_least(100_000),), note=f"{n['import']:,} lines; includes the CLI's start-up "
                                         f"({detail['cli_startup_s']:.2f} s for `readrate --version`)")
    if not detail["ok"]:
        row.invalid = True
        row.note += f"; the import did not put every event into Redis: {detail['problem']}"
    rows.append(row)
    return Outcome(rows, raw, __doc__)


def _reads(count: int, seed: int) -> list[tuple[str, str]]:
    events = workload.events(count * 2, seed=seed)
    reads = [(e.article_id, e.visitor or "v") for e in events if isinstance(e, Read)]
    return reads[:count]


def interleaved(calls: Sequence[Callable[..., object]], items: Sequence[tuple],
                block: int = BLOCK) -> list[list[float]]:
    """µs per call of each of `calls` on every item, timed one by one. The calls take turns in blocks of
    `block` items, the order reversed every other block, so each sees the same noise."""
    timings: list[list[float]] = [[] for _ in calls]
    order = list(zip(calls, timings))
    with quiet_heap():
        for n, start in enumerate(range(0, len(items), block)):
            chunk = items[start:start + block]
            for call, into in (order if n % 2 == 0 else order[::-1]):
                for item in chunk:
                    t0 = time.perf_counter_ns()
                    call(*item)
                    into.append((time.perf_counter_ns() - t0) / 1000)
    return timings


def single(env: Env, count: int, warmup: int, with_worker: bool):
    settings = env.settings("emit", env.sqlite_url("emit"))
    workload.prepared_engine(settings).dispose()  # the installation exists, as on a live site
    emitter = Emitter.from_settings(settings)
    # The same page emitter with the layout fixed at construction (no record to follow): the baseline
    # for what following the installation record costs. Its own client, so neither shares a pool.
    fixed = Emitter(Redis.from_url(settings.redis_url, socket_connect_timeout=0.1, socket_timeout=0.25),
                    keys=emitter.keys, scale=emitter.scale)
    bare = Redis.from_url(settings.redis_url)
    keys = settings.keys
    bare_keys = {shard: f"{settings.prefix}:bare:{shard}" for shard in range(settings.shards)}
    pairs = _reads(count + warmup, seed=11)
    targets = [(a, v, bare_keys[keys.shard_of(a)]) for a, v in pairs]
    worker = None
    try:
        if with_worker:
            worker = env.spawn_worker(settings, name="w")
            env.wait_registered(settings, 1, worker)

        def readrate_call(article: str, visitor: str, _key: str) -> None:
            emitter.read(article, visitor)

        def fixed_call(article: str, visitor: str, _key: str) -> None:
            fixed.read(article, visitor)

        def bare_call(article: str, visitor: str, key: str) -> None:
            bare.xadd(key, {"k": "read", "a": article, "t": str(now_ms()), "v": visitor})

        for article, visitor, key in targets[:warmup]:
            readrate_call(article, visitor, key)
            fixed_call(article, visitor, key)
            bare_call(article, visitor, key)
        ours, unfollowed, theirs = interleaved((readrate_call, fixed_call, bare_call), targets[warmup:])
        stats = emitter.stats
    finally:
        if worker is not None:
            env.stop(worker)
        bare.close()
        fixed._redis.close()
        env.clear(settings.prefix)
    detail = {"readrate_us": summary(ours), "fixed_layout_us": summary(unfollowed), "bare_xadd_us": summary(theirs),
              "calls_each": len(ours), "warmup_each": warmup, "emitter_stats": vars(stats).copy(),
              "worker": with_worker}
    return ((percentile(ours, 50), percentile(theirs, 50)), (percentile(ours, 99), percentile(theirs, 99)),
            (rate(len(ours), sum(ours) / 1e6), rate(len(theirs), sum(theirs) / 1e6)),
            percentile(unfollowed, 50), detail)


def bulk(env: Env, count: int, rounds: int):
    settings = env.settings("many", env.sqlite_url("many"))
    redis = Redis.from_url(settings.redis_url, socket_timeout=30)
    keys = settings.keys
    events = list(workload.events(count, seed=12))
    encoded = [(keys.stream(keys.shard_of(e.article_id)), encode(e)) for e in events]
    ours: list[float] = []
    theirs: list[float] = []
    sent_ok = True

    def readrate_round() -> float:
        nonlocal sent_ok
        emitter = Emitter(redis, keys=keys, scale=settings.rating_scale, strict=True)
        started = time.perf_counter()
        sent = emitter.emit_many(events)
        seconds = time.perf_counter() - started
        sent_ok = sent_ok and sent == count
        return rate(count, seconds)

    def bare_round() -> float:
        started = time.perf_counter()
        for start in range(0, len(encoded), CHUNK):
            pipe = redis.pipeline(transaction=False)
            for key, fields in encoded[start:start + CHUNK]:
                pipe.xadd(key, fields)
            pipe.execute()
        return rate(count, time.perf_counter() - started)

    try:
        for i in range(rounds):
            order = ((readrate_round, ours), (bare_round, theirs))
            for measure, into in (order if i % 2 == 0 else order[::-1]):
                with quiet_heap():
                    into.append(measure())
                env.clear(settings.prefix)  # every round starts on empty streams
    finally:
        redis.close()
        env.clear(settings.prefix)
    detail = {"events": count, "rounds": rounds, "chunk": CHUNK, "readrate_ev_s": [round(x) for x in ours],
              "bare_ev_s": [round(x) for x in theirs], "all_sent": sent_ok,
              "votes": sum(isinstance(e, Vote) for e in events)}
    return median(ours), median(theirs), detail


def import_cli(env: Env, count: int):
    settings = env.settings("import", env.sqlite_url("import"))
    path = env.workdir / f"{settings.prefix}.csv"
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["kind", "article", "at", "visitor", "rating"])
        for e in workload.events(count, seed=13):
            if isinstance(e, Vote):
                out.writerow(["vote", e.article_id, e.at_ms, e.voter, int(e.rating)])
            else:
                out.writerow(["read", e.article_id, e.at_ms, e.visitor or "", ""])
    file_bytes = path.stat().st_size
    proc_env = env_for(settings)
    try:
        started = time.perf_counter()
        subprocess.run([*READRATE, "--version"], env=proc_env, capture_output=True, timeout=120, check=True)
        startup_s = time.perf_counter() - started
        started = time.perf_counter()
        done = subprocess.run([*READRATE, "import", str(path)], env=proc_env, capture_output=True, text=True,
                              timeout=1800)
        seconds = time.perf_counter() - started
        in_redis = workload.pending(env.redis, settings)
    finally:
        env.clear(settings.prefix)
        path.unlink(missing_ok=True)
    reported = re.search(r"imported ([\d,]+) events in ([\d.]+) s \(([\d,]+)/s\)", done.stderr)
    problem = ""
    if done.returncode != 0:
        problem = f"exit code {done.returncode}: {done.stderr.strip()[-300:]}"
    elif in_redis != count:
        problem = f"{in_redis:,} entries in Redis, {count:,} lines in the file"
    detail = {"lines": count, "wall_s": round(seconds, 3), "cli_startup_s": round(startup_s, 3),
              "exit_code": done.returncode, "entries_in_redis": in_redis, "ok": not problem,
              "problem": problem,
              "cli_reported_ev_s": int(reported.group(3).replace(",", "")) if reported else None,
              "file_bytes": file_bytes}
    return rate(count, seconds), detail


def distinct_reads(env: Env, count: int, warmup: int) -> dict:
    """Emitter.read() with the read interval on and a new visitor per call (every read stored through the
    repeat script), against a bare XADD and the same emitter with the interval off (scenario 9's emit row)."""
    settings = env.settings("webemit", env.sqlite_url("webemit"), read_interval_ms=DEFAULT_READ_INTERVAL_MS)
    workload.prepared_engine(settings).dispose()  # the installation exists, as on a live site
    emitter = Emitter.from_settings(settings)
    # The same emitter with the interval rule off (a plain XADD and the doorbell) splits what the rule costs
    # from what the emitter's own round trip costs. Each has its own client, so none shares a pool.
    plain = Emitter.from_settings(replace(settings, read_interval_ms=0))
    bare = Redis.from_url(settings.redis_url)
    keys = settings.keys
    popular = [e.article_id for e in workload.events(2 * (count + warmup), seed=32) if isinstance(e, Read)]
    items = [(a, f"web-visitor-{i}", f"{settings.prefix}:bare:{keys.shard_of(a)}")
             for i, a in enumerate(popular[:count + warmup])]

    def readrate_call(article: str, visitor: str, _key: str) -> None:
        emitter.read(article, visitor=visitor)

    def plain_call(article: str, visitor: str, _key: str) -> None:
        plain.read(article, visitor=visitor)

    def bare_call(article: str, visitor: str, key: str) -> None:
        bare.xadd(key, {"k": "read", "a": article, "t": str(now_ms()), "v": visitor})

    try:
        for item in items[:warmup]:
            readrate_call(*item)
            plain_call(*item)
            bare_call(*item)
        before = _command_usec(env.redis)
        ours, no_rule, theirs = interleaved((readrate_call, plain_call, bare_call), items[warmup:])
        redis_us = _per_call(before, _command_usec(env.redis))
        stored = workload.pending(env.redis, settings)
    finally:
        for client in (bare, emitter.redis, plain.redis):
            client.close()
        env.clear(settings.prefix)
    stats = vars(emitter.stats).copy()
    problem = "" if stored == 2 * len(items) and not stats["ignored"] else \
        f"{stored:,} of {2 * len(items):,} reads stored ({stats})"
    return {"readrate_us": summary(ours), "interval_off_us": summary(no_rule),
            "bare_xadd_us": summary(theirs),
            "calls_each": len(ours), "warmup_each": warmup, "read_interval_ms": emitter.read_interval_ms,
            "emitter_stats": stats, "stored": stored, "problem": problem, "redis_usec_per_call": redis_us,
            "p50_ratio": round(percentile(ours, 50) / percentile(theirs, 50), 3)}


def _command_usec(redis: Redis) -> dict[str, tuple[int, int]]:
    """(calls, µs) Redis spent on each command a read sends (INFO commandstats; on a shared Redis, all of
    everyone's)."""
    stats = redis.info("commandstats")
    return {name: (stats[f"cmdstat_{name}"]["calls"], stats[f"cmdstat_{name}"]["usec"])
            for name in ("evalsha", "xadd", "set") if f"cmdstat_{name}" in stats}


def _per_call(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> dict[str, float]:
    out = {}
    for name, (calls, usec) in after.items():
        calls_before, usec_before = before.get(name, (0, 0))
        if calls > calls_before:
            out[name] = round((usec - usec_before) / (calls - calls_before), 1)
    return out
