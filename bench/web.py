"""Scenario 9, HTTP collector: `readrate serve` under load, against a K2-style UPDATE per page view.

readrate: real `readrate serve --workers N` processes (N = 1, then 2) on a fresh prefix,
REDIS_URL the run's Redis, DATABASE_URL a fresh PostgreSQL database holding counters for
the workload's 10,000 articles, READRATE_TRUSTED_PROXIES=127.0.0.1. No worker drains
the streams during the runs, so what the streams gained is exactly what the collector
accepted. Load comes from `wrk` (bench/loadgen.py says how it paces and why wrk): every
POST /v1/read carries a new client address in X-Forwarded-For and a desktop browser's
User-Agent, so every read is a distinct visitor and none is a bot or a repeat; articles
follow the workload's Zipf popularity. Per server: a warm-up run, then a closed-loop run
(64 connections) for the peak; accepted reads/s = entries the streams gained ÷ wrk's
duration. Every run is checked: every request answered 2xx, the streams gained one entry
per answered request (plus at most the requests in flight when wrk stopped), and
`/metrics` agrees (the backlog is the streams, no read dropped for any reason, and with
one process, `readrate_collector_requests_total{endpoint="read",outcome="queued"}` is
what that server stored; with two, a scrape sees one process's counts only). The better
worker count is then run paced at half its peak for latency (p50 and p99 from wrk, from
when each request left). Each server also gets a closed-loop run of GET /v1/counters for
a 20-article listing (the 20 most read articles, one fixed URL as every visitor of a
front page asks it; the collector's per-process cache answers most of them); the better
of the worker counts is reported.

Floor: bench/floor_app.py, an ASGI app that reads each request and answers 202, under the
same uvicorn with the collector's better worker count, gets the same peak run: what
uvicorn and httptools cost per request on this machine before any endpoint code. Every
run records the CPU the server's processes used (per second and per request) and how busy
the machine's cores were.

Baseline: bench/k2_endpoint.py, the same Starlette-under-uvicorn server with the same
options, whose POST /v1/read runs `UPDATE articles SET hits = hits + 1 WHERE id = ?`
(its docstring says what makes it fair: pool, prepared statement, rows made beforehand,
the same durability as Redis's fsync every second), on PostgreSQL and on SQLite (WAL).
It gets the same runs: warm-up and peak per worker count, then the better one paced at
the collector's half-peak rate (the same load: when it cannot carry it, its queue grows
for the whole run and its latencies are lower bounds) and, in a full run, at half its
own peak. Its GET /v1/counters runs one SELECT per request. Its oracle: the table's hits
add up to the requests answered (plus at most those in flight when wrk stopped).

Emit: `Emitter.from_settings()` with the read interval on (30 minutes), `.read(article,
visitor=...)` with a new visitor each call, so every read is stored through the repeat
script, against a bare XADD of the same fields on the same Redis, and the same emitter
with the interval off; timed one call at a time and interleaved in blocks as in scenario
1. Redis's own time per command (INFO commandstats) is recorded beside it.

All of it runs on 2 cores, shared by wrk, the server's processes, Redis and the database:
a server process is one Python process, so one core at most, and wrk needs part of a
core to generate the load. The figures are what this machine allows, not a ceiling.
"""

from __future__ import annotations

import itertools
import re
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from readrate.events.model import Read
from readrate.events.settings import Settings
from readrate.events.synthetic import article_id
from readrate.workers.schema import article_stats
from redis import Redis
from sqlalchemy import insert

from . import emit, k2_endpoint, loadgen, workload
from .harness import (
    Outcome,
    Row,
    at_least,
    below,
    ratio_at_least,
    ratio_at_most,
    skipped,
)
from .loadgen import CONNECTIONS_PACED, CONNECTIONS_PEAK, Scripts, Server
from .resources import READRATE, Env, Unavailable, env_for, python_env

