"""Scenario 8, Redis Cluster: `emit_many` and the drain on a 3-master cluster against one Redis.

A private 3-master Redis Cluster is started on this machine (three `redis-server
--cluster-enabled yes`, no replicas, AOF with fsync every second like the run's own
Redis, joined with `redis-cli --cluster create`); the baseline is the run's single
private Redis. On each side: `Emitter.emit_many()`
of the same workload events (the emitter writes one packed round trip per node
that owns some of the chunk's shards), then one in-process Drainer (what one
worker runs) drains every shard into a fresh SQLite database, and the database's
totals are checked against the events. With a cluster, RQ's queue lives on the
single Redis, as READRATE_QUEUE_URL puts it.

All four nodes share this machine's two cores, so the cluster cannot be faster
here: the rows show what spreading a shard's keys over nodes costs a producer
and a worker per event. A cluster is for memory and CPU beyond one server.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace

from readrate.events.connections import PAGE, WORKER, redis_client, stream_client
from readrate.events.emitter import Emitter
from readrate.events.synthetic import Expected
from readrate.reports.localredis import LocalCluster
from readrate.workers.drain import Drainer

from . import workload
from .harness import Outcome, Row, median, quiet_heap, rate, skipped
from .resources import Env

NAME = "cluster"
TITLE = "8. Redis Cluster"


def sizes(quick: bool) -> dict:
    if quick:
        return {"events": 20_000, "rounds": 1}
    return {"events": 200_000, "rounds": 3}


def run(env: Env, quick: bool) -> Outcome:
    n = sizes(quick)
    raw: dict = {"sizes": n, "workload": workload.DESCRIPTION}
    try:
        cluster = LocalCluster(appendonly=True).start()  # as the run's single Redis: AOF, fsync every second
    except Exception as exc:  # noqa: BLE001 - no cluster here: say why, run the rest
        return Outcome([skipped(f"{TITLE} · emit_many() and drain, 3 masters",
                                f"could not start a 3-master Redis Cluster ({exc})", "ev/s")], raw, __doc__)
    try:
        emitted = {"cluster": [], "single": []}
        drained = {"cluster": [], "single": []}
        ok = True
        for i in range(n["rounds"]):
            order = (("cluster", True), ("single", False))
            for side, on_cluster in (order if i % 2 == 0 else order[::-1]):
                settings = env.settings(f"cl{side[0]}", env.sqlite_url(f"cluster-{side}"))
                if on_cluster:
                    settings = replace(settings, redis_url=cluster.url, cluster=True, queue_url=env.redis_url)
                emit_rate, drain_rate, detail = _round(settings, n["events"])
                emitted[side].append(emit_rate)
                drained[side].append(drain_rate)
                raw.setdefault(side, []).append(detail)
                ok = ok and detail["ok"]
                env.clear(settings.prefix)
                if on_cluster:
                    cluster.clear(settings.prefix)
    finally:
        cluster.stop()
    rows = [
        Row(f"{TITLE} · emit_many(), 3 masters", median(emitted["cluster"]), median(emitted["single"]), "ev/s",
            "one Redis"),
        Row(f"{TITLE} · drain, 1 worker, SQLite, 3 masters", median(drained["cluster"]), median(drained["single"]),
            "ev/s", "one Redis", note=f"{n['events']:,} events, {n['rounds']} round(s) each, medians"),
    ]
    if not ok:
        for row in rows:
            row.invalid = True
            row.note = "the counters did not match the events emitted"
    return Outcome(rows, raw, __doc__)


def _round(settings, count: int) -> tuple[float, float, dict]:
    engine = workload.prepared_engine(settings)
    streams = stream_client(settings.redis_url, WORKER, cluster=settings.cluster)
    queue = redis_client(settings.queue_redis_url, WORKER)
    try:
        events = list(workload.events(count, seed=21))
        emitter = Emitter.from_settings(settings, strict=True, redis=stream_client(settings.redis_url, PAGE,
                                                                                   cluster=settings.cluster),
                                        queue_redis=queue)
        with quiet_heap():
            started = time.perf_counter()
            sent = emitter.emit_many(events)
            emit_s = time.perf_counter() - started
        expected = Expected()
        for order, event in enumerate(events):
            expected.add(event, order)
        backlog = workload.expect(expected, count, [])
        drainer = Drainer(settings, engine=engine, redis=streams, queue_redis=queue, budget_s=math.inf)
        try:
            with quiet_heap():
                started = time.perf_counter()
                for shard in settings.keys.drained:
                    drainer.drain(shard)
                drain_s = time.perf_counter() - started
        finally:
            drainer.reader.close()
        check = workload.verify(engine, backlog)
    finally:
        engine.dispose()
        streams.close()
        queue.close()
    detail = {"emitted": sent, "emit_s": round(emit_s, 3), "drain_s": round(drain_s, 3),
              "entries_drained": drainer.totals.entries, "ok": check["ok"] and sent == count, "check": check}
    return rate(count, emit_s), rate(drainer.totals.entries, drain_s), detail
