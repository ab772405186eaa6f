"""Integration: the archive (READRATE_ARCHIVE) a real `readrate worker --burst` writes; `readrate audit`.

Events go into the streams through `events.Emitter` (and bad entries by hand, as a careless
producer would); a real worker drains them with the archive on. The archive's recorded files,
read back with DuckDB, must hold every counted event exactly once and no rejected one;
`readrate audit` must find no drift after a clean drain, and must name exactly the articles
whose counters were changed behind the worker's back.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from redis import Redis
from sqlalchemy import delete, select, update

from readrate.events import Read, Vote
from readrate.events.errors import ConfigError
from readrate.reports import audit as audit_module
from readrate.workers.archive import Archive
from readrate.workers.drain import Drainer
from readrate.workers.schema import (
    archive_baseline,
    archive_files,
    archive_state,
    article_stats,
    reads_daily,
    rejected_events,
    votes,
)
from helpers import (
    MS_PER_DAY,
    MS_PER_HOUR,
    NO_ARCHIVE,
    READRATE,
    archive_env,
    archived,
    assert_same_state,
    backlog,
    drain,
    env_for,
    run_cli,
    snapshot,
    stream_entries,
    tally,
    wire_row,
)


def audit(settings, *args: str, archive: Path | None = None):
    return run_cli(settings, "audit", *args, timeout=120, **archive_env(archive))


def audit_json(settings, *args: str, archive: Path | None = None) -> tuple[int, dict]:
    done = audit(settings, "--format", "json", *args, archive=archive)
    assert done.returncode in (0, 1), done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, json.loads(done.stdout)


def recorded(engine) -> list:
    with engine.connect() as conn:
        return conn.execute(select(archive_files)).all()


def valid_entries(entries: dict, bad: set[tuple[int, str]]) -> list[tuple[int, str, dict]]:
    return [(shard, i, fields) for shard, items in entries.items() for i, fields in items
            if (shard, i) not in bad]


def mixed_events(day0: int, articles: list[str], n: int = 240) -> list:
    """Reads (with and without a visitor) and votes over three days; re-votes later, earlier and at the
    same time as the vote they follow."""
    events = []
    for i in range(n):
        article = articles[i % len(articles)]
        at = day0 + (i % 3) * MS_PER_DAY + (i % 24) * MS_PER_HOUR + i
        if i % 5 == 4:
            events.append(Vote(article, at, f"voter-{i % 7}", float(1 + i % 5)))
        else:
            events.append(Read(article, at, None if i % 3 == 0 else f"visitor-{i % 13}"))
    article = articles[0]
    t = day0 + 5 * MS_PER_HOUR
    events += [
        Vote(article, t, "revoter", 2.0),
        Vote(article, t + MS_PER_DAY, "revoter", 5.0),  # later: replaces, moves day
        Vote(article, t - MS_PER_HOUR, "revoter", 1.0),  # earlier: ignored
        Vote(article, t, "tie", 3.0),
        Vote(article, t, "tie", 4.0),  # the same time: the later entry wins
    ]
    return events


def bad_entries(redis, settings, day0: int) -> set[tuple[int, str]]:
    """XADD a few entries that break the contract, by hand; their (shard, stream id)."""
    cases = [
        {"k": "read", "a": "bad-no-time"},
        {"k": "vote", "a": "bad-rating", "t": str(day0), "v": "voter-1", "r": "9"},
        {"k": "read", "a": "bad-future", "t": str(time.time_ns() // 1_000_000 + 3_600_000)},
        {"k": "like", "a": "bad-kind", "t": str(day0)},
        {"k": "vote", "a": "bad-no-voter", "t": str(day0), "r": "3"},
    ]
    out = set()
    for n, fields in enumerate(cases):
        shard = n % settings.shards
        out.add((shard, redis.xadd(settings.keys.stream(shard), fields).decode()))
    return out


# -- every counted event exactly once --------------------------------------------------------------


def test_a_burst_worker_archives_every_counted_event_exactly_once_and_no_rejected_one(
        settings, engine, redis, emitter, archive_dir, day0):
    articles = [f"article-{n}" for n in range(9)] + ["café-crème", "news/2024/x"]
    events = mixed_events(day0, articles)
    assert emitter.emit_many(events[:120]) == 120
    bad = bad_entries(redis, settings, day0)
    assert emitter.emit_many(events[120:]) == len(events) - 120
    entries = stream_entries(redis, settings)
    assert sum(map(len, entries.values())) == len(events) + len(bad)

    drain(settings, archive_dir, batch_size=40)  # many batches, most over several days

    valid = valid_entries(entries, bad)
    rows = archived(engine, archive_dir)
    assert Counter((r[0], r[1]) for r in rows) == Counter((shard, i) for shard, i, _ in valid)
    assert max(Counter((r[0], r[1]) for r in rows).values()) == 1
    assert sorted(rows) == sorted(wire_row(shard, i, f) for shard, i, f in valid)
    assert not {(r[0], r[1]) for r in rows} & bad
    with engine.connect() as conn:
        dead = {(r.shard, r.stream_id) for r in conn.execute(select(rejected_events))}
    assert dead == bad
    # The counters are what the valid entries say, and the streams are drained.
    assert_same_state(snapshot(engine), tally(f for _, _, f in valid))
    assert backlog(redis, settings) == 0


def test_the_recorded_files_describe_what_they_hold_and_are_all_that_is_on_disk(
        settings, engine, redis, emitter, archive_dir, day0):
    events = mixed_events(day0, [f"article-{n}" for n in range(5)], n=150)
    assert emitter.emit_many(events) == len(events)

    drain(settings, archive_dir, batch_size=25)

    files = recorded(engine)
    assert len(files) > 4
    total = 0
    with duckdb.connect() as duck:
        for f in files:
            path = archive_dir / f.path
            assert f.path.startswith(f"day={f.day}/")
            assert f.bytes == path.stat().st_size
            ids, days, shards = zip(*duck.execute(
                "SELECT stream_id, strftime(\"at\", '%Y-%m-%d'), shard FROM read_parquet($p)",
                {"p": str(path)}).fetchall())
            assert (f.events, f.first_id, f.last_id) == (len(ids), ids[0], ids[-1])
            assert set(days) == {str(f.day)} and set(shards) == {f.shard}
            total += len(ids)
    assert total == len(events)
    on_disk = sorted(name for name, _ in Archive(archive_dir).on_disk())
    assert on_disk == sorted(f.path for f in files), "unrecorded (or missing) files after a clean drain"
    with engine.connect() as conn:
        state = conn.execute(select(archive_state)).one()
        assert Path(state.root) == archive_dir
        assert conn.scalar(select(archive_baseline.c.article_id)) is None  # nothing was counted before


# -- readrate audit ------------------------------------------------------------------------------


def test_audit_finds_no_drift_after_a_drain_and_names_exactly_the_articles_changed_behind_its_back(
        settings, engine, emitter, archive_dir, day0):
    articles = [f"article-{n}" for n in range(8)]
    events = mixed_events(day0, articles, n=320)
    assert emitter.emit_many(events) == len(events)
    drain(settings, archive_dir, batch_size=60)

    clean = audit(settings)  # the archive found from where archiving started
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "no drift" in clean.stderr and "Traceback" not in clean.stderr
    code, doc = audit_json(settings, archive=archive_dir)
    assert code == 0
    assert (doc["drifted"], doc["drift"], doc["events"], doc["baseline_articles"]) == (0, [], len(events), 0)
    assert doc["articles"] == len(articles) and doc["files"] == len(recorded(engine))
    assert doc["since"] is None and doc["archive_started_at"]

    with engine.begin() as conn:
        conn.execute(update(article_stats).where(article_stats.c.article_id == "article-1")
                     .values(reads=article_stats.c.reads + 1))
        conn.execute(update(article_stats).where(article_stats.c.article_id == "article-2")
                     .values(rating_sum=article_stats.c.rating_sum + 1))
        day = conn.scalar(select(reads_daily.c.day).where(reads_daily.c.article_id == "article-3"))
        conn.execute(update(reads_daily)
                     .where(reads_daily.c.article_id == "article-3", reads_daily.c.day == day)
                     .values(reads=reads_daily.c.reads - 1))
        voter = conn.scalar(select(votes.c.voter_id).where(votes.c.article_id == "article-4"))
        conn.execute(delete(votes).where(votes.c.article_id == "article-4", votes.c.voter_id == voter))
        voter5 = conn.scalar(select(votes.c.voter_id).where(votes.c.article_id == "article-5"))
        conn.execute(update(votes).where(votes.c.article_id == "article-5", votes.c.voter_id == voter5)
                     .values(rating=votes.c.rating + 0.5))

    code, doc = audit_json(settings)
    assert code == 1
    assert {d["article_id"] for d in doc["drift"]} == {f"article-{n}" for n in (1, 2, 3, 4, 5)}
    assert doc["drifted"] == len(doc["drift"]) and not any(d["before_archive"] for d in doc["drift"])
    by = {(d["article_id"], d["what"]): d for d in doc["drift"]}
    assert by[("article-1", "reads")]["database"] == by[("article-1", "reads")]["archive"] + 1
    assert by[("article-2", "rating_sum")]["database"] == by[("article-2", "rating_sum")]["archive"] + 1
    assert [w for a, w in by if a == "article-3"] == [f"reads on {day}"]
    assert by[("article-4", f"vote of {voter}")]["database"] is None
    changed = by[("article-5", f"vote of {voter5}")]
    assert changed["database"] == changed["archive"] + 0.5

    table = audit(settings)
    assert table.returncode == 1 and "drift" in table.stderr and "Traceback" not in table.stderr
    assert "article-4" in table.stdout


def test_counters_from_before_the_archive_are_not_drift_and_a_worker_without_the_archive_is_refused(
        settings, engine, redis, emitter, archive_dir, day0):
    before = [f"old-{n}" for n in range(4)]
    first = mixed_events(day0, before, n=80)
    assert emitter.emit_many(first) == len(first)
    drain(settings, None)
    assert not archive_dir.exists() or not list(archive_dir.rglob("*.parquet"))
    with engine.connect() as conn:
        assert conn.execute(select(archive_state)).first() is None

    # More events: for two of the old articles, and for new ones.
    after = mixed_events(day0, ["old-0", "old-1", "new-0", "new-1", "new-2"], n=100)
    assert emitter.emit_many(after) == len(after)
    drain(settings, archive_dir)

    code, doc = audit_json(settings, "--show-before")
    assert code == 0, doc
    assert doc["drifted"] == 0 and doc["baseline_articles"] == len(before)
    assert doc["events"] == len(after)
    flagged = {d["article_id"] for d in doc["drift"]}
    assert {"old-0", "old-1"} <= flagged <= set(before)
    assert all(d["before_archive"] for d in doc["drift"])
    assert doc["before_archive"] == len(doc["drift"])
    code, quiet = audit_json(settings)  # without --show-before only drift is listed
    assert code == 0 and quiet["drift"] == [] and quiet["before_archive"] == doc["before_archive"]
    with engine.connect() as conn:
        baseline = {r.article_id: (r.reads, r.votes) for r in conn.execute(select(archive_baseline))}
    assert set(baseline) == set(before)
    table = audit(settings)
    assert table.returncode == 0, table.stderr
    assert "before the archive" in table.stderr and "no drift" in table.stderr

    # From now on every worker must archive.
    assert emitter.emit_many([Read("new-0", day0 + 2 * MS_PER_DAY, "late")]) == 1
    refused = run_cli(settings, "worker", "--burst", timeout=120, **NO_ARCHIVE)
    assert refused.returncode == 2, refused.stderr
    assert "READRATE_ARCHIVE" in refused.stderr and "Traceback" not in refused.stderr
    assert backlog(redis, settings) == 1  # it counted nothing
    drain(settings, archive_dir)
    assert audit(settings).returncode == 0


def test_audit_since_compares_only_the_buckets_from_that_day_on(settings, engine, emitter, archive_dir, day0):
    articles = ["early", "late", "steady"]
    events = [Read(a, day0 + d * MS_PER_DAY + h * MS_PER_HOUR, f"v{h}") for a in articles for d in range(3)
              for h in range(0, 24, 5)]
    events += [Vote(a, day0 + d * MS_PER_DAY + 7, f"voter-{d}", float(2 + d))
               for a in articles for d in range(3)]
    assert emitter.emit_many(events) == len(events)
    drain(settings, archive_dir)
    assert audit(settings).returncode == 0

    first, last = datetime.fromtimestamp(day0 / 1000, UTC).date(), \
        datetime.fromtimestamp((day0 + 2 * MS_PER_DAY) / 1000, UTC).date()
    with engine.begin() as conn:
        for article, day in (("early", first), ("late", last)):
            conn.execute(update(reads_daily)
                         .where(reads_daily.c.article_id == article, reads_daily.c.day == day)
                         .values(reads=reads_daily.c.reads + 3))

    since = (first + timedelta(days=1)).isoformat()
    code, doc = audit_json(settings, "--since", since)
    assert code == 1
    assert doc["since"] == since
    assert [(d["article_id"], d["what"]) for d in doc["drift"]] == [("late", f"reads on {last.isoformat()}")]
    assert (doc["drift"][0]["database"], doc["drift"][0]["archive"]) == (8, 5)
    code, everything = audit_json(settings)
    assert code == 1
    assert {(d["article_id"], d["what"]) for d in everything["drift"]} == {
        ("early", f"reads on {first.isoformat()}"), ("late", f"reads on {last.isoformat()}")}
    # From the last day on: only the later change, and the events of that day only.
    code, doc = audit_json(settings, "--since", last.isoformat())
    assert (code, [d["article_id"] for d in doc["drift"]]) == (1, ["late"])
    assert doc["events"] == sum(e.at_ms >= day0 + 2 * MS_PER_DAY for e in events)
    # From a day after every event: nothing to compare, nothing drifted.
    code, doc = audit_json(settings, "--since", (last + timedelta(days=1)).isoformat())
    assert (code, doc["drift"], doc["events"]) == (0, [], 0)


@pytest.mark.parametrize("configured", [False, True], ids=["unset", "set"])
def test_audit_before_the_archive_ever_started_exits_1_with_one_clear_line(
        settings, engine, emitter, archive_dir, day0, configured):
    assert emitter.emit_many([Read("a", day0, "v"), Vote("a", day0 + 1, "w", 4.0)]) == 2
    drain(settings, None)

    done = audit(settings, archive=archive_dir if configured else None)

    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "READRATE_ARCHIVE" in done.stderr and "no archive" in done.stderr
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


# -- defects found while writing these tests, fixed ---------------------------------------------------


def test_a_relative_archive_folder_is_found_by_an_audit_run_elsewhere(
        settings, engine, emitter, tmp_path, day0):
    assert emitter.emit_many([Read("a", day0 + n, "v") for n in range(10)]) == 10
    workdir = tmp_path / "workdir"
    workdir.mkdir()
    done = subprocess.run([*READRATE, "worker", "--burst"], cwd=workdir, capture_output=True, text=True,
                          timeout=120, env=env_for(settings, READRATE_ARCHIVE="relative-archive"))
    assert done.returncode == 0, done.stderr
    assert list((workdir / "relative-archive").rglob("*.parquet"))

    audited = audit(settings)  # from the test's own folder, the archive found where archiving started

    assert audited.returncode == 0, audited.stderr


def test_audit_with_a_recorded_file_missing_says_which_file_without_calling_it_a_bug(
        settings, engine, emitter, archive_dir, day0):
    assert emitter.emit_many([Read("a", day0 + n * MS_PER_DAY, "v") for n in range(3)]) == 3
    drain(settings, archive_dir)
    lost = recorded(engine)[0].path
    (archive_dir / lost).unlink()

    audited = audit(settings)

    assert audited.returncode == 1 and "Traceback" not in audited.stderr
    assert "this is a bug" not in audited.stderr, audited.stderr
    assert lost in audited.stderr


def test_a_worker_archiving_into_another_folder_is_refused_or_the_audit_still_works(
        settings, engine, emitter, tmp_path, day0):
    assert emitter.emit_many([Read("a", day0, "v")]) == 1
    drain(settings, tmp_path / "one")
    assert emitter.emit_many([Read("b", day0 + 1, "v")]) == 1

    other = run_cli(settings, "worker", "--burst", timeout=120, READRATE_ARCHIVE=str(tmp_path / "two"))

    if other.returncode == 2:  # refused: fine, if it says why
        assert "READRATE_ARCHIVE" in other.stderr
        return
    assert other.returncode == 0, other.stderr
    for configured in (None, tmp_path / "one", tmp_path / "two"):
        audited = audit(settings, archive=configured)
        assert audited.returncode == 0, audited.stderr


def test_a_drainer_without_the_archive_stops_counting_once_archiving_has_started(
        settings, engine, redis, emitter, archive_dir, day0):
    # Two workers of a rolling deploy: one started before READRATE_ARCHIVE was set, one after.
    plain = Drainer(settings, engine=engine, redis=Redis.from_url(settings.redis_url))
    archiving = Drainer(replace(settings, archive=str(archive_dir)), engine=engine,
                        redis=Redis.from_url(settings.redis_url))
    try:
        assert emitter.emit_many([Read("first", day0, "v")]) == 1
        for shard in settings.keys.drained:
            archiving.drain(shard)
        assert emitter.emit_many([Read("second", day0 + 1, "v")]) == 1
        refused = False
        try:
            for shard in settings.keys.drained:
                plain.drain(shard)
        except ConfigError:
            refused = True
    finally:
        plain.close()
        archiving.close()

    assert refused or audit_module.audit(engine, Archive(archive_dir)).drifted == []


def test_a_batch_whose_archive_files_cannot_be_written_commits_nothing_and_is_counted_once_later(
        settings, engine, redis, emitter, archive_dir, day0):
    # The files are written beside the batch's statements; the transaction waits for them and fails with them.
    events = mixed_events(day0, [f"article-{n}" for n in range(4)], n=60)
    assert emitter.emit_many(events) == len(events)
    entries = stream_entries(redis, settings)
    archive_dir.mkdir()
    blocker = archive_dir / f"day={datetime.fromtimestamp(day0 / 1000, UTC).date().isoformat()}"
    blocker.write_text("a file where the first day's folder goes")
    drainer = Drainer(replace(settings, archive=str(archive_dir)), engine=engine,
                      redis=Redis.from_url(settings.redis_url))
    try:
        with pytest.raises(OSError):
            for shard in settings.keys.drained:
                drainer.drain(shard)
        assert snapshot(engine) == tally([]), "a batch without its archive files changed counters"
        assert recorded(engine) == []
        assert stream_entries(redis, settings) == entries
    finally:
        drainer.close()
    blocker.unlink()

    drain(settings, archive_dir, batch_size=20)

    valid = valid_entries(entries, set())
    assert sorted(archived(engine, archive_dir)) == sorted(wire_row(shard, i, f) for shard, i, f in valid)
    assert_same_state(snapshot(engine), tally(f for _, _, f in valid))
