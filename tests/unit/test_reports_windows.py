"""Report windows against the real pipeline: events emitted to Redis, drained into SQLite and PostgreSQL,
then counted per window — edges, time zones, re-votes that cross an edge, and random windows checked
against a plain-Python count of the events."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from readrate.reports.cli import main
from readrate.reports.counts import PostgresCounts, SqliteCounts, counts_for
from readrate.reports.detail import article_report
from readrate.reports.queries import TopQuery, read_counts, summary, top, vote_counts
from readrate.reports.ranking import TopRow
from readrate.reports.windows import EARLIEST, LATEST, Window, floor_hour
from readrate.workers.db import SchemaMissing, reachable
from helpers import Pipeline

T0 = datetime(2024, 3, 1)
MS = timedelta(milliseconds=1)


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
    assert [(r.article_id, r.votes, r.rating_avg) for r in rows] == [("moved-in", 1, 1.0), ("stays", 1, 5.0)]
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
            for least, limit in ((0, 12), (3, 12), (0, None), (3, None)):
                rows = top(conn, TopQuery(by, limit, min_votes=least, window=window))
                want = [a for a in order if n_votes[a] >= least][:limit]
                assert [r.article_id for r in rows] == want, (by, least)
                assert [(r.reads, r.votes) for r in rows] == [(n_reads[a], n_votes[a]) for a in want]
                assert [r.rating_avg for r in rows] == [sums[a] / n_votes[a] if n_votes[a] else None for a in want]


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
    yield replace(settings, database_url=pg_url(name))
    drop_pg_database(admin, name)


def test_ties_break_by_article_id_as_python_orders_text_whatever_the_database_collation(icu_settings, redis):
    from readrate.workers.db import make_engine, upgrade
    from readrate.workers.writer import ensure_offsets

    engine = make_engine(icu_settings.database_url, create=True)
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
                assert [r.article_id for r in top(conn, TopQuery("reads", 10, window=window))] == expected
                ranks = [article_report(conn, a, window, prior_votes=10)["rank"] for a in expected]
                assert ranks == [1, 2, 3, 4, 5]
    finally:
        engine.dispose()


def test_each_database_has_one_counts_source_chosen_by_its_connection(engine):
    with engine.connect() as conn:
        source = counts_for(conn)
    assert type(source) is {"sqlite": SqliteCounts, "postgresql": PostgresCounts}[engine.dialect.name]


def test_top_builds_its_rows_once_with_every_value_and_the_json_contract_keys(pipeline, engine):
    for k in range(3):
        pipeline.read("r", T0 + timedelta(hours=k))
    pipeline.vote("r", 4, "v1", T0)
    pipeline.vote("v", 5, "v1", T0 + timedelta(days=1))
    pipeline.read("r", T0 + timedelta(days=6, hours=1))
    pipeline.flush()
    window = Window(T0, T0 + timedelta(days=7))
    with engine.connect() as conn:
        lists = {by: top(conn, TopQuery(by, None, window=window), T0 + timedelta(days=7)) for by in
                 ("reads", "votes", "rating", "trending")}
    assert lists["reads"] == [TopRow(1, "r", None, 4, 1, 4.0, 4.0)]
    assert lists["votes"] == [TopRow(1, "r", None, 4, 1, 4.0, 1.0), TopRow(2, "v", None, 0, 1, 5.0, 1.0)]
    assert [r.article_id for r in lists["rating"]] == ["v", "r"]
    [trend] = lists["trending"]
    assert (trend.article_id, trend.reads, trend.votes, trend.recent_reads) == ("r", 4, 1, 1)
    keys = ["rank", "article_id", "title", "reads", "votes", "rating_avg", "score"]
    assert all(list(r.as_dict()) == keys for by in ("reads", "votes", "rating") for r in lists[by])
    assert list(trend.as_dict()) == [*keys, "recent_reads", "expected_reads"]


def test_windows_from_the_year_1_to_the_last_midnight_count_what_all_time_counts(pipeline, engine):
    pipeline.read("a", T0)
    pipeline.read("b", T0 + timedelta(hours=30))
    pipeline.vote("a", 4, "v", T0 + timedelta(minutes=7))
    pipeline.flush()
    with engine.connect() as conn:
        for window in (Window(EARLIEST, LATEST), Window(EARLIEST, None), Window(None, LATEST)):
            assert counts(engine, window) == counts(engine, Window()) == ({"a": 1, "b": 1}, {"a": (1, 4.0)})
            assert [r.article_id for r in top(conn, TopQuery("reads", None, window=window))] == ["a", "b"]
            whole = summary(conn, window)
            assert (whole["reads"], whole["votes"], whole["active_articles"]) == (2, 1, 2)
            report = article_report(conn, "a", window, prior_votes=10)
            assert (report["reads"], report["votes"], report["rank"]) == (1, 1, 1)
            assert [d["day"] for d in report["daily"]] == [T0.date()]
        assert counts(engine, Window(None, EARLIEST)) == ({}, {})
        assert article_report(conn, "a", Window(None, EARLIEST), prior_votes=10)["daily"] == []
        assert top(conn, TopQuery("trending", 10, window=Window(None, LATEST)), T0) == []
        trend = top(conn, TopQuery("trending", 10, window=Window(EARLIEST, T0 + timedelta(days=2)),
                                   recent=timedelta(weeks=100000)), T0)
        assert [(r.article_id, r.recent_reads) for r in trend] == [("a", 1), ("b", 1)]


def test_a_missing_table_under_the_sqlite_fast_path_is_reported_as_schema_missing(engine, settings):
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE votes_daily")
    with pytest.raises(SchemaMissing, match="no readrate tables"):
        with reachable(settings.database_url), engine.connect() as conn:
            vote_counts(conn, Window(T0, T0 + timedelta(days=3)))
