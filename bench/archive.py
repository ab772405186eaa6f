"""Scenario 10, Archive: what READRATE_ARCHIVE costs the drain, and what it costs on disk.

Drain: the same backlog of the workload drained by one `Drainer` into a fresh SQLite
database with the archive off (the baseline) and on, alternately, five times each; each
figure is the median of its five runs, as `--repeat` reports any figure (the machine is
shared and noisy: one unusually quiet run would decide a best-of comparison; the best
runs are in the note), and each run with the archive on starts as a worker does, with
pyarrow imported and the folder made.
The run with the archive on also checks that the archive holds exactly the events drained.

Bytes per event, on the MovieLens mix: every one of the 100,836 MovieLens ratings as a
vote, preceded 30 s earlier by the same user's read of the movie (201,672 events, real
users and movies), written as the archive lays it out, one file per event day (what
`readrate archive compact` leaves). With the ratings' own times, 22 years long, the 4,110
days hold 49 events each and Parquet's fixed cost per file dominates; the row uses the
same events on a 30-day timeline, as a live site's archive holds them, and the note
gives the 22-year figure too.

Rebuild, audit and readers on a large archive (10,000,000 events; 200,000 in --quick).
These three rows have targets, not baselines: nothing else recomputes readrate's
counters, so there is no second design to run beside them. Setup, untimed (its time
is in the raw data): a synthetic archive written with `Archive.write`, as a drain
writes it (per shard in stream order, 100,000 events per call; 20,000 in --quick;
one file per event day and call). The mix: 80% reads over 50,000 Zipf-popular
articles (s = 1.1) by 1,000,000 visitors (5% of reads without a visitor), 20% votes
(1-5 stars around each article's quality) by 200,000 voters, so popular articles get
re-votes; event times uniform over the 30 days ending now (from the second whole hour
after 30 days ago, so that a `--since 30d` window holds every event), stream ids at the
event times. The files are recorded in `archive_files` of a fresh SQLite database made as
`readrate db upgrade` makes one (installation record in Redis and the database), with
its `archive_state` row and the offsets at the last ids written; its counters are empty.
Then the real `readrate archive compact` runs, as a daily cron job would: one file per
day, each with its readers index (its time is in the raw data too).

- Rebuild: `rebuild_in_place` timed in this process, from reading the recorded files to
  the five counter tables written and committed (they were empty: no old counters to
  delete); events per second = archived events ÷ that time. Checked: it recomputed
  every event, and the reads it wrote add up to the reads generated.
- Audit: `audit` timed in this process on the rebuilt database; it must find no drift
  and every event, or the row is marked as failed.
- Report: the real command `readrate report top --by readers --since 30d --limit 10
  --format json`, a fresh process each time (wall clock, interpreter start included;
  the best of 3), with DATABASE_URL, READRATE_ARCHIVE, REDIS_URL and READRATE_PREFIX
  of the installation. Checked: 10 rows whose readers equal what `readers()` computes
  in this process for the same window; the note gives that in-process time too.
"""

from __future__ import annotations

import base64
import csv
import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from statistics import median

from sqlalchemy import Engine, func, insert, select, update

from readrate.events.clock import EPOCH, MS_PER_HOUR, utc_now
from readrate.events.settings import Settings
from readrate.events.synthetic import article_id
from readrate.events.wire import shard_for
from readrate.reports.audit import audit
from readrate.reports.readers import readers
from readrate.reports.windows import Window
from readrate.workers.archive import Archive, ArchiveFile
from readrate.workers.rebuild import rebuild_in_place
from readrate.workers.schema import archive_files, archive_state, article_stats, stream_offsets

from . import workload
from .harness import Outcome, Row, at_least, below, quiet_heap, rate, ratio_at_least
from .resources import READRATE, Env, env_for

NAME = "archive"
TITLE = "10. Archive"
RATINGS = Path("/work/shared/data/movielens-small/ratings.csv")
MS_PER_DAY = 86_400_000


# This machine's speed drifts by 15-30% from one drain to the next: five runs each, and the medians are
# compared (best-of-two, then best-of-three, gave ratios from 0.68 to 0.98 for the same code).
DRAIN_RUNS = 5


def sizes(quick: bool) -> dict:
    if quick:
        return {"drain": 20_000, "large": 200_000, "per_call": 20_000}
    return {"drain": 300_000, "large": 10_000_000, "per_call": 100_000}