NAME = "web"
TITLE = "9. HTTP collector"
ARTICLES = [article_id(i) for i in range(workload.ARTICLES)]
LISTING = "/v1/counters?" + "&".join(f"article={a}" for a in ARTICLES[:20])
LABELS = {"postgresql": "PostgreSQL", "sqlite": "SQLite"}
SHARED = "2 cores shared by wrk, the server, Redis and the database"
# A paced p99 is a lower bound when more than this share of requests left over 1 ms behind their slot.
LATE_SHARE = 0.001


def sizes(quick: bool) -> dict:
    if quick:
        return {"seconds": 2, "warmup_s": 1, "workers": (1, 2), "k2_workers": (1,), "own_half": False,
                "emit": 1_000, "emit_warmup": 200}
    return {"seconds": 10, "warmup_s": 3, "workers": (1, 2), "k2_workers": (1, 2), "own_half": True,
            "emit": 20_000, "emit_warmup": 1_000}


def run(env: Env, quick: bool) -> Outcome:
    n = sizes(quick)
    raw: dict = {"sizes": n}
    problem = loadgen.available()
    if problem:
        return Outcome([skipped(f"{TITLE} · POST /v1/read", problem, "reads/s")], raw, __doc__)
    raw["wrk"] = loadgen.version()
    popular = [e.article_id for e in workload.events(8_000, seed=31) if isinstance(e, Read)][:4096]
    scripts = Scripts(env.workdir, popular)
    ours = raw["readrate"] = collector(env, n, scripts)
    raw["floor"] = floor(env, n, scripts, ours["best_workers"])
    rows = collector_rows(ours, raw["floor"])
    k2_counters = None
    for backend, label in LABELS.items():
        try:
            theirs = raw[f"k2, {backend}"] = k2(env, n, backend, scripts, ours["paced"]["target_per_s"])
        except Unavailable as exc:
            rows.append(skipped(f"{TITLE} · reads/s at peak vs K2, {label}", str(exc), "reads/s"))
            continue
        rows += versus_rows(ours, theirs, label)
        k2_counters = k2_counters or (theirs["counters"]["per_s"], label)
    rows.append(counters_row(ours, k2_counters))
    raw["emit"] = emit.distinct_reads(env, n["emit"], n["emit_warmup"])
    rows.append(emit_row(raw["emit"]))
    return Outcome(rows, raw, __doc__)


# -- rows ---------------------------------------------------------------------------------------------

def collector_rows(ours: dict, bare: dict) -> list[Row]:
    peaks = ", ".join(f"`--workers {w}` {p['counted_per_s']:,.0f}/s" for w, p in ours["peaks"].items())
    best = ours["peaks"][ours["best_workers"]]
    paced = ours["paced"]
    at = f"{paced['target_per_s']:,.0f} reads/s (half the peak)"
    rows = [
        Row(f"{TITLE} · reads accepted/s at peak, POST /v1/read", ours["best_per_s"], None, "reads/s",
            checks=(at_least(10_000),), note=f"{peaks}; {SHARED}"),
        Row(f"{TITLE} · reads/s at peak vs an app that only answers", ours["best_per_s"], bare["per_s"],
            "reads/s", "bare ASGI app, same uvicorn",
            note=f"bench/floor_app.py, `--workers {bare['workers']}`: what uvicorn and httptools alone cost "
                 "here; "
                 f"server CPU per request: readrate {best['server_cpu_us']} µs, the bare app "
                 f"{bare['server_cpu_us']} µs"),
        Row(f"{TITLE} · p50 at {at}", paced["latency_ms"]["p50"], None, "ms"),
        Row(f"{TITLE} · p99 at {at}", paced["latency_ms"]["p99"], None, "ms", checks=(below(20, "< 20 ms"),),
            note="; ".join(filter(None, [_lower_bound(paced),
                                         f"server CPU per request {paced['server_cpu_us']} µs"]))),
    ]
    return _checked(rows, ours["problems"])


