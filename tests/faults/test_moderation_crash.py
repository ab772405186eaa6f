"""Faults: `readrate moderate` resets, unvotes and undos while events flow and the worker is SIGKILLed.

A producer XADDs reads and votes (re-votes among them: later, older, at the very same event
time) on 30 articles straight into the streams, keeping the stream id Redis gave each entry.
Meanwhile the test runs `readrate moderate reset|unvote|undo --wait` as real processes, and
SIGKILLs the worker (batches of 500, archive on) three times, starting it again each time.

At the end, with everything drained and every operation applied, the counters must equal an
independent computation: every shard's entries in stream order, with each operation placed where
it was applied — its own shard's entry (the offsets the worker stored with it, `effect.upto`, name
it) and, for the other shards, the entries counted by then (the same offsets). `readrate audit`
must exit 0.

Undos here always undo the newest action still standing: an undo of an older action while a later
one on the same counters stands is a known audit defect (tests/integration/test_moderation.py).
"""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import replace

import pytest
from redis import Redis
from sqlalchemy import func, select

from .conftest import delete_keys, fault_settings, prepared_engine
from readrate.events.model import Read, Vote
from readrate.events.wire import shard_for
from readrate.workers.schema import article_stats, operations, rejected_events, votes, votes_daily
from helpers import (
    MS_PER_DAY,
    MS_PER_HOUR,
    ModerationModel,
    assert_same_state,
    backlog,
    id_key,
    kill_hard,
    moderate,
    run_cli,
    snapshot,
    start_logged_worker,
    stop,
    wait_until,
)

ARTICLES = [f"article-{n}" for n in range(30)]
VOTERS = [f"voter-{n}" for n in range(12)]
KILLS = 3


class Traffic(threading.Thread):
    """XADDs reads and votes until stopped, as a producer without RQ does; keeps (shard, stream id, event)."""

    def __init__(self, redis: Redis, keys, start_ms: int, seed: int) -> None:
        super().__init__(daemon=True)
        self.redis, self.keys, self.at_ms = redis, keys, start_ms
        self.random = random.Random(seed)
        self.last_vote: dict[tuple[str, str], int] = {}
        self.stored: list[tuple[int, str, Read | Vote]] = []
        self.halt = threading.Event()
        self.error: BaseException | None = None

    def event(self) -> Read | Vote:
        rnd = self.random
        self.at_ms += rnd.randrange(1, 50)
        article = rnd.choice(ARTICLES)
        if rnd.random() < 0.6:
            at = self.at_ms - rnd.randrange(0, 3 * MS_PER_HOUR)
            return Read(article, at, f"visitor-{rnd.randrange(500)}")
        voter = rnd.choice(VOTERS)
        before = self.last_vote.get((article, voter))
        roll = rnd.random()
        if before is not None and roll < 0.15:
            at = before  # a re-vote at the very same event time: the later entry wins
        elif before is not None and roll < 0.35:
            at = before - rnd.randrange(1, 6 * MS_PER_HOUR)  # older: changes nothing, unless unvoted
        else:
            at = self.at_ms
        self.last_vote[(article, voter)] = max(at, before or at)
        return Vote(article, at, voter, float(rnd.randrange(1, 6)))

    def run(self) -> None:
        try:
            while not self.halt.is_set():
                chunk = [self.event() for _ in range(40)]
                shards = [shard_for(e.article_id, self.keys.shards) for e in chunk]
                pipe = self.redis.pipeline(transaction=False)
                for shard, e in zip(shards, chunk):
                    pipe.xadd(self.keys.stream(shard), wire(e))
                ids = [i.decode() for i in pipe.execute()]
                self.stored.extend(zip(shards, ids, chunk))
                time.sleep(0.05)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc


def wire(e: Read | Vote) -> dict[str, str]:
    """The wire format's fields, spelled out (k, a, t, v, r; ratings without a trailing .0)."""
    if isinstance(e, Read):
        return {"k": "read", "a": e.article_id, "t": str(e.at_ms), "v": e.visitor}
    return {"k": "vote", "a": e.article_id, "t": str(e.at_ms), "v": e.voter, "r": f"{e.rating:g}"}


def in_applied_order(ops: list[dict], shards: int) -> list[dict]:
    """The operations in the order the worker applied them: by the offsets stored with each, which must
    grow from one operation to the next on every shard (one worker at a time applies batches)."""
    def offsets(op):
        upto = json.loads(op["effect"])["upto"]
        return tuple(id_key(upto[str(s)]) for s in range(shards))

    ordered = sorted(ops, key=offsets)
    for earlier, later in zip(ordered, ordered[1:]):
        assert all(a <= b for a, b in zip(offsets(earlier), offsets(later))), (earlier, later)
    return ordered


