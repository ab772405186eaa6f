"""Integration: `readrate rebuild` (in place, --into, --exclude-*) and unique readers from the archive.

Events go into the streams through `events.Emitter`; a real `readrate worker --burst` drains them with
READRATE_ARCHIVE on. What the rebuilt counters and the reported readers must be is worked out here,
independently, with plain Python over the events the test emitted (helpers.tally / sets of visitors).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from helpers import (
    MS_PER_DAY,
    MS_PER_HOUR,
    assert_same_state,
    assert_tables_equal,
    cli,
    drain,
    emit,
    expected_readers,
    full_state,
    iso,
    reader_events,
    rows,
    run_cli,
    snapshot,
    tally_events,
    top_json,
)
from readrate.events import Read, Vote
from readrate.events.settings import Settings
from readrate.reports.readers import readers
from readrate.reports.windows import Window
from readrate.workers.db import make_engine
from readrate.workers.rebuild import COUNTER_TABLES
from readrate.workers.schema import installation, operations, stream_offsets, votes


# -- helpers -------------------------------------------------------------------------------------------------


def without_zero_articles(state: dict[str, dict]) -> dict[str, dict]:
    """The snapshot without article_stats rows that count nothing: an article whose every counted event a
    rule left out may keep its row (its first event stays), at zero."""
    stats = {a: v for a, v in state["stats"].items() if v != (0, 0, 0.0)}
    return {**state, "stats": stats}


def article_json(inproc, settings, article: str, *args: str, archive: Path | None = None) -> dict:
    return json.loads(inproc(settings, "report", "article", article, "--format", "json", *args, archive=archive)[0])


def audited_clean(inproc, settings, archive: Path) -> bool:
    return "no drift" in inproc(settings, "audit", archive=archive)[1]


def workload(day0: int, articles: list[str], n: int = 300) -> tuple[list, list]:
    """Two rounds of reads (with and without a visitor, over three days and many hours) and votes; the second
    round re-votes: later (moving the vote's day), at an older event time (ignored), at an equal time (wins)."""
    first, second = [], []
    for i in range(n):
        article = articles[i % len(articles)]
        at = day0 + (i % 3) * MS_PER_DAY + (i * 7 % 24) * MS_PER_HOUR + i
        out = first if i < n // 2 else second
        if i % 5 == 4:
            out.append(Vote(article, at, f"voter-{i % 7}", float(1 + i % 5)))
        else:
            out.append(Read(article, at, None if i % 4 == 0 else f"visitor-{i % 11}"))
    a, b = articles[0], articles[1]
    t = day0 + 5 * MS_PER_HOUR + 123
    first += [
        Vote(a, t, "revoter", 2.0),
        Vote(a, t, "tie", 3.0),
        Vote(a, t, "tie", 4.0),  # the same time, same batch: the later entry wins
        Vote(b, t + MS_PER_DAY, "revoter", 4.0),
        Vote("votes-only", t, "lonely", 5.0),
    ]
    second += [
        Vote(a, t + MS_PER_DAY + 1, "revoter", 5.0),  # later: replaces, moves the vote to the next day
        Vote(a, t - MS_PER_HOUR, "revoter", 1.0),  # older event time, arrives later: ignored
        Vote(a, t, "tie", 1.0),  # the same time, a later drain: wins
        Vote(b, t, "revoter", 1.0),  # older: ignored
        Vote(b, t + MS_PER_DAY, "revoter", 3.0),  # equal: wins
        Vote("votes-only", t + 2 * MS_PER_DAY, "lonely", 2.0),  # moves the day's only vote: the bucket empties
    ]
    return first, second


# -- 1. rebuild --into ---------------------------------------------------------------------------------------


def test_rebuild_into_an_empty_database_copies_every_counter_row_by_row(
        settings, engine, emitter, archive_dir, day0, empty_target, inproc):
    articles = [f"article-{n}" for n in range(7)] + ["café-crème"]
    first, second = workload(day0, articles)
    emit(emitter, first)
    drain(settings, archive_dir)
    emit(emitter, second)
    drain(settings, archive_dir)
    assert_same_state(snapshot(engine), tally_events(first + second))  # the live counters are right to start with

    done = cli(settings, "rebuild", "--into", empty_target, archive=archive_dir)
    assert "rebuilt into" in done.stderr

    target = make_engine(empty_target)
    try:
        assert_tables_equal(full_state(target), full_state(engine))
        assert rows(target, installation) == rows(engine, installation)
        assert rows(target, stream_offsets) == rows(engine, stream_offsets)
        assert rows(target, operations) == []
    finally:
        target.dispose()
    # The copy is a working installation: the same reports, and an audit without drift.
    copy = Settings.from_env({}, redis_url=settings.redis_url, database_url=empty_target,
                                       prefix=settings.prefix)
    assert top_json(inproc, copy, archive=archive_dir)[0] == top_json(inproc, settings, archive=archive_dir)[0]
    audited = cli(copy, "audit", archive=archive_dir)  # a real process
    assert "no drift" in audited.stderr


def test_rebuild_into_a_database_that_is_not_empty_is_refused(settings, engine, emitter, archive_dir, day0):
    emit(emitter, [Read("a", day0, "v"), Vote("a", day0 + 1, "w", 4.0)])
    drain(settings, archive_dir)
    refused = cli(settings, "rebuild", "--into", settings.database_url, archive=archive_dir, expect=1)
    assert "empty" in refused.stderr
    assert snapshot(engine) == tally_events([Read("a", day0, "v"), Vote("a", day0 + 1, "w", 4.0)])


# -- 2. in place, no rules -----------------------------------------------------------------------------------


def test_rebuild_in_place_without_rules_leaves_every_table_as_it_was_and_reports_keep_working(
        settings, engine, emitter, archive_dir, day0, inproc):
    articles = [f"article-{n}" for n in range(6)]
    first, second = workload(day0, articles, n=240)
    emit(emitter, first)
    drain(settings, archive_dir)
    emit(emitter, second)
    drain(settings, archive_dir)
    before = full_state(engine)
    stored_before = stored_values(engine)
    offsets_before = rows(engine, stream_offsets)
    top_before = top_json(inproc, settings, archive=archive_dir)[0]
    article_before = article_json(inproc, settings, "article-0", archive=archive_dir)

    declined = run_cli(settings, "rebuild", input="n\n", timeout=120, READRATE_ARCHIVE=str(archive_dir))
    assert declined.returncode == 1 and "Traceback" not in declined.stderr, declined.stderr
    assert "rebuilt" not in declined.stderr

    done = cli(settings, "rebuild", "--yes", archive=archive_dir)
    assert f"rebuilt in place from {len(first) + len(second):,} archived events" in done.stderr

    assert_tables_equal(full_state(engine), before)
    # Stored exactly as the drain stores them (SQLite keeps times as text: the drain's later upserts must
    # find these rows by their key), not only equal once parsed.
    assert stored_values(engine) == stored_before
    assert rows(engine, stream_offsets) == offsets_before
    assert top_json(inproc, settings, archive=archive_dir)[0] == top_before
    assert article_json(inproc, settings, "article-0", archive=archive_dir) == article_before
    assert audited_clean(inproc, settings, archive_dir)
    # New events after a rebuild are counted as usual.
    later = [Read("article-1", day0 + 2 * MS_PER_DAY + 9, "late"), Vote("article-2", day0 + 8, "late-voter", 2.0)]
    emit(emitter, later)
    drain(settings, archive_dir)
    assert_same_state(snapshot(engine), tally_events(first + second + later))


def stored_values(engine) -> dict[str, list[tuple]]:
    """Every counter table's rows as the database driver returns them, without SQLAlchemy's type processing."""
    with engine.connect() as conn:
        return {t.name: conn.exec_driver_sql(
            f"SELECT * FROM {t.name} ORDER BY {', '.join(c.name for c in t.primary_key.columns)}").all()
            for t in COUNTER_TABLES}


# -- 3. --exclude-voter ----------------------------------------------------------------------------------------


def test_rebuild_excluding_a_voter_drops_their_past_votes_only_and_is_recorded(
        settings, engine, emitter, archive_dir, day0, inproc, empty_target):
    spammer = "spammer"
    t = day0 + 3 * MS_PER_HOUR
    events = [Read(f"a{n}", t + n * MS_PER_HOUR + k, f"reader-{k}") for n in range(4) for k in range(3)]
    events += [Vote(f"a{n}", t + n, f"voter-{n}", float(1 + n)) for n in range(4)]
    events += [Vote(f"a{n}", t + MS_PER_DAY + n, "voter-x", 4.0) for n in range(2)]
    spam = [
        Vote("a0", t + MS_PER_DAY, spammer, 5.0),
        Vote("a1", t, spammer, 5.0),
        Vote("a1", t + MS_PER_DAY * 2, spammer, 1.0),  # a re-vote: both go
        Vote("a2", t + 10, spammer, 1.0),
        Vote("spam-only", t, spammer, 5.0),  # the article had nothing but the spammer's vote
    ]
    emit(emitter, events[:10] + spam[:3])
    drain(settings, archive_dir)
    emit(emitter, events[10:] + spam[3:])
    drain(settings, archive_dir)
    assert_same_state(snapshot(engine), tally_events(events + spam))
    counted = snapshot(engine)

    no_reason = cli(settings, "rebuild", "--exclude-voter", spammer, "--yes", archive=archive_dir, expect=2)
    assert "--reason" in no_reason.stderr
    _, blank = inproc(settings, "rebuild", "--exclude-voter", spammer, "--reason", "  ", "--yes",
                      archive=archive_dir, expect=2)
    assert "--reason" in blank
    assert snapshot(engine) == counted
    with engine.connect() as conn:
        assert conn.execute(select(operations)).all() == []

    # Emitted before the rebuild but counted after it: not "counted so far", so it counts.
    pending = [Vote("a3", t + 6, spammer, 3.0)]
    emit(emitter, pending)
    cli(settings, "rebuild", "--exclude-voter", spammer, "--reason", "spam", "--by", "moderator", "--yes",
        archive=archive_dir)

    assert_same_state(without_zero_articles(snapshot(engine)), tally_events(events))
    with engine.connect() as conn:
        assert conn.scalar(select(votes.c.voter_id).where(votes.c.voter_id == spammer)) is None
        ops = conn.execute(select(operations)).all()
    assert len(ops) == 1
    op = ops[0]
    assert (op.action, op.reason, op.actor) == ("rebuild", "spam", "moderator")
    params = json.loads(op.params)
    assert params["voters"] == [spammer] and params["visitors"] == [] and params["articles"] == []
    assert snapshot(engine)["stats"].get("spam-only", (0, 0, 0.0)) == (0, 0, 0.0)
    assert "no drift" in cli(settings, "audit", archive=archive_dir).stderr

    # Votes counted after the rebuild count, even one older than the vote that was left out.
    later = [
        Vote("a0", t + 5, spammer, 2.0),  # older than the excluded a0 vote
        Vote("spam-only", t + 1, spammer, 4.0),
        Vote("a0", t + 7, "voter-late", 1.0),
        Read("a3", t + 8, "reader-late"),
    ]
    emit(emitter, later)
    drain(settings, archive_dir)
    expected = tally_events(events + pending + later)
    assert_same_state(snapshot(engine), expected)
    assert expected["votes"][("a0", spammer)][0] == 2.0 and expected["votes"][("a3", spammer)][0] == 3.0
    assert audited_clean(inproc, settings, archive_dir)

    # A later rebuild (no new rules) keeps the rule for the past and the later votes.
    cli(settings, "rebuild", "--yes", archive=archive_dir)
    assert_same_state(snapshot(engine), expected)
    with engine.connect() as conn:
        assert [r.action for r in conn.execute(select(operations))] == ["rebuild"]
    assert audited_clean(inproc, settings, archive_dir)

    # A copy keeps the rule and the operation; a rule applied in the copy is recorded beside it.
    inproc(settings, "rebuild", "--into", empty_target, archive=archive_dir)
    copy = Settings.from_env({}, redis_url=settings.redis_url, database_url=empty_target, prefix=settings.prefix)
    target = make_engine(empty_target)
    try:
        assert_tables_equal(full_state(target), full_state(engine))
        assert rows(target, operations) == rows(engine, operations)
        inproc(copy, "rebuild", "--exclude-voter", "voter-late", "--reason", "test", "--yes", archive=archive_dir)
        with target.connect() as conn:
            ops = [(o.id, o.action, o.reason) for o in conn.execute(select(operations).order_by(operations.c.id))]
        assert ops == [(ops[0][0], "rebuild", "spam"), (ops[0][0] + 1, "rebuild", "test")]
        copied = tally_events([e for e in events + pending + later if getattr(e, "voter", None) != "voter-late"])
        assert_same_state(snapshot(target), copied)
        assert snapshot(engine) == expected  # the live database is left as it was
    finally:
        target.dispose()


def test_rebuild_excluding_a_visitor_and_an_article_drops_their_reads_and_readers(
        settings, engine, emitter, archive_dir, day0, inproc):
    events = [Read(a, day0 + h * MS_PER_HOUR + k, v) for a in ("x", "y", "gone") for h in range(0, 48, 6)
              for k, v in enumerate(["bot", "ann", "bob", None])]
    events += [Vote("x", day0 + 3, "bot", 1.0), Vote("gone", day0 + 4, "ann", 5.0), Vote("y", day0 + 5, "ann", 4.0)]
    emit(emitter, events)
    drain(settings, archive_dir)

    cli(settings, "rebuild", "--exclude-visitor", "bot", "--exclude-article", "gone", "--reason", "crawler",
        "--yes", archive=archive_dir)

    kept = [e for e in events if e.article_id != "gone" and not (isinstance(e, Read) and e.visitor == "bot")]
    state = snapshot(engine)
    assert "gone" not in state["stats"]  # an article left out is left out altogether
    assert_same_state(state, tally_events(kept))
    assert state["votes"][("x", "bot")][0] == 1.0  # a visitor rule leaves votes alone
    listed, err = top_json(inproc, settings, archive=archive_dir)
    assert {r["article_id"]: (r["reads"], r["readers"]) for r in listed} == {"x": (24, 2), "y": (24, 2)}
    assert "16 reads" in err and "no visitor" in err
    assert readers(engine, Window(), archive_dir=str(archive_dir)).by_article == {"x": 2, "y": 2}
    assert audited_clean(inproc, settings, archive_dir)
    # Afterwards the visitor and the article count again.
    later = [Read("x", day0 + 50 * MS_PER_HOUR, "bot"), Read("gone", day0 + 50 * MS_PER_HOUR, "bot")]
    emit(emitter, later)
    drain(settings, archive_dir)
    assert_same_state(snapshot(engine), tally_events(kept + later))
    assert readers(engine, Window(), archive_dir=str(archive_dir)).by_article == {"x": 3, "y": 2, "gone": 1}
    assert audited_clean(inproc, settings, archive_dir)


# -- 4. refused with counters from before the archive -------------------------------------------------------


def test_rebuild_is_refused_while_counters_from_before_the_archive_exist(
        settings, engine, emitter, archive_dir, day0, tmp_path, inproc):
    before = [Read("old", day0 + n * MS_PER_HOUR, f"v{n}") for n in range(5)] + [Vote("old", day0, "w", 3.0)]
    emit(emitter, before)
    drain(settings, None)
    # No archive at all yet: nothing to rebuild from.
    _, err = inproc(settings, "rebuild", "--yes", expect=1)
    assert "READRATE_ARCHIVE" in err and "no archive" in err

    after = [Read("old", day0 + MS_PER_DAY, "v9"), Read("new", day0 + MS_PER_DAY, "v1"),
             Vote("new", day0 + MS_PER_DAY, "w", 5.0)]
    emit(emitter, after)
    drain(settings, archive_dir)
    counted = snapshot(engine)
    assert_same_state(counted, tally_events(before + after))

    copy = tmp_path / "copy.db"
    for args in (["--yes"], ["--into", f"sqlite:///{copy}"]):
        refused = cli(settings, "rebuild", *args, archive=archive_dir, expect=1)
        assert "before the archive" in refused.stderr, refused.stderr
        assert len(refused.stderr.strip().splitlines()) <= 2, refused.stderr
        assert snapshot(engine) == counted
    _, err = inproc(settings, "rebuild", "--exclude-voter", "w", "--reason", "spam", "--yes", archive=archive_dir,
                    expect=1)
    assert "before the archive" in err
    with engine.connect() as conn:
        assert conn.execute(select(operations)).all() == []
    assert snapshot(engine) == counted


# -- 5. unique readers ---------------------------------------------------------------------------------------


def test_reports_count_distinct_visitors_per_article_for_all_time_and_a_window(
        settings, engine, emitter, archive_dir, day0, inproc):
    events = reader_events(day0)
    emit(emitter, events)
    drain(settings, archive_dir)

    def report(*args: str, archive: Path | None = archive_dir):
        out, err = inproc(settings, "report", *args, "--format", "json", archive=archive)
        return json.loads(out), err

    since_ms, until_ms = day0 + 10 * MS_PER_HOUR, day0 + 41 * MS_PER_HOUR
    windows = {
        "all time": ([], (None, None)),
        "whole hours": (["--since", iso(since_ms), "--until", iso(until_ms)], (since_ms, until_ms)),
        # Both ends are taken down to the hour, as for reads.
        "ragged": (["--since", iso(since_ms + 30 * 60_000), "--until", iso(until_ms + 45 * 60_000)],
                   (since_ms, until_ms)),
    }
    for name, (args, (lo, hi)) in windows.items():
        want, reads, anonymous = expected_readers(events, lo, hi)
        assert anonymous > 0 and want.get("anon-only", 0) == 0

        listed, note = report("top", "--limit", "0", *args)
        assert {r["article_id"]: r["readers"] for r in listed} == want, name
        assert {r["article_id"]: r["reads"] for r in listed} == reads, name
        assert f"{anonymous:,} read" in note and "no visitor" in note, (name, note)

        ranked, _ = report("top", "--limit", "0", "--by", "readers", *args)
        order = sorted((a for a in want if want[a] > 0), key=lambda a: (-want[a], -reads[a], a))
        assert [r["article_id"] for r in ranked] == order, name
        assert [r["readers"] for r in ranked] == [want[a] for a in order]
        assert [r["reads"] for r in ranked] == [reads[a] for a in order]
        assert [r["rank"] for r in ranked] == list(range(1, len(order) + 1))
        top3, _ = report("top", "--limit", "3", "--by", "readers", *args)
        assert top3 == ranked[:3]

        for article in ("art-3", "tie-x", "anon-only", "voted-unread"):
            doc, _ = report("article", article, *args)
            assert doc["readers"] == want.get(article, 0), (name, article)

    ranked, _ = report("top", "--limit", "0", "--by", "readers")
    ties = [r["article_id"] for r in ranked if r["article_id"].startswith("tie-")]
    assert ties == ["tie-z", "tie-x", "tie-y"]
    # Found without READRATE_ARCHIVE too (from where archiving started), and by a real process the same.
    assert report("top", "--limit", "0", archive=None)[0] == report("top", "--limit", "0")[0]
    done = cli(settings, "report", "top", "--by", "readers", "--limit", "0", "--format", "json", archive=archive_dir)
    assert json.loads(done.stdout) == ranked
    assert "no visitor" in done.stderr


def test_readers_without_the_archive_is_a_usage_error(settings, engine, emitter, day0, inproc):
    emit(emitter, [Read("a", day0, "v"), Read("a", day0 + 1, "w")])
    drain(settings, None)
    _, err = inproc(settings, "report", "top", "--by", "readers", expect=2)
    assert "READRATE_ARCHIVE" in err
    listed, _ = top_json(inproc, settings)
    assert listed and all("readers" not in r for r in listed)
    assert "readers" not in article_json(inproc, settings, "a")


# -- 6. HyperLogLog ------------------------------------------------------------------------------------------


def test_readers_estimated_with_hyperloglog_are_within_3_percent_and_exact_counts_are_exact(
        settings, engine, emitter, archive_dir, day0):
    sizes = {"small": 50, "medium": 2_000, "large": 30_000}
    events = []
    for article, n in sizes.items():
        events += [Read(article, day0 + (k % 60) * MS_PER_HOUR + k % 1000, f"{article}-visitor-{k}")
                   for k in range(n)]
        # Repeat visits and reads without a visitor change nothing.
        events += [Read(article, day0 + k, f"{article}-visitor-{k}") for k in range(0, n, 10)]
        events += [Read(article, day0 + 2 * MS_PER_DAY + k, None) for k in range(5)]
    emit(emitter, events)
    drain(settings, archive_dir)
    assert snapshot(engine)["stats"]["large"][0] == 30_000 + 3_000 + 5

    estimate = readers(engine, Window(), archive_dir=str(archive_dir), exact_limit=0)
    assert estimate.exact is False
    assert (estimate.reads, estimate.anonymous_reads) == (len(events), 15)
    assert set(estimate.by_article) == set(sizes)
    for article, n in sizes.items():
        assert abs(estimate.by_article[article] - n) <= 0.03 * n, (article, estimate.by_article[article], n)

    exact = readers(engine, Window(), archive_dir=str(archive_dir))
    assert exact.exact is True and exact.by_article == sizes
    assert (exact.reads, exact.anonymous_reads) == (len(events), 15)
    only = readers(engine, Window(), archive_dir=str(archive_dir), articles=["medium", "nowhere"])
    assert only.by_article == {"medium": 2_000}