def versus_rows(ours: dict, theirs: dict, label: str) -> list[Row]:
    peaks = ", ".join(f"`--workers {w}` {p['counted_per_s']:,.0f}/s" for w, p in theirs["peaks"].items())
    base = f"K2 UPDATE, {label}"
    same = theirs["same_load"]
    at = f"{same['target_per_s']:,.0f} reads/s"
    notes = []
    if same["per_s"] < 0.95 * same["target_per_s"]:
        notes.append(f"K2 carried only {same['per_s']:,.0f} of {at}: its queue grew for the whole run, so "
                     "its latencies are lower bounds")
    else:
        notes.append(_lower_bound(same, "K2's "))
    own = theirs.get("own_half")
    if own:
        notes.append(f"at half its own peak ({own['target_per_s']:,.0f}/s) K2's p50 was "
                     f"{own['latency_ms']['p50']:g} ms and its p99 {own['latency_ms']['p99']:g} ms")
    cpu_us = theirs["peaks"][theirs["best_workers"]]["server_cpu_us"]
    rows = [
        Row(f"{TITLE} · reads/s at peak vs K2, {label}", ours["best_per_s"], theirs["best_per_s"], "reads/s",
            base, (ratio_at_least(3, "≥ 3× K2"),), note=f"K2: {peaks}; server CPU per request {cpu_us} µs"),
        Row(f"{TITLE} · p50 at {at} vs K2, {label}", ours["paced"]["latency_ms"]["p50"],
            same["latency_ms"]["p50"], "ms", base),
        Row(f"{TITLE} · p99 at {at} vs K2, {label}", ours["paced"]["latency_ms"]["p99"],
            same["latency_ms"]["p99"], "ms", base, (ratio_at_most(0.2, "≥ 5× lower than K2"),),
            note="; ".join(filter(None, notes))),
    ]
    return _checked(rows, ours["problems"] + theirs["problems"])


def counters_row(ours: dict, k2_counters: tuple[float, str] | None) -> Row:
    per_s, label = k2_counters or (None, "")
    counts = ", ".join(f"`--workers {w}` {c['per_s']:,.0f}/s" for w, c in ours["listings"].items())
    row = Row(f"{TITLE} · GET /v1/counters, 20-article listing", ours["counters"]["per_s"], per_s, "req/s",
              f"K2, a SELECT per request, {label}" if label else "", (at_least(5_000),),
              note=f"{counts}; server CPU {ours['counters']['server_cpu_us']} µs per request; {SHARED}")
    failed = sum(c["failed"] for c in ours["listings"].values())
    if failed:
        row.invalid = True
        row.note += f"; {failed:,} requests failed or were not 2xx"
    return row


def emit_row(emitted: dict) -> Row:
    redis_us = emitted["redis_usec_per_call"]
    row = Row(f"{TITLE} · Emitter.read() p50, read interval on, every visitor new",
              emitted["readrate_us"]["p50"], emitted["bare_xadd_us"]["p50"], "µs", "bare XADD",
              (ratio_at_most(1.2, "≤ 1.2× bare XADD"),),
              note=f"the same emitter with the interval rule off: p50 {emitted['interval_off_us']['p50']:g} "
                   "µs; "
                   f"p99 {emitted['readrate_us']['p99']:g} µs against {emitted['bare_xadd_us']['p99']:g} µs; "
                   f"Redis's own time per call (INFO commandstats): the rule's script (EVALSHA) "
                   f"{redis_us.get('evalsha', '?')} µs, XADD {redis_us.get('xadd', '?')} µs, "
                   f"the doorbell SET {redis_us.get('set', '?')} µs")
    if emitted["problem"]:
        row.invalid, row.note = True, f"{row.note}; {emitted['problem']}"
    return row


def _checked(rows: list[Row], problems: list[str]) -> list[Row]:
    for row in rows:
        if problems:
            row.invalid = True
            row.note = "; ".join(filter(None, [row.note, *dict.fromkeys(problems)]))
    return rows


def _lower_bound(paced: dict, whose: str = "") -> str:
    if paced["late_share"] <= LATE_SHARE:
        return ""
    return (f"{whose}p99 is a lower bound: {paced['late_share']:.1%} of requests left more than 1 ms behind "
            f"schedule (up to {paced['late_max_ms']:,.0f} ms), every connection busy")