def expected_from_streams(stored: list[tuple[int, str, Read | Vote]], ops: list[dict],
                          shards: int) -> ModerationModel:
    """Replay every shard's entries in stream order, each operation after what was counted when it applied."""
    per_shard: dict[int, list[tuple[tuple[int, int], Read | Vote]]] = {s: [] for s in range(shards)}
    for shard, stream_id, event in stored:
        per_shard[shard].append((id_key(stream_id), event))
    for entries in per_shard.values():
        assert all(a[0] < b[0] for a, b in zip(entries, entries[1:]))  # one producer: ids grow
    ids = {shard: {key for key, _ in entries} for shard, entries in per_shard.items()}
    model, done = ModerationModel(), dict.fromkeys(range(shards), 0)

    def count_up_to(shard: int, last: tuple[int, int] | None) -> None:
        entries = per_shard[shard]
        while done[shard] < len(entries) and (last is None or entries[done[shard]][0] <= last):
            model.event(entries[done[shard]][1])
            done[shard] += 1

    for op in in_applied_order(ops, shards):
        upto = json.loads(op["effect"])["upto"]
        own = json.loads(op["params"])["shard"]
        assert id_key(upto[str(own)]) not in ids[own]  # its own shard's offset is the operation's entry
        for shard in range(shards):
            count_up_to(shard, id_key(upto[str(shard)]))
        model.operation(op)
    for shard in range(shards):
        count_up_to(shard, None)
    return model


def test_moderation_under_traffic_with_three_sigkills_counts_everything_once_in_stream_order(
        settings, engine, redis, tmp_path):
    settings = replace(settings, batch_size=500, lease_ms=1_000)
    env = {"READRATE_ARCHIVE": str(tmp_path / "archive")}
    log = tmp_path / "worker.log"
    day = time.time_ns() // 1_000_000 // MS_PER_DAY
    traffic = Traffic(redis, settings.keys, (day - 1) * MS_PER_DAY - 3 * MS_PER_HOUR, seed=day)
    rnd = random.Random(day)
    worker = start_logged_worker(settings, log, **env)
    traffic.start()
    plan = ["reset", "unvote", "kill", "reset --reads", "undo", "unvote --article", "kill", "reset --votes",
            "undo", "undo", "unvote", "kill", "undo", "reset"]
    standing: list[int] = []  # reset/unvote ids not undone, oldest first
    issued: list[tuple[str, int]] = []
    kills, steps_done = 0, False
    try:
        wait_until(lambda: len(traffic.stored) > 500, timeout=30, message="traffic")
        for step in plan:
            if traffic.error is not None:
                break
            if step == "kill":
                time.sleep(0.5)
                kill_hard(worker)
                assert worker.returncode == -9, log.read_text()[-3000:]
                kills += 1
                worker = start_logged_worker(settings, log, **env)
                continue
            if step == "undo":
                target = standing.pop()
                issued.append((step, moderate(settings, "undo", str(target))))
                continue
            action, _, flag = step.partition(" ")
            if action == "reset":
                args = ["reset", rnd.choice(ARTICLES), *([flag] if flag else [])]
            else:
                on = ["--article", rnd.choice(ARTICLES)] if flag else []
                args = ["unvote", "--voter", rnd.choice(VOTERS), *on]
            op = moderate(settings, *args, "--reason", f"step {len(issued)}", "--by", "crash-test")
            standing.append(op)
            issued.append((step, op))
        time.sleep(0.5)
        steps_done = True
    finally:
        traffic.halt.set()
        traffic.join(timeout=30)
        if not steps_done:
            stop(worker)
    assert traffic.error is None, traffic.error
    assert kills == KILLS

    try:
        wait_until(lambda: backlog(redis, settings) == 0, timeout=120, message="every stream to be drained")
        with engine.connect() as conn:
            ops = [dict(r) for r in conn.execute(select(operations).order_by(operations.c.id)).mappings()]
            dead = conn.execute(select(rejected_events)).all()
        assert [op["id"] for op in ops] == [op for _, op in issued]
        assert all(op["applied_at"] is not None for op in ops), ops
        assert dead == []
        # --wait: each applied before the next was issued, so the stored offsets order them by id too.
        assert [op["id"] for op in in_applied_order(ops, settings.shards)] == [op["id"] for op in ops]
        model = expected_from_streams(traffic.stored, ops, settings.shards)
        assert_same_state(snapshot(engine), model.expected())
    except AssertionError as exc:
        alive = worker.poll() is None
        raise AssertionError(f"{exc}\nworker alive {alive}; log:\n{log.read_text()[-3000:]}") from None
    finally:
        code = stop(worker)
    assert code == 0, log.read_text()[-3000:]
    text = log.read_text()
    assert "Traceback" not in text, text[text.index("Traceback") - 300:][:4000]
    assert sorted(model.removed) == sorted(standing)  # the model agrees on what stands
    removed_something = sum(1 for _, (reads, gone) in model.removed.items() if reads or gone)
    assert removed_something, "no standing operation removed anything"
    assert model.stood, "no undo met a newer vote: the case the rule is for was not exercised"

    audited = run_cli(settings, "audit", timeout=120, **env)
    assert audited.returncode == 0, audited.stdout[-3000:] + audited.stderr[-3000:]
    assert "no drift" in audited.stderr and "Traceback" not in audited.stderr
    print(f"{len(traffic.stored)} events, {len(ops)} operations ({[s for s, _ in issued]}), {kills} kills")