def run(env: Env, quick: bool) -> Outcome:
    n = sizes(quick)
    raw: dict = {"sizes": n, "workload": workload.DESCRIPTION}
    runs: dict[str, list[float]] = {"off": [], "on": []}
    for attempt in range(DRAIN_RUNS):
        for mode in ("off", "on"):
            seconds, detail = drain(env, n["drain"], archive=mode == "on")
            runs[mode].append(seconds)
            raw[f"{mode}_{attempt}"] = detail
    off, on = rate(n["drain"], median(runs["off"])), rate(n["drain"], median(runs["on"]))
    best = {mode: round(rate(n["drain"], min(seconds))) for mode, seconds in runs.items()}
    rows = [Row(f"{TITLE} · drain with the archive on, SQLite", on, off, "ev/s", "the archive off",
                (ratio_at_least(0.75, "≥ 0.75× off"),),
                note=f"medians of {DRAIN_RUNS} alternating runs each; the best runs: {best['on']:,} ev/s on, "
                     f"{best['off']:,} off ({best['on'] / best['off']:.3f}×)")]
    problems = [p for mode in ("off", "on") for i in range(DRAIN_RUNS)
                for p in raw[f"{mode}_{i}"]["problems"]]
    if problems:
        rows[0].invalid = True
        rows[0].note = "; ".join(problems)
    raw["drain_ev_s"] = {mode: [round(rate(n["drain"], s)) for s in seconds] for mode, seconds in runs.items()}
    bytes_live, bytes_history, detail = movielens_bytes(env)
    raw["movielens"] = detail
    rows.append(Row(f"{TITLE} · bytes per event, MovieLens mix", bytes_live, None, "B",
                    checks=(below(10.000001, "≤ 10 B"),),
                    note=f"{bytes_history:.1f} B per event with the ratings' own times (22 years, "
                         f"{detail['history_files']:,} day files)"))
    rows += large_archive_rows(env, n["large"], n["per_call"], quick, raw)
    return Outcome(rows, raw, __doc__)


def drain(env: Env, count: int, *, archive: bool) -> tuple[float, dict]:
    folder = env.workdir / f"archive-{env.prefix('dir')}"
    settings = env.settings("arch", env.sqlite_url("arch"))
    if archive:
        settings = replace(settings, archive=str(folder))
    engine = workload.prepared_engine(settings)
    try:
        backlog = workload.fill(env.redis, settings, count)
        if archive:  # as a worker does when it starts (pyarrow imported, the folder made)
            Archive(folder).check()
        seconds, entries, rejected = workload.drain_in_process(settings, engine)
        check = workload.verify(engine, backlog)
        left = workload.pending(env.redis, settings)
        archived = archived_events(folder) if archive else None
    finally:
        engine.dispose()
        env.clear(settings.prefix)
        shutil.rmtree(folder, ignore_errors=True)
    check.update(drain_s=round(seconds, 3), entries=entries, rejected=rejected, archived=archived,
                 ev_s=round(rate(entries, seconds)))
    check["problems"] = workload.problems(check, count, entries, left)
    if archive and archived != entries:
        check["problems"].append(f"archive holds {archived:,} events, {entries:,} drained")
    return seconds, check


def archived_events(folder: Path) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(path).metadata.num_rows for path in folder.glob("day=*/*.parquet"))


def movielens_mix() -> list[tuple]:
    """(id, movie, at_ms, user, rating) in time order: each rating, after a read of the movie 30 s before."""
    events = []
    with RATINGS.open(newline="") as f:
        for i, row in enumerate(csv.DictReader(f)):
            at = int(row["timestamp"]) * 1000
            events.append((at - 30_000, i, row["movieId"], row["userId"], None))
            events.append((at, i, row["movieId"], row["userId"], float(row["rating"])))
    events.sort()
    return [(f"{at}-{seq % 8}".encode(), movie, at, user, rating) for at, seq, movie, user, rating in events]