# -- the runs, the same for both servers ----------------------------------------------------------------

def server_runs(env: Env, n: dict, scripts: Scripts, workers: tuple[int, ...],
                launch: Callable[[int], Server], measure: Callable[..., dict],
                paced: Callable[[float], dict[str, float]]) -> dict:
    """For each worker count a server: a warm-up run and a closed-loop run of reads for its peak, then one of
    the 20-article listing. Then, on the count with more reads/s, the paced runs (`paced(best peak)` names
    them and their rates)."""
    servers: dict[int, Server] = {}
    out: dict = {"peaks": {}, "listings": {}}
    peak = {"seconds": n["seconds"], "connections": CONNECTIONS_PEAK}
    try:
        for count in workers:
            server = servers[count] = launch(count)
            measure(server, scripts.peak, **{**peak, "seconds": n["warmup_s"]})
            out["peaks"][count] = measure(server, scripts.peak, **peak)
            out["listings"][count] = server.load(LISTING, scripts.get, **peak).as_dict()
        best = max(out["peaks"], key=lambda count: out["peaks"][count]["counted_per_s"])
        env.stop_all([servers.pop(count).process for count in list(servers) if count != best])
        server = servers[best]
        out["best_workers"], out["best_per_s"] = best, out["peaks"][best]["counted_per_s"]
        for name, per_s in paced(out["best_per_s"]).items():
            out[name] = measure(server, scripts.paced(per_s), seconds=n["seconds"],
                                connections=CONNECTIONS_PACED, per_s=per_s)
        listing = max(out["listings"], key=lambda count: out["listings"][count]["per_s"])
        out["counters"] = {"workers": listing, **out["listings"][listing]}
    finally:
        env.stop_all([server.process for server in servers.values()])
    return out


# -- readrate -----------------------------------------------------------------------------------------

