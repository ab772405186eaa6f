"""Integration: `readrate moderate reset|unvote|undo|log` through a real `readrate worker`, archive on.

Reads and votes go into the streams through `events.Emitter`; the moderation commands run as
real `readrate` processes (with --wait) while a real worker drains with READRATE_ARCHIVE set.
What the counters must be after every step is worked out by `helpers.ModerationModel`, a few lines
of plain Python that know the rules and nothing of the product's code: reads per article and hour;
per (article, voter) the vote with the latest event time (on equal times the later arrival);
a reset or unvote removes what was counted before it; an undo puts back what its target
removed, each removed vote unless the voter's stored vote is as new or newer.

After each step the in-process audit (the same code as `readrate audit`) must find no drift;
at the end `readrate audit` must exit 0 and `readrate rebuild --into` must write exactly the
live counter tables.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from helpers import (
    MS_PER_DAY,
    MS_PER_HOUR,
    ModerationModel,
    assert_same_state,
    assert_tables_equal,
    cli,
    full_state,
    moderate,
    snapshot,
    start_logged_worker,
    stop,
    wait_for_state,
)
from readrate.events import Read, Vote
from readrate.reports.audit import audit as audit_counters
from readrate.workers.archive import Archive
from readrate.workers.db import make_engine
from readrate.workers.schema import operations, rejected_events

# The running worker drains on the jobs the emitter enqueues, as with pages (tests/integration/conftest.py).
EMITTER_ENQUEUES = True


# -- fixtures and helpers ---------------------------------------------------------------------------------


@pytest.fixture
def worker(settings, engine, archive_dir, tmp_path):
    """A running `readrate worker` with the archive on; stopped (SIGTERM, exit 0, no traceback) afterwards."""
    log = tmp_path / "worker.log"
    process = start_logged_worker(settings, log, READRATE_ARCHIVE=str(archive_dir))
    yield process
    code = stop(process)
    text = log.read_text()
    assert "Traceback" not in text, text[-4000:]
    assert code == 0, text[-3000:]


def together(*calls: Callable[[], object]) -> list:
    """Run independent `readrate` processes (about 2 s each, mostly start-up) at once; their results."""
    with ThreadPoolExecutor(len(calls)) as pool:
        return [f.result() for f in [pool.submit(call) for call in calls]]


def emit(emitter, model: ModerationModel, events) -> None:
    assert emitter.emit_many(events) == len(events)
    model.events(events)


def check(engine, archive_dir: Path, model: ModerationModel) -> None:
    """The counters equal the model (once drained), and the audit finds nothing the archive cannot explain."""
    wait_for_state(engine, model.expected(), timeout=60)
    drift = audit_counters(engine, Archive(archive_dir)).drifted
    assert drift == [], drift


def log_json(settings, *args: str) -> dict[int, dict]:
    done = cli(settings, "moderate", "log", "--format", "json", *args)
    return {row["id"]: row for row in json.loads(done.stdout)}


def assert_rebuild_equals_live(settings, engine, archive_dir: Path, target_url: str) -> None:
    done = cli(settings, "rebuild", "--into", target_url, archive=archive_dir)
    assert "rebuilt into" in done.stderr
    target = make_engine(target_url)
    try:
        assert_tables_equal(full_state(target), full_state(engine))
    finally:
        target.dispose()


def no_dead_letters(engine) -> None:
    with engine.connect() as conn:
        assert conn.execute(select(rejected_events)).all() == []


def wave(articles, voters, at0: int, n: int = 60, *, visitors: int = 9) -> list:
    """Reads over three days and many hours, and votes by `voters`."""
    out = []
    for i in range(n):
        article = articles[i % len(articles)]
        at = at0 + (i % 3) * MS_PER_DAY + (i * 5 % 24) * MS_PER_HOUR + i
        if i % 3 == 2:
            out.append(Vote(article, at, voters[i // 3 % len(voters)], float(1 + i % 5)))
        else:
            out.append(Read(article, at, None if i % 5 == 0 else f"visitor-{i % visitors}"))
    return out


# -- reset --reads / --votes / both, new events, undo ------------------------------------------------------


def test_resets_remove_what_was_counted_events_after_count_and_undo_restores_it(
        settings, engine, redis, emitter, archive_dir, day0, worker, empty_target):
    a, b, c, d = "art-a", "art-b", "art-c", "art-d"  # d: never touched
    model = ModerationModel()
    emit(emitter, model, wave([a, b, c, d], ["v0", "v1", "v2"], day0, n=120))
    t0, t1, t2 = day0 + 2 * MS_PER_DAY + 5 * MS_PER_HOUR, day0 + MS_PER_DAY + 9 * MS_PER_HOUR, day0 + 7
    emit(emitter, model, [Vote(b, t0, "b0", 4.0), Vote(b, t1, "b1", 2.0), Vote(b, t2, "b2", 5.0)])
    check(engine, archive_dir, model)

    # reset --reads, right behind reads and a vote of the same article still in the stream: they are removed.
    late = [Read(a, day0 + 10 * MS_PER_HOUR + 1, "late"), Read(a, day0 + 2 * MS_PER_DAY, None),
            Vote(a, day0 + 3, "v9", 3.0)]
    emit(emitter, model, late)
    op_a = moderate(settings, "reset", a, "--reads", "--reason", "bot storm", "--by", "alice")
    model.reset(op_a, a, votes=False)
    after_a = [Read(a, day0 + 10 * MS_PER_HOUR + 2, "after"),  # an hour that also had removed reads
               Read(a, day0 + 2 * MS_PER_DAY + 3 * MS_PER_HOUR, "after")]
    emit(emitter, model, after_a)
    check(engine, archive_dir, model)
    assert model.removed_counts(op_a)[0] > 20

    # reset --votes; then the voters vote again: older, at the same time, new.
    op_b = moderate(settings, "reset", b, "--votes", "--reason", "vote ring")
    model.reset(op_b, b, reads=False)
    emit(emitter, model, [Vote(b, t0 - MS_PER_HOUR, "b0", 1.0),  # older than the removed vote
                          Vote(b, t1, "b1", 3.0),  # the removed vote's very time
                          Vote(b, day0 + 4, "v7", 4.0), Read(b, day0 + 5, "after")])
    check(engine, archive_dir, model)

    # reset (both), new events.
    op_c = moderate(settings, "reset", c, "--reason", "test article")
    model.reset(op_c, c)
    emit(emitter, model, [Read(c, day0 + MS_PER_DAY + 1, "x"), Vote(c, day0 + 2, "v0", 2.0)])
    check(engine, archive_dir, model)
    assert all(n > 0 for n in model.removed_counts(op_c))

    # What the log and the reports say while the resets stand; a rebuild leaves out what they removed.
    log, report, both, table, _ = together(
        lambda: log_json(settings),
        lambda: json.loads(cli(settings, "report", "article", a, "--format", "json").stdout),
        lambda: json.loads(cli(settings, "report", "article", c, "--format", "json").stdout)["resets"],
        lambda: cli(settings, "report", "article", a).stdout,
        lambda: assert_rebuild_equals_live(settings, engine, archive_dir, empty_target))
    assert [log[op]["state"] for op in (op_a, op_b, op_c)] == ["applied"] * 3
    assert (log[op_a]["actor"], log[op_a]["reason"], log[op_a]["action"]) == ("alice", "bot storm", "reset")
    assert log[op_b]["actor"] == getpass.getuser()
    for op in (op_a, op_b, op_c):
        removed_reads, removed_votes = model.removed_counts(op)
        assert log[op]["effect"] == f"removed {removed_reads:,} reads and {removed_votes:,} votes"
    assert [(r["id"], r["reason"], r["reset"]) for r in report["resets"]] == [(op_a, "bot storm", ["reads"])]
    applied = datetime.fromisoformat(report["resets"][0]["applied_at"])
    assert applied.date() in {datetime.now(UTC).date(), (datetime.now(UTC) - timedelta(minutes=5)).date()}
    assert [(r["id"], r["reset"]) for r in both] == [(op_c, ["reads", "votes"])]
    assert f"Reset on {applied:%Y-%m-%d} (bot storm)" in table, table

    # Undo each: what was removed comes back on top of what came later.
    removed_b = model.removed_counts(op_b)[1]
    undo_b = moderate(settings, "undo", str(op_b), "--reason", "it was real")
    model.undo(undo_b, op_b)
    assert model.votes[(b, "b0")] == (t0, 4.0)  # the removed, newer vote is back over the older re-vote
    assert model.votes[(b, "b1")] == (t1, 3.0)  # equal time: the vote cast after the reset stands
    assert model.restored[undo_b] == (0, removed_b - 1)  # all but b1's
    emit(emitter, model, [Vote(b, t2 + 1, "b2", 1.0)])  # and voting goes on as usual
    check(engine, archive_dir, model)
    undo_a = moderate(settings, "undo", str(op_a))
    model.undo(undo_a, op_a)
    check(engine, archive_dir, model)
    undo_c = moderate(settings, "undo", str(op_c), "--reason", "wrong article")
    model.undo(undo_c, op_c)
    emit(emitter, model, [Read(c, day0 + 6, "y")])
    check(engine, archive_dir, model)

    log, report, audited = together(
        lambda: log_json(settings),
        lambda: json.loads(cli(settings, "report", "article", a, "--format", "json").stdout),
        lambda: cli(settings, "audit", archive=archive_dir))
    assert [log[op]["state"] for op in (op_a, op_b, op_c)] == [f"undone by {u}"
                                                               for u in (undo_a, undo_b, undo_c)]
    for undo, target, reason in ((undo_a, op_a, f"undo of operation {op_a}"), (undo_b, op_b, "it was real"),
                                 (undo_c, op_c, "wrong article")):
        reads_back, votes_back = model.restored[undo]
        assert (log[undo]["action"], log[undo]["state"], log[undo]["reason"]) == ("undo", "applied", reason)
        assert log[undo]["effect"] == (f"restored {reads_back:,} reads and {votes_back:,} votes "
                                       f"of operation {target}")
    assert report["resets"] == []

    assert_same_state(snapshot(engine), model.expected())
    no_dead_letters(engine)
    assert "no drift" in audited.stderr


# -- unvote everywhere and on one article, new votes, undo -------------------------------------------------


def test_unvotes_remove_the_voters_votes_later_votes_count_and_undo_brings_back_the_newer_ones(
        settings, engine, redis, emitter, archive_dir, day0, worker, empty_target):
    articles = [f"art-{n}" for n in range(8)]  # over every shard
    assert len({settings.keys.shard_of(a) for a in articles}) == settings.shards
    model = ModerationModel()
    emit(emitter, model, wave(articles, ["v0", "v1", "v2", "v3"], day0, n=96))
    spam = [Vote(a, day0 + MS_PER_DAY + n * MS_PER_HOUR, "spam", 5.0) for n, a in enumerate(articles)]
    spam.append(Vote(articles[0], day0 + 2 * MS_PER_DAY, "spam", 4.0))  # a later re-vote: replaces
    spam.append(Vote(articles[1], day0, "spam", 1.0))  # an older re-vote: ignored
    emit(emitter, model, spam + [Vote(articles[2], day0 + 11, "v1", 3.0),
                                 Vote(articles[3], day0 + 12, "v1", 2.0)])
    check(engine, archive_dir, model)

    op_spam = moderate(settings, "unvote", "--voter", "spam", "--reason", "scripted votes", "--by", "mod")
    model.unvote(op_spam, "spam")
    assert model.removed_counts(op_spam) == (0, len(articles))
    x, y, z = articles[0], articles[4], "art-z"
    removed_x, removed_y = model.removed[op_spam][1][(x, "spam")], model.removed[op_spam][1][(y, "spam")]
    emit(emitter, model, [
        Vote(x, removed_x[0] - MS_PER_DAY, "spam", 1.0),  # re-votes with an OLDER event time: counts now
        Vote(y, removed_y[0], "spam", 2.0),  # the very time of the removed vote
        Vote(z, day0 + 1, "spam", 3.0), Vote(z, day0 + 2, "spam", 4.0),  # a later one replaces
        Read(x, day0 + 9, "r"),
    ])
    check(engine, archive_dir, model)

    v1_on = articles[2]
    op_v1 = moderate(settings, "unvote", "--voter", "v1", "--article", v1_on, "--reason", "one bad vote")
    model.unvote(op_v1, "v1", v1_on)
    assert model.removed_counts(op_v1) == (0, 1)
    assert (articles[3], "v1") in model.votes  # v1's other votes stay
    emit(emitter, model, [Vote(articles[3], day0 + 13, "v1", 4.0)])
    check(engine, archive_dir, model)

    log = log_json(settings)
    assert (log[op_spam]["action"], log[op_spam]["voter_id"], log[op_spam]["article_id"]) == (
        "unvote", "spam", None)
    assert (log[op_spam]["actor"], log[op_spam]["reason"]) == ("mod", "scripted votes")
    assert log[op_spam]["effect"] == f"removed {len(articles)} votes"
    assert (log[op_v1]["article_id"], log[op_v1]["effect"], log[op_v1]["state"]) == (v1_on, "removed 1 votes",
                                                                                      "applied")

    undo_spam = moderate(settings, "undo", str(op_spam), "--reason", "not spam after all")
    model.undo(undo_spam, op_spam)
    assert model.votes[(x, "spam")] == removed_x  # the removed, newer vote is back
    assert model.votes[(y, "spam")] == (removed_y[0], 2.0)  # equal time: the later vote stands
    assert model.votes[(z, "spam")] == (day0 + 2, 4.0)  # cast after the unvote: not touched
    assert model.restored[undo_spam] == (0, len(articles) - 1)  # all but y's
    check(engine, archive_dir, model)
    emit(emitter, model, [Vote(x, day0 + 3, "spam", 2.0)])  # older than the vote that came back: ignored
    check(engine, archive_dir, model)

    # With one unvote still in force, a rebuild leaves out exactly what it removed.
    assert_rebuild_equals_live(settings, engine, archive_dir, empty_target)

    undo_v1 = moderate(settings, "undo", str(op_v1))
    model.undo(undo_v1, op_v1)
    assert model.restored[undo_v1] == (0, 1)
    check(engine, archive_dir, model)
    log, audited = together(lambda: log_json(settings), lambda: cli(settings, "audit", archive=archive_dir))
    assert log[op_spam]["state"] == f"undone by {undo_spam}" and log[op_v1]["state"] == f"undone by {undo_v1}"
    assert log[undo_spam]["effect"] == (f"restored 0 reads and {len(articles) - 1} votes "
                                        f"of operation {op_spam}")
    assert log[undo_v1]["effect"] == f"restored 0 reads and 1 votes of operation {op_v1}"
    assert_same_state(snapshot(engine), model.expected())
    no_dead_letters(engine)
    assert "no drift" in audited.stderr


# -- the log's states, refusals, usage errors ----------------------------------------------------------------


def test_log_states_and_refused_undos_exit_1_and_usage_errors_exit_2_without_a_traceback(
        settings, engine, redis, emitter, archive_dir, day0):
    model = ModerationModel()
    emit(emitter, model, wave(["p", "q"], ["v0", "v1"], day0, n=40))
    cli(settings, "worker", "--burst", archive=archive_dir)
    assert_same_state(snapshot(engine), model.expected())

    # No worker runs: the reset is queued, and says so.
    queued = cli(settings, "moderate", "reset", "p", "--votes", "--reason", "queued one", "--by", "bob")
    assert "queued" in queued.stderr and queued.stdout == ""
    op = int(queued.stderr.split("operation ", 1)[1].split(" ", 1)[0])
    # An undo may follow a queued action (it is applied after it, in the same stream).
    undo, log, report = together(
        lambda: cli(settings, "moderate", "undo", str(op)),
        lambda: log_json(settings),
        lambda: json.loads(cli(settings, "report", "article", "p", "--format", "json").stdout))
    row = log[op]
    assert (row["state"], row["effect"], row["actor"], row["reason"]) == (
        "queued", "not applied yet", "bob", "queued one")
    assert (row["action"], row["article_id"], row["voter_id"], row["applied_at"]) == (
        "reset", "p", None, None)
    assert datetime.fromisoformat(row["created_at"])
    assert report["resets"] == []  # not applied yet
    undo_id = int(undo.stderr.split("operation ", 1)[1].split(" ", 1)[0])

    names = ["twice", "undo of an undo", "unknown", "reset without --reason", "unvote without --reason",
             "unvote without --voter", "undo of id 0"]
    done = dict(zip(names, together(
        lambda: cli(settings, "moderate", "undo", str(op), expect=1),
        lambda: cli(settings, "moderate", "undo", str(undo_id), expect=1),
        lambda: cli(settings, "moderate", "undo", "999999", expect=1),
        lambda: cli(settings, "moderate", "reset", "p", expect=2),
        lambda: cli(settings, "moderate", "unvote", "--voter", "v0", expect=2),
        lambda: cli(settings, "moderate", "unvote", "--reason", "r", expect=2),
        lambda: cli(settings, "moderate", "undo", "0", expect=2))))
    assert "being undone already" in done["twice"].stderr
    assert "only reset and unvote" in done["undo of an undo"].stderr
    assert "no operation 999999" in done["unknown"].stderr
    for name in names[:3]:
        assert len(done[name].stderr.strip().splitlines()) == 1 and done[name].stdout == "", done[name].stderr
    assert "--reason" in done["reset without --reason"].stderr
    assert "--reason" in done["unvote without --reason"].stderr
    assert "--voter" in done["unvote without --voter"].stderr
    with engine.connect() as conn:
        assert sorted(conn.scalars(select(operations.c.id))) == sorted([op, undo_id])  # nothing else recorded

    cli(settings, "worker", "--burst", archive=archive_dir)
    model.reset(op, "p", reads=False)
    removed = model.removed_counts(op)
    assert removed[1] > 0
    model.undo(undo_id, op)
    assert_same_state(snapshot(engine), model.expected())
    again, undo_undo, log, limited, of_p, of_q, article, table, csv, markdown, audited = together(
        lambda: cli(settings, "moderate", "undo", str(op), expect=1),
        lambda: cli(settings, "moderate", "undo", str(undo_id), expect=1),
        lambda: log_json(settings),
        lambda: log_json(settings, "--limit", "1"),
        lambda: log_json(settings, "--article", "p"),
        lambda: log_json(settings, "--article", "q"),
        lambda: cli(settings, "report", "article", "p").stdout,
        lambda: cli(settings, "moderate", "log").stdout,
        lambda: cli(settings, "moderate", "log", "--format", "csv").stdout,
        lambda: cli(settings, "moderate", "log", "--format", "markdown").stdout,
        lambda: cli(settings, "audit", archive=archive_dir))
    assert f"undone already, by operation {undo_id}" in again.stderr
    assert "only reset and unvote" in undo_undo.stderr
    assert list(log) == [undo_id, op]  # newest first
    assert (log[op]["state"], log[undo_id]["state"]) == (f"undone by {undo_id}", "applied")
    assert log[op]["effect"] == f"removed 0 reads and {removed[1]} votes"
    assert log[undo_id]["effect"] == f"restored 0 reads and {removed[1]} votes of operation {op}"
    assert log[undo_id]["reason"] == f"undo of operation {op}"
    assert list(limited) == [undo_id]
    assert list(of_p) == [undo_id, op]  # the undo names its target's article
    assert of_q == {}
    assert "Reset on" not in article
    assert "queued one" in table and f"undone by {undo_id}" in table and "bob" in table
    header, *lines = csv.splitlines()
    assert header == "id,created_at,actor,action,article_id,voter_id,reason,state,effect" and len(lines) == 2
    assert lines[1].startswith(f"{op},") and f"bob,reset,p,,queued one,undone by {undo_id}," in lines[1]
    assert markdown.count("\n|") >= 3 and f"undone by {undo_id}" in markdown
    assert "no drift" in audited.stderr


# -- an undo of an earlier action while a later one on the same counters stands -----------------------------


@pytest.mark.parametrize("action", ["reset", "unvote"])
def test_an_earlier_action_under_a_later_one_on_the_same_counters_is_undone_after_it_and_the_audit_stays_clean(
        settings, engine, redis, emitter, archive_dir, day0, worker, action):
    model = ModerationModel()
    emit(emitter, model, [Read("art", day0 + n * MS_PER_HOUR, "v") for n in range(6)]
         + [Vote("art", day0 + 1, "w", 4.0)])
    if action == "reset":
        op1 = moderate(settings, "reset", "art", "--reason", "first")
        model.reset(op1, "art")
        emit(emitter, model, [Read("art", day0 + MS_PER_DAY + n * MS_PER_HOUR, "v") for n in range(4)])
        op2 = moderate(settings, "reset", "art", "--reads", "--reason", "second")
        model.reset(op2, "art", votes=False)
        emit(emitter, model, [Read("art", day0 + 2 * MS_PER_DAY, "v")])
        expected = (7, 1, 4.0)  # the first reset's 6 reads and vote are back, not the second's 4 reads
    else:
        op1 = moderate(settings, "unvote", "--voter", "w", "--reason", "first")
        model.unvote(op1, "w")
        emit(emitter, model, [Vote("art", day0 - MS_PER_DAY, "w", 2.0)])  # older than the removed vote
        op2 = moderate(settings, "unvote", "--voter", "w", "--article", "art", "--reason", "second")
        model.unvote(op2, "w", "art")
        expected = (6, 1, 4.0)  # the first unvote's vote is back: the voter has no vote stored
    # The later action removed only what was counted then: it is undone first, or audits and rebuilds
    # could not tell what each removed. Undoing the earlier one first is refused, saying so.
    refused = cli(settings, "moderate", "undo", str(op1), expect=1)
    assert f"undo {op2}" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr
    model.undo(moderate(settings, "undo", str(op2)), op2)
    undo = moderate(settings, "undo", str(op1))
    model.undo(undo, op1)
    expected = (11, 1, 4.0) if action == "reset" else expected  # both resets undone: 6 + 4 + 1 reads
    assert model.expected()["stats"]["art"] == expected
    try:  # the counters are right: not the defect this test is marked for
        wait_for_state(engine, model.expected(), timeout=60)
    except AssertionError as exc:
        pytest.fail(f"counters: {exc}")

    drift = audit_counters(engine, Archive(archive_dir)).drifted
    assert drift == [], drift
