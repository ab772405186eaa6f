"""Report windows against the real pipeline: events emitted to Redis, drained into SQLite and PostgreSQL,
then counted per window — edges, time zones, re-votes that cross an edge, and random windows checked
against a plain-Python count of the events."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from datetime import datetime, timedelta

import pytest
from redis import Redis

from events.emitter import Emitter
from reports.cli import main
from reports.queries import TopQuery, read_counts, summary, top, vote_counts
from reports.windows import Window, floor_hour
from workers.drain import Drainer

T0 = datetime(2024, 3, 1)
MS = timedelta(milliseconds=1)


class Pipeline:
    """Events through the real pipeline, in-process: Emitter → Redis streams → Drainer → the database."""

    def __init__(self, settings, engine, redis: Redis) -> None:
        self.settings, self.engine = settings, engine
        self.emitter = Emitter(redis, keys=settings.keys, scale=settings.rating_scale, strict=True, enqueue=False)
        self.events: list = []

    def read(self, article: str, at: datetime, visitor: str | None = None) -> None:
        self.events.append(self.emitter.make_read(article, visitor, at))

    def vote(self, article: str, rating, voter: str, at: datetime) -> None:
        self.events.append(self.emitter.make_vote(article, rating, voter, at))

    def flush(self) -> None:
        """Emit what was queued and drain every shard; every event must be applied, none rejected."""
        assert self.emitter.emit_many(self.events) == len(self.events)
        drained = 0
        with Drainer(self.settings, engine=self.engine, redis=Redis.from_url(self.settings.redis_url)) as drainer:
            for shard in range(self.settings.shards):
                result = drainer.drain(shard)
                assert result.rejected == 0
                drained += result.entries
        assert drained == len(self.events)
        self.events = []


@pytest.fixture
def pipeline(settings, engine, redis):
    return Pipeline(settings, engine, redis)


def counts(engine, window: Window):
    with engine.connect() as conn:
        return read_counts(conn, window), vote_counts(conn, window)


def test_events_exactly_at_since_count_and_events_exactly_at_until_do_not(pipeline, engine):
    since, until = T0, T0 + timedelta(days=4)
    for at in (since - MS, since, until - MS, until):
        pipeline.read("edge", at)
    pipeline.vote("edge", 5, "at-since", since)
    pipeline.vote("edge", 4, "before", since - MS)
    pipeline.vote("edge", 3, "last-ms", until - MS)
    pipeline.vote("edge", 1, "at-until", until)
    pipeline.flush()
    reads, votes = counts(engine, Window(since, until))
    assert reads == {"edge": 2}
    assert votes == {"edge": (2, 8.0)}


def test_an_edge_inside_an_hour_counts_votes_to_the_millisecond_and_reads_by_their_hour(pipeline, engine):
    since = T0 + timedelta(hours=10, minutes=30)
    pipeline.read("ragged", since - timedelta(minutes=15))  # 10:15, same hour as since: counted
    pipeline.read("ragged", since + timedelta(minutes=15))
    pipeline.read("ragged", since - timedelta(minutes=31))  # 09:59: not counted
    pipeline.vote("ragged", 2, "early", since - MS)
    pipeline.vote("ragged", 4, "on-time", since)
    pipeline.flush()
    reads, votes = counts(engine, Window(since, None))
    assert reads == {"ragged": 2}
    assert votes == {"ragged": (1, 4.0)}


def test_a_revote_moves_the_vote_across_the_window_edge_with_its_new_rating(pipeline, engine):
    edge = T0
    pipeline.vote("moved-in", 5, "v", edge - timedelta(days=2))
    pipeline.vote("moved-out", 2, "v", edge + timedelta(days=1))
    pipeline.vote("stays", 3, "v", edge + timedelta(hours=1))
    pipeline.flush()
    pipeline.vote("moved-in", 1, "v", edge + timedelta(days=1, hours=3))  # now inside [edge, …)
    pipeline.vote("moved-out", 4, "v", edge + timedelta(days=9))  # now past the window's end
    pipeline.vote("stays", 5, "v", edge + timedelta(days=2))  # moves within the window, new rating
    pipeline.flush()
    window = Window(edge, edge + timedelta(days=7))
    assert counts(engine, window)[1] == {"moved-in": (1, 1.0), "stays": (1, 5.0)}
    assert counts(engine, Window(None, edge))[1] == {}
    assert counts(engine, Window(edge + timedelta(days=7), None))[1] == {"moved-out": (1, 4.0)}
    with engine.connect() as conn:
        rows = top(conn, TopQuery("votes", 10, window=window))
        rated = summary(conn, window)
    assert [(r["article_id"], r["votes"], r["rating_avg"]) for r in rows] == [("moved-in", 1, 1.0),
                                                                             ("stays", 1, 5.0)]
    assert (rated["votes"], rated["rating_avg"]) == (2, 3.0)


def test_a_window_given_with_a_zone_is_the_same_instant_in_utc(pipeline, settings, engine, capsys):
    # 02:00 at UTC+2 is midnight UTC: the read at 23:00 UTC the day before is outside, midnight inside.
    pipeline.read("zoned", T0 - timedelta(hours=1))
    pipeline.read("zoned", T0)
    pipeline.read("zoned", T0 + timedelta(hours=5))  # 05:00 UTC is 00:00 at UTC-5: outside --until
    pipeline.flush()
    with pytest.raises(SystemExit) as exited:
        main(["--database-url", settings.database_url, "report", "top", "--format", "csv",
              "--since", "2024-03-01T02:00:00+02:00", "--until", "2024-03-01T00:00:00-05:00"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.splitlines()[1].startswith("1,zoned,,1,0,")


def test_random_windows_count_what_a_plain_pass_over_the_events_counts(pipeline, engine):
    rng = random.Random(20240301)
    emitted = []
    for i in range(1500):
        at = T0 + timedelta(milliseconds=rng.randrange(10 * 86_400_000))
        article = f"a{rng.randrange(12)}"
        if rng.random() < 0.7:
            pipeline.read(article, at)
            emitted.append(("read", article, at, None, None))
        else:
            voter, rating = f"v{rng.randrange(40)}", rng.randint(1, 5)
            pipeline.vote(article, rating, voter, at)
            emitted.append(("vote", article, at, voter, rating))
    pipeline.flush()
    current: dict = {}
    for kind, article, at, voter, rating in emitted:  # the latest event time wins; on a tie, the later one
        if kind == "vote" and ((article, voter) not in current or at >= current[(article, voter)][0]):
            current[(article, voter)] = (at, rating)

    def expected(window: Window):
        hours = window.for_reads()
        reads = Counter(a for k, a, at, _, _ in emitted if k == "read" and hours.contains(floor_hour(at)))
        votes: dict = {}
        for (article, _), (at, rating) in current.items():
            if window.contains(at):
                n, total = votes.get(article, (0, 0.0))
                votes[article] = (n + 1, total + rating)
        return dict(reads), votes

    windows = [Window(), Window(T0 + timedelta(days=2), None), Window(None, T0 + timedelta(days=5))]
    for _ in range(12):
        start = T0 + timedelta(minutes=rng.randrange(-600, 12 * 1440))
        windows.append(Window(start, start + timedelta(minutes=rng.randrange(1, 6 * 1440))))
    for window in windows:
        assert counts(engine, window) == expected(window), window


def test_every_top_list_in_a_window_equals_a_plain_ranking_of_the_events(pipeline, engine):
    # Few articles, few distinct counts and whole-star ratings: plenty of ties for the tie-breaks to decide.
    rng = random.Random(7)
    reads: list = []
    votes: dict = {}
    for _ in range(900):
        article, at = f"t{rng.randrange(25):02d}", T0 + timedelta(minutes=rng.randrange(10 * 1440))
        if rng.random() < 0.75:
            pipeline.read(article, at)
            reads.append((article, at))
        else:
            voter, rating = f"v{rng.randrange(6)}", rng.randint(1, 5)
            pipeline.vote(article, rating, voter, at)
            if (article, voter) not in votes or at >= votes[(article, voter)][0]:
                votes[(article, voter)] = (at, rating)
    pipeline.flush()
    window = Window(T0 + timedelta(days=2, hours=7, minutes=30), T0 + timedelta(days=9, hours=3))
    hours = window.for_reads()
    n_reads = Counter(a for a, at in reads if hours.contains(floor_hour(at)))
    n_votes, sums = Counter(), Counter()
    for (article, _), (at, rating) in votes.items():
        if window.contains(at):
            n_votes[article] += 1
            sums[article] += rating
    mean = sum(sums.values()) / sum(n_votes.values())
    score = {a: (mean * 10 + sums[a]) / (10 + n_votes[a]) for a in n_votes}
    expected = {
        "reads": sorted(n_reads, key=lambda a: (-n_reads[a], a)),
        "votes": sorted(n_votes, key=lambda a: (-n_votes[a], a)),
        "rating": sorted(n_votes, key=lambda a: (-score[a], -n_votes[a], -n_reads[a], a)),
    }
    with engine.connect() as conn:
        for by, order in expected.items():
            for least in (0, 3):
                rows = top(conn, TopQuery(by, 12, min_votes=least, window=window))
                want = [a for a in order if n_votes[a] >= least][:12]
                assert [r["article_id"] for r in rows] == want, (by, least)
                assert [(r["reads"], r["votes"]) for r in rows] == [(n_reads[a], n_votes[a]) for a in want]
                assert [r["rating_avg"] for r in rows] == [sums[a] / n_votes[a] if n_votes[a] else None
                                                           for a in want]


@pytest.fixture
def icu_settings(settings, request):
    """On PostgreSQL, a database whose collation sorts 'a' before 'B' (ICU en-US), unlike Python and 'C'."""
    if not settings.database_url.startswith("postgresql"):
        yield settings
        return
    from sqlalchemy import text

    from conftest import drop_pg_database, pg_url

    admin = request.getfixturevalue("pg_admin")
    name = f"rrt_icu_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE \"{name}\" TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' "
                          "LOCALE 'C.UTF-8'"))
    yield settings.but(database_url=pg_url(name))
    drop_pg_database(admin, name)


def test_ties_break_by_article_id_as_python_orders_text_whatever_the_database_collation(icu_settings, redis):
    from reports.detail import article_report
    from workers.db import make_engine, upgrade
    from workers.writer import ensure_offsets

    engine = make_engine(icu_settings.database_url)
    upgrade(engine)
    ensure_offsets(engine, icu_settings.shards)
    pipeline = Pipeline(icu_settings, engine, redis)
    for article in ("a", "B", "b", "A-1", "A1"):
        pipeline.read(article, T0 + timedelta(hours=1))
    pipeline.flush()
    expected = sorted(["a", "B", "b", "A-1", "A1"])  # code points: 'A-1' < 'A1' < 'B' < 'a' < 'b'
    try:
        with engine.connect() as conn:
            for window in (Window(), Window(T0, T0 + timedelta(days=1)), Window(T0 + timedelta(minutes=5), None)):
                assert [r["article_id"] for r in top(conn, TopQuery("reads", 10, window=window))] == expected
                ranks = [article_report(conn, a, window, prior_votes=10)["rank"] for a in expected]
                assert ranks == [1, 2, 3, 4, 5]
    finally:
        engine.dispose()