def collector(env: Env, n: dict, scripts: Scripts) -> dict:
    try:
        url = env.pg_url("web")
    except Unavailable:
        url = env.sqlite_url("web")
    settings = env.settings("web", url)
    engine = workload.prepared_engine(settings)
    try:
        with engine.begin() as conn:  # counters for every article, as the workers would have left them
            conn.execute(insert(article_stats), [
                {"article_id": a, "reads": round(1e6 / (i + 1) ** workload.ZIPF_S),
                 "votes": 1 + 5000 // (i + 1), "rating_sum": 4.0 * (1 + 5000 // (i + 1))}
                for i, a in enumerate(ARTICLES)])
    finally:
        engine.dispose()
    proc_env = env_for(settings, READRATE_TRUSTED_PROXIES="127.0.0.1")
    problems: list[str] = []
    checks: list[dict] = []
    # Every run on this installation takes its own client addresses: a visitor seen before would be a repeat.
    bases = itertools.count(0, loadgen.ADDRESSES_PER_RUN)
    stored_by: dict[str, int] = {}  # server URL -> reads it put into the streams

    def launch(workers: int) -> Server:
        return loadgen.start(env, [*READRATE, "serve"], proc_env, workers,
                             f"{settings.prefix}-serve{workers}")

    def measure(server: Server, script: Path, **options) -> dict:
        before = workload.pending(env.redis, settings)
        result = server.load("/v1/read", script, base=next(bases), **options)
        total = _settled(env.redis, settings)
        stored = total - before
        stored_by[server.url] = stored_by.get(server.url, 0) + stored
        if result.failed:
            problems.append(f"{result.failed:,} requests failed or were not 2xx: {result.errors}")
        if not result.requests <= stored <= result.requests + result.connections:
            problems.append(f"{result.requests:,} reads answered but {stored:,} stored")
        checks.append(metrics_check(server, total, stored_by[server.url], problems))
        return {**result.as_dict(), "stored": stored,
                "counted_per_s": round(min(stored, result.requests) / result.seconds, 1)}

    try:
        out = server_runs(env, n, scripts, n["workers"], launch, measure,
                          lambda peak: {"paced": round(peak / 2)})
    finally:
        env.clear(settings.prefix)
        env.drop_database(url)
    out.update(database=url.split(":", 1)[0], metrics_checks=checks, problems=problems)
    return out


def _settled(redis: Redis, settings: Settings, timeout_s: float = 3.0) -> int:
    """The streams' length once the requests still in flight when wrk stopped have landed."""
    last = workload.pending(redis, settings)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = workload.pending(redis, settings)
        if now == last:
            break
        last = now
    return last


def metrics_check(server: Server, stored: int, by_server: int, problems: list[str]) -> dict:
    """What /metrics says, checked against the streams: `stored` in all, `by_server` through this server,
    whose request counts are per process, so checked only when it runs one."""
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    values = {m.group(1): float(m.group(2))
              for m in re.finditer(r"^(readrate_\S+) (\S+)$", text, re.MULTILINE)}
    backlog = values.get("readrate_backlog_events")
    dropped = sum(v for k, v in values.items() if k.startswith("readrate_dropped_events{"))
    prefix = 'readrate_collector_requests_total{endpoint="read"'
    reads = {k[len(prefix):].strip(",}"): v for k, v in values.items() if k.startswith(prefix)}
    if backlog != stored:
        problems.append(f"/metrics says the backlog is {backlog}, the streams hold {stored:,}")
    if dropped:
        problems.append(f"/metrics counts {dropped:,.0f} dropped reads (bot, prefetch, repeat or excluded)")
    if server.workers == 1 and reads != {'outcome="queued"': by_server}:
        problems.append(f"/metrics read outcomes {reads} differ from the {by_server:,} reads this server "
                        "stored")
    return {"workers": server.workers, "backlog": backlog, "dropped": dropped, "read_outcomes": reads,
            "stored": stored, "stored_by_this_server": by_server}


# -- the floor ----------------------------------------------------------------------------------------

def floor(env: Env, n: dict, scripts: Scripts, workers: int) -> dict:
    """The do-nothing app's peak with the collector's better worker count (no data: nothing to check)."""
    server = loadgen.start(env, [sys.executable, "-m", "bench.floor_app"], python_env(), workers,
                           f"floor-{workers}")
    try:
        server.load("/v1/read", scripts.peak, seconds=n["warmup_s"], connections=CONNECTIONS_PEAK)
        peak = server.load("/v1/read", scripts.peak, seconds=n["seconds"], connections=CONNECTIONS_PEAK)
    finally:
        env.stop(server.process)
    return {"workers": workers, **peak.as_dict()}


# -- the K2 baseline ----------------------------------------------------------------------------------

def k2(env: Env, n: dict, backend: str, scripts: Scripts, same_per_s: float) -> dict:
    url = env.database_url(backend, "k2")
    proc_env = python_env(DATABASE_URL=url)
    answered = in_flight = 0
    problems: list[str] = []

    def launch(workers: int) -> Server:
        return loadgen.start(env, [sys.executable, "-m", "bench.k2_endpoint"], proc_env, workers,
                             f"k2-{backend}-{workers}")

    def measure(server: Server, script: Path, **options) -> dict:
        nonlocal answered, in_flight
        result = server.load("/v1/read", script, **options)
        answered += result.requests
        in_flight += result.connections
        if result.failed:
            problems.append(f"K2: {result.failed:,} requests failed or were not 2xx: {result.errors}")
        return {**result.as_dict(), "counted_per_s": round(result.per_s, 1)}

    def paced(peak: float) -> dict[str, float]:
        return {"same_load": same_per_s, **({"own_half": round(peak / 2)} if n["own_half"] else {})}

    try:
        k2_endpoint.create(url, ARTICLES)
        out = server_runs(env, n, scripts, n["k2_workers"], launch, measure, paced)
        hits = k2_endpoint.total_hits(url)
    finally:
        env.drop_database(url)
    # The oracle: every answered request counted once; those in flight when wrk stopped may have counted too.
    if not answered <= hits <= answered + in_flight:
        problems.append(f"K2 counted {hits:,} hits for {answered:,} answered requests")
    out.update(hits=hits, answered=answered, problems=problems)
    return out
