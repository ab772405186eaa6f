"""The benchmark workload, and the backlog plumbing the throughput scenarios share.

The workload is the issue's: 90% reads and 10% votes over 10,000 Zipf-popular
articles (s = 1.1) and 100,000 voters, 15% of votes re-votes, with event times
spread over the last 24 hours (a day's backlog: more distinct hourly buckets per
batch than live traffic, which is the harder case). It is seeded, so every run
and every scenario drains the same events.

A backlog is filled with bare pipelined XADDs of wire-format entries (setup, not
measured); the drain is verified against a tally of what was filled, so a fast
but wrong drain can never pass for a fast one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

from redis import Redis
from sqlalchemy import Engine, func, select

from readrate.events.clock import now_ms
from readrate.events.model import Event, Read
from readrate.events.settings import Settings
from readrate.events.synthetic import Expected, traffic
from readrate.events.wire import encode
from readrate.workers.db import make_engine, upgrade
from readrate.workers.drain import Drainer
from readrate.workers.schema import article_stats, rejected_events
from readrate.events.connections import CLI, stream_client
from readrate.workers.installation import establish
from readrate.workers.writer import ensure_offsets

from .harness import quiet_heap

ARTICLES = 10_000
VOTERS = 100_000
VOTE_SHARE = 0.10
ZIPF_S = 1.1
DAYS = 1.0
SEED = 5
FILL_CHUNK = 10_000

DESCRIPTION = (f"{1 - VOTE_SHARE:.0%} reads and {VOTE_SHARE:.0%} votes over {ARTICLES:,} Zipf-popular "
               f"articles (s = {ZIPF_S}) and {VOTERS:,} voters, 15% of votes re-votes, event times spread "
               f"over the last {DAYS * 24:.0f} hours, seed {SEED}")


def events(count: int, *, seed: int = SEED, now: int | None = None) -> Iterator[Event]:
    """The workload's first `count` events (the same ones for the same seed)."""
    return traffic(events=count, articles=ARTICLES, days=DAYS, now_ms=now or now_ms(), seed=seed,
                   vote_share=VOTE_SHARE, zipf_s=ZIPF_S, voters=VOTERS)


@dataclass
class Backlog:
    """What was put into the streams, and what the database must hold once it is drained."""

    entries: int = 0
    reads: int = 0
    votes_kept: int = 0
    rating_sum: float = 0.0
    per_shard: list[int] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def fill(redis: Redis, settings: Settings, count: int, *, seed: int = SEED) -> Backlog:
    """XADD `count` workload events into the installation's streams (no doorbells, no jobs)."""
    keys = settings.keys
    streams = [keys.stream(shard) for shard in range(settings.shards)]
    backlog = Backlog(per_shard=[0] * settings.shards)
    expected = Expected()
    pipe = redis.pipeline(transaction=False)
    queued = 0
    for order, event in enumerate(events(count, seed=seed)):
        shard = keys.shard_of(event.article_id)
        pipe.xadd(streams[shard], encode(event))
        backlog.per_shard[shard] += 1
        expected.add(event, order)
        queued += 1
        if queued == FILL_CHUNK:
            pipe.execute()
            queued = 0
    if queued:
        pipe.execute()
    return expect(expected, count, backlog.per_shard)


def expect(expected: Expected, entries: int, per_shard: list[int]) -> Backlog:
    """The Backlog a database must match once `entries` events tallied in `expected` are drained."""
    totals = expected.vote_totals().values()
    return Backlog(entries=entries, reads=sum(expected.reads.values()), votes_kept=sum(n for n, _ in totals),
                   rating_sum=sum(s for _, s in totals), per_shard=per_shard)


def pending(redis: Redis, settings: Settings) -> int:
    """Entries still in the installation's streams (the workers trim what they committed)."""
    pipe = redis.pipeline(transaction=False)
    for shard in range(settings.shards):
        pipe.xlen(settings.keys.stream(shard))
    return sum(pipe.execute())


def trimmed(redis: Redis, settings: Settings, timeout_s: float = 5.0) -> int:
    """Wait (briefly: a worker trims right after it commits) for the streams to be empty; what is left."""
    deadline = time.monotonic() + timeout_s
    while (left := pending(redis, settings)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def prepared_engine(settings: Settings) -> Engine:
    """An engine on the settings' database with migrations applied, the installation record created (in
    the database and in Redis, as `readrate db upgrade` does) and offset rows made (untimed setup)."""
    engine = make_engine(settings.database_url, create=True)
    upgrade(engine)
    redis = stream_client(settings.redis_url, CLI, cluster=settings.cluster)
    try:
        establish(engine, redis, settings)
    finally:
        redis.close()
    ensure_offsets(engine, settings.shards)
    return engine


def drain_in_process(settings: Settings, engine: Engine) -> tuple[float, int, int]:
    """One Drainer (what one worker runs) drains every shard in turn: (seconds, entries, rejected)."""
    redis = Redis.from_url(settings.redis_url, socket_timeout=60)
    drainer = Drainer(settings, engine=engine, redis=redis, budget_s=math.inf)
    try:
        with quiet_heap():
            started = time.perf_counter()
            for shard in range(settings.shards):
                drainer.drain(shard)
            seconds = time.perf_counter() - started
    finally:
        redis.close()
    return seconds, drainer.totals.entries, drainer.totals.rejected


def verify(engine: Engine, backlog: Backlog) -> dict:
    """Compare the database's totals with what was filled; `ok` is False on any difference."""
    s = article_stats.c
    with engine.connect() as conn:
        reads, votes, rating_sum = conn.execute(
            select(func.coalesce(func.sum(s.reads), 0), func.coalesce(func.sum(s.votes), 0),
                   func.coalesce(func.sum(s.rating_sum), 0.0))).one()
        rejected = conn.scalar(select(func.count()).select_from(rejected_events))
    found = {"reads": int(reads), "votes_kept": int(votes), "rating_sum": float(rating_sum),
             "rejected": rejected}
    same_sum = abs(found["rating_sum"] - backlog.rating_sum) < 1e-6 * max(1.0, backlog.rating_sum)
    ok = (found["reads"] == backlog.reads and found["votes_kept"] == backlog.votes_kept and same_sum
          and not rejected)
    return {"ok": ok, "found": found, "expected": {"reads": backlog.reads, "votes_kept": backlog.votes_kept,
                                                   "rating_sum": backlog.rating_sum, "rejected": 0}}


def problems(check: dict, filled: int, drained: int, left: int) -> list[str]:
    """What went wrong in a drain, in words for the table's notes (empty when nothing did)."""
    out = []
    if not check["ok"]:
        out.append(f"database totals {check['found']} differ from the events {check['expected']}")
    if drained != filled:
        out.append(f"drained {drained:,} of {filled:,} entries")
    if left:
        out.append(f"{left:,} entries left in Redis after the drain (not trimmed)")
    return out


def is_read(event: Event) -> bool:
    return isinstance(event, Read)