# -- two workers on PostgreSQL: an unvote everywhere racing a batch of another shard ------------------------


def vote_totals_that_disagree(engine) -> list:
    """Articles whose vote count, rating sum or votes-per-day buckets do not add up to their vote rows."""
    with engine.connect() as conn:
        stats = {a: (int(n), float(s)) for a, n, s in conn.execute(
            select(article_stats.c.article_id, article_stats.c.votes, article_stats.c.rating_sum))}
        rows = {a: (int(n), float(s or 0)) for a, n, s in conn.execute(
            select(votes.c.article_id, func.count(), func.sum(votes.c.rating)).group_by(votes.c.article_id))}
        days = {a: (int(n), float(s or 0)) for a, n, s in conn.execute(
            select(votes_daily.c.article_id, func.sum(votes_daily.c.votes),
                   func.sum(votes_daily.c.rating_sum)).group_by(votes_daily.c.article_id))}
        negative = conn.execute(select(votes_daily).where(votes_daily.c.votes < 0)).all()
    wrong = [(a, stats.get(a), rows.get(a, (0, 0.0)), days.get(a, (0, 0.0))) for a in stats
             if not stats[a] == rows.get(a, (0, 0.0)) == days.get(a, (0, 0.0))]
    return wrong + [("negative bucket", tuple(r)) for r in negative]


def test_an_unvote_everywhere_racing_another_workers_batch_on_postgresql_keeps_totals_consistent(
        pg_database_url, redis, tmp_path):
    settings = fault_settings(pg_database_url)
    engine = prepared_engine(settings)
    voter = "racer"
    own = shard_for(voter, settings.shards)
    others = [a for a in ARTICLES if shard_for(a, settings.shards) != own]
    x = others[0]  # re-voted by another worker while the unvote is under way
    w = next(a for a in ARTICLES if shard_for(a, settings.shards) not in (shard_for(x, settings.shards),))
    t0 = (time.time_ns() // 1_000_000 // MS_PER_DAY - 2) * MS_PER_DAY
    workers = [start_logged_worker(settings, tmp_path / f"worker-{n}.log") for n in range(2)]
    lock = engine.connect()
    try:
        xadd(redis, settings, [Vote(w, t0, voter, 4.0), Vote(x, t0 + 1, voter, 3.0)])
        wait_until(lambda: len(snapshot(engine)["votes"]) == 2, timeout=60, message="the first votes")
        wait_until(lambda: workers_listening(redis, settings) == 2, timeout=60, message="two workers")
        # Hold the row of w's vote bucket: the unvote's transaction stops there, after it read the votes.
        held = lock.begin()
        lock.execute(select(votes_daily).where(votes_daily.c.article_id == w).with_for_update()).all()
        queued = run_cli(settings, "moderate", "unvote", "--voter", voter, "--reason", "race", timeout=120)
        assert queued.returncode == 0, queued.stderr
        wait_until(lambda: lock_waits(engine) >= 1, timeout=60, message="the unvote to wait for the lock")
        xadd(redis, settings, [Vote(x, t0 + MS_PER_DAY, voter, 5.0)])  # the other worker drains it
        wait_until(lambda: lock_waits(engine) >= 2 or snapshot(engine)["votes"].get((x, voter), (0,))[0] == 5,
                   timeout=60, message="the re-vote to be applied or to wait for the unvote")
        held.rollback()
        wait_until(lambda: backlog(redis, settings) == 0 and all_applied(engine), timeout=60,
                   message="everything applied")
        wrong = vote_totals_that_disagree(engine)
    except AssertionError as exc:  # the setup went wrong: not the defect this test is marked for
        pytest.fail(f"setup: {exc}")
    finally:
        lock.close()
        for process in workers:
            stop(process)
        engine.dispose()
        delete_keys(redis, settings.prefix)
    # Whichever order the two were applied in, every article's totals add up to its vote rows.
    assert wrong == []


def xadd(redis, settings, events) -> None:
    for e in events:
        redis.xadd(settings.keys.stream(shard_for(e.article_id, settings.shards)), wire(e))


def workers_listening(redis, settings) -> int:
    from rq import Queue, Worker

    return Worker.count(connection=redis, queue=Queue(settings.keys.queue, connection=redis))


def lock_waits(engine) -> int:
    with engine.connect() as conn:
        return conn.exec_driver_sql(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'").scalar()


def all_applied(engine) -> bool:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(operations)
                            .where(operations.c.applied_at.is_(None))).scalar() == 0
