"""Integration: events from `events.Emitter` counted by a running `readrate worker` process.

Real Redis, a real worker process (RQ, the sweep), SQLite and PostgreSQL. Every
test polls the database until it holds what was emitted — reads per article,
hourly and daily buckets, the votes table and the vote totals — and compares
table by table with a tally computed here from the events themselves.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from readrate.events import Emitter, Read, Vote
from helpers import (
    MS_PER_DAY,
    MS_PER_HOUR,
    RunningWorker,
    counters,
    snapshot,
    tally_events,
    wait_for_state,
    wait_until,
)
from readrate.workers.schema import article_stats, votes, votes_daily

ARTICLES = ["news/2024/elections", "recipe-42", "café-crème", "a" * 128, "article-42"]


@pytest.fixture
def day0() -> int:
    """Midnight UTC three days ago, in epoch ms: events are placed at known hours after it."""
    return (time.time_ns() // 1_000_000 // MS_PER_DAY - 3) * MS_PER_DAY


@pytest.fixture
def worker(settings, engine, tmp_path):
    with RunningWorker(settings, tmp_path / "worker.log") as running:
        yield running


@pytest.fixture
def emitter(settings, redis):
    return Emitter(redis, keys=settings.keys, scale=settings.rating_scale, strict=True)


def send(emitter: Emitter, sent: list, event: Read | Vote) -> None:
    """Emit one event the way a page hook does (one call per event) and remember it."""
    if isinstance(event, Read):
        assert emitter.read(event.article_id, visitor=event.visitor, at=event.at_ms)
    else:
        assert emitter.vote(event.article_id, event.rating, voter=event.voter, at=event.at_ms)
    sent.append(event)


def ms_datetime(at_ms: int):
    return datetime(1970, 1, 1) + timedelta(milliseconds=at_ms)


def article_row(engine, article_id: str):
    with engine.connect() as conn:
        return conn.execute(select(article_stats).where(article_stats.c.article_id == article_id)).one()


def vote_row(engine, article_id: str, voter: str):
    with engine.connect() as conn:
        return conn.execute(
            select(votes.c.rating, votes.c.voted_at)
            .where(votes.c.article_id == article_id, votes.c.voter_id == voter)
        ).one()


def votes_per_day(engine, article_id: str) -> dict:
    with engine.connect() as conn:
        rows = conn.execute(select(votes_daily).where(votes_daily.c.article_id == article_id))
        return {r.day: (int(r.votes), float(r.rating_sum)) for r in rows if int(r.votes)}


def test_reads_and_votes_from_the_emitter_are_counted_exactly_by_a_running_worker(
    worker, emitter, engine, day0
):
    sent: list = []
    for i in range(60):
        article = ARTICLES[i % len(ARTICLES)]
        # Several reads share an hour, several hours share a day, and two days are used.
        at_ms = day0 + (i % 2) * MS_PER_DAY + (i % 7) * MS_PER_HOUR + i * 1000
        send(emitter, sent, Read(article, at_ms, f"visitor-{i % 11}" if i % 3 else None))
    for i, stars in enumerate([5, 4, 4, 3, 1, 2, 5]):
        send(emitter, sent, Vote(ARTICLES[i % 3], day0 + i * MS_PER_HOUR, f"voter-{i}", float(stars)))
    more = [Read(ARTICLES[1], day0 + 2 * MS_PER_DAY + n, None) for n in range(25)]
    assert emitter.emit_many(more) == 25
    sent += more

    wait_for_state(engine, tally_events(sent))

    assert emitter.stats.emitted == len(sent) and emitter.stats.failed == 0
    row = article_row(engine, ARTICLES[1])
    times_of_1 = [e.at_ms for e in sent if e.article_id == ARTICLES[1]]
    assert row.reads == sum(isinstance(e, Read) for e in sent if e.article_id == ARTICLES[1])
    assert row.first_event_at == ms_datetime(min(times_of_1))
    assert row.last_read_at == ms_datetime(max(e.at_ms for e in sent if e.article_id == ARTICLES[1]
                                               and isinstance(e, Read)))
    assert row.last_vote_at == ms_datetime(max(e.at_ms for e in sent if e.article_id == ARTICLES[1]
                                               and isinstance(e, Vote)))
    assert worker.alive(), worker.log()


def test_a_later_revote_replaces_the_vote_and_moves_it_to_its_new_day(worker, emitter, engine, day0):
    article, sent = "recipe-42", []
    day1, day2 = ms_datetime(day0).date(), ms_datetime(day0 + MS_PER_DAY).date()
    send(emitter, sent, Vote(article, day0 + 10 * MS_PER_HOUR, "reader-1", 2.0))
    send(emitter, sent, Vote(article, day0 + 11 * MS_PER_HOUR, "reader-2", 4.0))
    wait_for_state(engine, tally_events(sent))
    assert votes_per_day(engine, article) == {day1: (2, 6.0)}

    send(emitter, sent, Vote(article, day0 + MS_PER_DAY + 2 * MS_PER_HOUR, "reader-1", 5.0))
    wait_for_state(engine, tally_events(sent))

    assert counters(engine)[article] == (0, 2, 9.0)
    assert votes_per_day(engine, article) == {day1: (1, 4.0), day2: (1, 5.0)}
    revoted_at = ms_datetime(day0 + MS_PER_DAY + 2 * MS_PER_HOUR)
    assert tuple(vote_row(engine, article, "reader-1")) == (5.0, revoted_at)
    assert article_row(engine, article).last_vote_at == ms_datetime(day0 + MS_PER_DAY + 2 * MS_PER_HOUR)


def test_a_revote_older_than_the_stored_vote_changes_nothing(worker, emitter, engine, day0):
    article, sent = "news/2024/elections", []
    send(emitter, sent, Vote(article, day0 + MS_PER_DAY, "reader-1", 4.0))
    send(emitter, sent, Vote(article, day0 + MS_PER_DAY + MS_PER_HOUR, "reader-2", 2.0))
    wait_for_state(engine, tally_events(sent))
    before = snapshot(engine)
    last_vote_at = article_row(engine, article).last_vote_at

    send(emitter, sent, Vote(article, day0 + 5 * MS_PER_HOUR, "reader-1", 1.0))
    # A read of the same article goes to the same shard, after the vote: once it is counted,
    # the vote has been through the worker too.
    send(emitter, sent, Read(article, day0 + 2 * MS_PER_DAY, "sentinel"))
    wait_until(lambda: counters(engine).get(article, (0,))[0] == 1, timeout=120, message="the sentinel read")

    after = snapshot(engine)
    assert after["votes"] == before["votes"]
    assert after["votes_daily"] == before["votes_daily"]
    assert after["stats"][article][1:] == before["stats"][article][1:] == (2, 6.0)
    assert article_row(engine, article).last_vote_at == last_vote_at
    wait_for_state(engine, tally_events(sent))


def test_a_revote_at_the_same_time_wins_by_arriving_later(worker, emitter, engine, day0):
    article, sent = "café-crème", []
    send(emitter, sent, Vote(article, day0 + 3 * MS_PER_HOUR, "reader-1", 1.0))
    wait_for_state(engine, tally_events(sent))

    send(emitter, sent, Vote(article, day0 + 3 * MS_PER_HOUR, "reader-1", 3.0))
    wait_for_state(engine, tally_events(sent))

    assert counters(engine)[article] == (0, 1, 3.0)


def test_revotes_within_one_pipeline_keep_the_latest_whatever_the_arrival_order(
    worker, emitter, engine, day0
):
    article = "article-42"
    burst = [
        Vote(article, day0 + 2 * MS_PER_DAY, "reader-1", 4.0),
        Vote(article, day0 + MS_PER_DAY, "reader-1", 1.0),  # older: loses although it arrives later
        Vote(article, day0, "reader-2", 2.0),
        Vote(article, day0 + MS_PER_HOUR, "reader-2", 5.0),  # newer: wins, on a later hour of day 0
        Read(article, day0 + MS_PER_DAY, None),
    ]
    assert emitter.emit_many(burst) == len(burst)

    wait_for_state(engine, tally_events(burst))

    assert counters(engine)[article] == (1, 2, 9.0)
    assert votes_per_day(engine, article) == {
        ms_datetime(day0).date(): (1, 5.0),
        ms_datetime(day0 + 2 * MS_PER_DAY).date(): (1, 4.0),
    }
