"""Scenario 3, Ceiling: the fastest any consumer could read and decode the backlog, next to the drain rate.

One backlog of the workload is filled (untimed). The ceiling reads it with bare
`XRANGE` in batches of the drain's batch size, shard by shard, each call starting
after the last id of the one before — the drain's exact access pattern — and
decodes every entry into its fields as text (`{name: value}` of str, what any
consumer needs before it can look at an event), and nothing else. That is the
target's ceiling. It does not trim, so the same backlog is then drained by one
`Drainer` into a fresh SQLite database, and the drain rate is set against it.
Each ceiling is the median of several passes. A second row sets the drain against
reading alone: raw replies, hiredis's lists of bytes, not even made into dicts —
the most any reader could do with XRANGE, though not "decoded".
"""

from __future__ import annotations

import time

from redis import Redis

from readrate.events.settings import Settings

from . import workload
from .harness import Outcome, Row, median, quiet_heap, rate, ratio_at_least
from .resources import Env

NAME = "ceiling"
TITLE = "3. Ceiling"


def sizes(quick: bool) -> dict:
    return {"events": 20_000, "passes": 1} if quick else {"events": 500_000, "passes": 3}


def _raw(response, **_options):
    return response


def read_all(client: Redis, settings: Settings, *, decode: bool) -> int:
    """XRANGE every shard from the start in batches of `batch_size`; returns how many entries came back.

    With `decode`, every entry's fields become text (`client` parses replies into dicts);
    without, the raw replies are all there is (`client` has parsing switched off).
    """
    entries = 0
    for shard in range(settings.shards):
        stream = settings.keys.stream(shard)
        start = "-"
        while True:
            batch = client.xrange(stream, min=start, count=settings.batch_size)
            if not batch:
                break
            if decode:
                for _id, fields in batch:
                    {name.decode(): value.decode() for name, value in fields.items()}
            entries += len(batch)
            last = batch[-1][0]
            start = "(" + (last.decode() if isinstance(last, bytes) else last)
    return entries


def run(env: Env, quick: bool) -> Outcome:
    n = sizes(quick)
    settings = env.settings("ceiling", env.sqlite_url("ceiling"))
    engine = workload.prepared_engine(settings)
    bare = Redis.from_url(settings.redis_url, socket_timeout=60)
    bare.set_response_callback("XRANGE", _raw)
    parsed = Redis.from_url(settings.redis_url, socket_timeout=60)
    raw: dict = {"sizes": n, "batch_size": settings.batch_size, "workload": workload.DESCRIPTION}
    try:
        backlog = workload.fill(env.redis, settings, n["events"])
        passes, raw_passes = [], []
        with quiet_heap():
            for _ in range(n["passes"]):
                started = time.perf_counter()
                got = read_all(parsed, settings, decode=True)
                passes.append(rate(got, time.perf_counter() - started))
                started = time.perf_counter()
                got_raw = read_all(bare, settings, decode=False)
                raw_passes.append(rate(got_raw, time.perf_counter() - started))
        seconds, entries, rejected = workload.drain_in_process(settings, engine)
        check = workload.verify(engine, backlog)
        left = workload.pending(env.redis, settings)
    finally:
        bare.close()
        parsed.close()
        engine.dispose()
        env.clear(settings.prefix)
        env.drop_database(settings.database_url)
    ceiling = median(passes)
    drained = rate(entries, seconds)
    check["problems"] = workload.problems(check, n["events"], entries, left)
    if got != n["events"]:
        check["problems"].append(f"bare XRANGE read {got:,} of {n['events']:,} entries")
    check["ok"] = not check["problems"]
    raw.update(ceiling_passes_ev_s=[round(p) for p in passes], raw_read_passes_ev_s=[round(p) for p in raw_passes],
               drain={"seconds": round(seconds, 3), "entries": entries, "rejected": rejected,
                      "ev_s": round(drained)}, check=check)
    row = Row(f"{TITLE} · drain vs bare XRANGE + decode, SQLite", drained, ceiling, "ev/s",
              "bare XRANGE, decoded", (ratio_at_least(1 / 3, "≥ 1/3 of bare XRANGE"),))
    raw_row = Row(f"{TITLE} · drain vs bare XRANGE, raw replies (not decoded), SQLite", drained,
                  median(raw_passes), "ev/s", "bare XRANGE, raw", ())
    for each in (row, raw_row):
        if not check["ok"]:
            each.invalid = True
            each.note = "; ".join(check["problems"])
    return Outcome([row, raw_row], raw, __doc__)