def movielens_bytes(env: Env) -> tuple[float, float, dict]:
    events = movielens_mix()
    first, span = events[0][2], events[-1][2] - events[0][2]
    start = int(time.time() * 1000) - 30 * MS_PER_DAY
    live = [(f"{start + (at - first) * 30 * MS_PER_DAY // span}-{n % 8}".encode(), movie,
             start + (at - first) * 30 * MS_PER_DAY // span, user, rating)
            for n, (_, movie, at, user, rating) in enumerate(events)]
    results = {}
    for name, rows in (("live", live), ("history", events)):
        folder = env.workdir / f"movielens-{name}"
        shutil.rmtree(folder, ignore_errors=True)
        try:
            files = Archive(folder).write(0, rows)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        results[name] = (sum(f.bytes for f in files) / len(rows), len(files))
    detail = {"events": len(events), "live_files": results["live"][1], "history_files": results["history"][1],
              "live_bytes_per_event": round(results["live"][0], 2),
              "history_bytes_per_event": round(results["history"][0], 2)}
    return results["live"][0], results["history"][0], detail


# -- rebuild, audit and readers on a large archive ---------------------------------------------------

LARGE_ARTICLES = 50_000
LARGE_VISITORS = 1_000_000
LARGE_VOTERS = 200_000
LARGE_VOTE_SHARE = 0.20
ANONYMOUS_SHARE = 0.05  # of reads: no visitor id (counted as reads, not readers)
LARGE_DAYS = 30
LARGE_SEED = 10
REPORT_ARGV = ["report", "top", "--by", "readers", "--since", "30d", "--limit", "10", "--format", "json"]
REPORT_RUNS = 3
REPORT_TIMEOUT_S = 600


@dataclass
class Generated:
    """What the synthetic archive holds: its files, the last stream id per shard, and its totals."""

    files: list[ArchiveFile] = field(default_factory=list)
    last_ids: dict[int, str] = field(default_factory=dict)
    events: int = 0
    reads: int = 0
    votes: int = 0
    anonymous_reads: int = 0
    start_ms: int = 0
    end_ms: int = 0


def large_archive_rows(env: Env, count: int, per_call: int, quick: bool, raw: dict) -> list[Row]:
    """Rows 3-5: rebuild, audit and `report top --by readers` over one synthetic archive of `count` events."""
    size = "10 M events" if count == 10_000_000 else f"{count:,} events" + (" (quick)" if quick else "")
    folder = env.workdir / f"large-archive-{env.prefix('dir')}"
    url = env.sqlite_url("large")
    settings = env.settings("large", url, archive=str(folder))
    engine: Engine | None = None
    detail: dict = {"events": count, "events_per_write": per_call}
    raw["large"] = detail
    try:
        started = time.perf_counter()
        engine = workload.prepared_engine(settings)
        generated = write_archive(folder, count, per_call, settings.shards)
        record(engine, folder, generated)
        detail["compact"] = compact(env, settings, folder)
        detail["setup"] = {
            "seconds": round(time.perf_counter() - started, 1), "files": len(generated.files),
            "bytes": sum(f.bytes for f in generated.files), "reads": generated.reads,
            "votes": generated.votes,
            "anonymous_reads": generated.anonymous_reads, "shards": settings.shards,
            "first_event": str(EPOCH + timedelta(milliseconds=generated.start_ms)),
            "last_event_before": str(EPOCH + timedelta(milliseconds=generated.end_ms)),
            "days": len({f.day for f in generated.files})}
        rows = [rebuild_row(engine, folder, generated, detail),
                audit_row(engine, folder, generated, size, detail),
                report_row(env, settings, engine, folder, generated, size, detail)]
    finally:
        if engine is not None:
            engine.dispose()
        env.clear(settings.prefix)
        env.drop_database(url)
        shutil.rmtree(folder, ignore_errors=True)
    return rows


def write_archive(folder: Path, count: int, per_call: int, shards: int) -> Generated:
    """`count` events written with Archive.write as drains would: shard by shard, each call in stream order.

    Event times are uniform over 30 days ending now, starting at the second whole hour after
    30 days ago: a `--since 30d` window (taken down to the hour) measured within the next hour
    holds every event, so figures computed a little apart can be compared exactly."""
    import numpy as np

    rng = np.random.default_rng(LARGE_SEED)
    names = [article_id(i) for i in range(LARGE_ARTICLES)]
    shard_of = np.array([shard_for(name, shards) for name in names])
    popularity = np.arange(1, LARGE_ARTICLES + 1, dtype=np.float64) ** -workload.ZIPF_S
    popularity /= popularity.sum()
    quality = rng.normal(3.6, 0.7, LARGE_ARTICLES).clip(1.5, 4.8)
    pool = rng.bytes(16 * LARGE_VISITORS)  # visitor ids shaped like the collector's daily ones
    visitors = [b"d1-" + base64.urlsafe_b64encode(pool[i:i + 16]).rstrip(b"=")
                for i in range(0, len(pool), 16)]
    voters = [f"user-{i:06d}".encode() for i in range(LARGE_VOTERS)]
    end = int(time.time() * 1000)
    start = (end - LARGE_DAYS * MS_PER_DAY) // MS_PER_HOUR * MS_PER_HOUR + 2 * MS_PER_HOUR
    span = end - start
    out = Generated(start_ms=start, end_ms=end)
    archive = Archive(folder)
    step = per_call * shards
    for first in range(0, count, step):
        n = min(step, count - first)
        # This step's slice of the timeline: later steps hold later times, as a live stream does.
        low, high = start + span * first // count, start + span * (first + n) // count
        at = np.sort(rng.integers(low, max(high, low + 1), n))
        article = rng.choice(LARGE_ARTICLES, n, p=popularity)
        vote = rng.random(n) < LARGE_VOTE_SHARE
        anonymous = ~vote & (rng.random(n) < ANONYMOUS_SHARE)
        visitor = rng.integers(0, LARGE_VISITORS, n)
        voter = rng.integers(0, LARGE_VOTERS, n)
        stars = np.clip(np.rint(rng.normal(quality[article], 1.0)), 1, 5)
        shard = shard_of[article]
        for s in range(shards):
            chosen = np.flatnonzero(shard == s)
            if not len(chosen):
                continue
            times = at[chosen]
            # Stream ids at the event times; entries in the same millisecond get the next sequence number.
            runs = np.flatnonzero(np.r_[True, times[1:] != times[:-1]])
            seq = np.arange(len(times)) - np.repeat(runs, np.diff(np.r_[runs, len(times)]))
            counted = [
                (f"{t}-{q}".encode(), names[a], t, voters[v] if is_vote else (None if anon else visitors[w]),
                 float(r) if is_vote else None)
                for t, q, a, is_vote, anon, w, v, r in zip(
                    times.tolist(), seq.tolist(), article[chosen].tolist(), vote[chosen].tolist(),
                    anonymous[chosen].tolist(), visitor[chosen].tolist(), voter[chosen].tolist(),
                    stars[chosen].tolist())]
            out.files += archive.write(s, counted)
            out.last_ids[s] = counted[-1][0].decode()
        out.events += n
        out.votes += int(vote.sum())
        out.anonymous_reads += int(anonymous.sum())
    out.reads = out.events - out.votes
    return out


def compact(env: Env, settings: Settings, folder: Path) -> dict:
    """`readrate archive compact`, as a daily cron job runs it: one file per day, each with its readers index."""
    argv = [*readrate_command(), "archive", "compact"]
    started = time.perf_counter()
    done = subprocess.run(argv, env=env_for(settings, READRATE_ARCHIVE=str(folder)), cwd=env.workdir,
                          capture_output=True, text=True, timeout=REPORT_TIMEOUT_S)
    if done.returncode != 0:
        raise RuntimeError(f"`readrate archive compact` exited {done.returncode}: {done.stderr.strip()[-300:]}")
    return {"seconds": round(time.perf_counter() - started, 1), "said": done.stderr.strip()[-300:]}


def record(engine: Engine, folder: Path, generated: Generated) -> None:
    """Record the files as committed batches would have: archive_files, archive_state and the offsets."""
    now = utc_now()
    began = EPOCH + timedelta(milliseconds=generated.start_ms)
    files = [{**f.row(), "committed_at": now} for f in generated.files]
    with engine.begin() as conn:
        conn.execute(insert(archive_state), [{"singleton": 1, "started_at": began, "root": str(folder)}])
        for start in range(0, len(files), 1000):
            conn.execute(insert(archive_files), files[start:start + 1000])
        for shard, last_id in generated.last_ids.items():
            conn.execute(update(stream_offsets).where(stream_offsets.c.shard == shard)
                         .values(last_id=last_id, updated_at=now))


def rebuild_row(engine: Engine, folder: Path, generated: Generated, detail: dict) -> Row:
    with quiet_heap():
        started = time.perf_counter()
        rebuilt = rebuild_in_place(engine, Archive(folder))
        seconds = time.perf_counter() - started
    with engine.connect() as conn:
        reads = int(conn.scalar(select(func.coalesce(func.sum(article_stats.c.reads), 0))))
    rows = sum((rebuilt.rows or {}).values())
    detail["rebuild"] = {"seconds": round(seconds, 2), "events": rebuilt.events, "files": rebuilt.files,
                         "rows": rebuilt.rows, "reads": reads, "ev_s": round(rate(rebuilt.events, seconds))}
    row = Row(f"{TITLE} · rebuild events per second", rate(generated.events, seconds), None, "ev/s",
              checks=(at_least(500_000),),
              note=f"{generated.events:,} events in {rebuilt.files:,} files: {seconds:.1f} s, "
                   f"{rows:,} counter rows written")
    problems = []
    if rebuilt.events != generated.events:
        problems.append(f"the rebuild recomputed {rebuilt.events:,} of {generated.events:,} events")
    if reads != generated.reads:
        problems.append(f"the rebuild wrote {reads:,} reads, {generated.reads:,} generated")
    if problems:
        row.invalid = True
        row.note = "; ".join([*problems, row.note])
    return row


def audit_row(engine: Engine, folder: Path, generated: Generated, size: str, detail: dict) -> Row:
    with quiet_heap():
        started = time.perf_counter()
        result = audit(engine, Archive(folder))
        seconds = time.perf_counter() - started
    detail["audit"] = {"seconds": round(seconds, 2), "files": result.files, "events": result.events,
                       "articles": result.articles, "drift": len(result.drift),
                       "first_drift": [d.as_dict() for d in result.drift[:5]]}
    row = Row(f"{TITLE} · audit of {size}", seconds, None, "s", checks=(below(30),),
              note=f"{result.events:,} events, {result.articles:,} articles compared, no drift")
    problems = []
    if result.drift:
        first = result.drift[0]
        problems.append(f"{len(result.drift):,} drift rows after the rebuild (first: {first.article_id} "
                        f"{first.what}: database {first.database}, archive {first.archive})")
    if result.events != generated.events:
        problems.append(f"audited {result.events:,} of {generated.events:,} events")
    if problems:
        row.invalid = True
        row.note = "; ".join(problems)
    return row


def readrate_command() -> list[str]:
    """The installed `readrate` console script of this interpreter's environment (what an operator runs)."""
    script = Path(sys.executable).with_name("readrate")
    return [str(script)] if script.exists() else list(READRATE)


def report_row(env: Env, settings: Settings, engine: Engine, folder: Path, generated: Generated, size: str,
               detail: dict) -> Row:
    # In process first: the same window the command computes (every event lies inside it, see write_archive).
    window = Window(utc_now() - timedelta(days=LARGE_DAYS), None)
    with quiet_heap():
        started = time.perf_counter()
        found = readers(engine, window, archive_dir=str(folder))
        in_process = time.perf_counter() - started
    argv = [*readrate_command(), *REPORT_ARGV]
    child_env = env_for(settings, READRATE_ARCHIVE=str(folder))
    times, problems, listed = [], [], []
    for _ in range(REPORT_RUNS):
        started = time.perf_counter()
        done = subprocess.run(argv, env=child_env, cwd=env.workdir, capture_output=True, text=True,
                              timeout=REPORT_TIMEOUT_S)
        times.append(time.perf_counter() - started)
        if done.returncode != 0:
            problems.append(f"`readrate {' '.join(REPORT_ARGV)}` exited {done.returncode}: "
                            f"{done.stderr.strip()[-300:]}")
            break
        listed = json.loads(done.stdout)
    stderr = done.stderr.strip()
    detail["report"] = {"command": "readrate " + " ".join(REPORT_ARGV),
                        "seconds": [round(t, 3) for t in times],
                        "in_process_readers_s": round(in_process, 3), "reads_in_window": found.reads,
                        "anonymous_reads": found.anonymous_reads, "exact": found.exact,
                        "articles_with_readers": len(found.by_article), "stderr": stderr[-500:],
                        "top": listed[:3] if isinstance(listed, list) else listed}
    if not problems:
        if not isinstance(listed, list) or len(listed) != 10:
            shown = len(listed) if isinstance(listed, list) else repr(listed)[:100]
            problems.append(f"listed {shown} articles, not 10")
            listed = []
        wrong = [r.get("article_id") for r in listed
                 if found.by_article.get(r.get("article_id")) != r.get("readers")]
        if wrong:
            problems.append(f"readers of {', '.join(map(str, wrong[:3]))} differ from readers() in process")
        elif listed and [r["readers"] for r in listed] != \
                sorted(found.by_article.values(), reverse=True)[:10]:
            problems.append("the list is not the 10 articles with the most readers")
        if found.reads != generated.reads:
            problems.append(f"{found.reads:,} reads in the window, {generated.reads:,} generated")
    best = min(times) if times and done.returncode == 0 else None
    row = Row(f"{TITLE} · report top --by readers --since 30d on {size}", best, None, "s", checks=(below(2),),
              note=f"best of {len(times)} runs ({', '.join(f'{t:.2f}' for t in times)} s), "
                   "a fresh process each; "
                   f"readers() in process: {in_process:.2f} s ({found.reads:,} reads, "
                   f"{'exact' if found.exact else found.method})")
    if problems:
        row.invalid = True
        row.note = "; ".join([*problems, row.note])
    return row
