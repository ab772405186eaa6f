"""Scenario 10, Archive: what READRATE_ARCHIVE costs the drain, and what it costs on disk.

Drain: the same backlog of the workload drained by one `Drainer` into a fresh SQLite
database with the archive off (the baseline) and on, alternately, twice each; each
figure is the better of its two runs (the machine is shared and noisy). The run with
the archive on also checks that the archive holds exactly the events drained.

Bytes per event, on the MovieLens mix: every one of the 100,836 MovieLens ratings as a
vote, preceded 30 s earlier by the same user's read of the movie (201,672 events, real
users and movies), written as the archive lays it out, one file per event day (what
`readrate archive compact` leaves). With the ratings' own times, 22 years long, the 4,110
days hold 49 events each and Parquet's fixed cost per file dominates; the row uses the
same events on a 30-day timeline, as a live site's archive holds them, and the note
gives the 22-year figure too.
"""

from __future__ import annotations

import csv
import shutil
import time
from dataclasses import replace
from pathlib import Path

from readrate.workers.archive import Archive

from . import workload
from .harness import Outcome, Row, below, rate, ratio_at_least
from .resources import Env

NAME = "archive"
TITLE = "10. Archive"
RATINGS = Path("/work/shared/data/movielens-small/ratings.csv")
MS_PER_DAY = 86_400_000


def sizes(quick: bool) -> dict:
    return {"drain": 20_000} if quick else {"drain": 300_000}


def run(env: Env, quick: bool) -> Outcome:
    n = sizes(quick)
    raw: dict = {"sizes": n, "workload": workload.DESCRIPTION}
    runs: dict[str, list[float]] = {"off": [], "on": []}
    for attempt in range(2):
        for mode in ("off", "on"):
            seconds, detail = drain(env, n["drain"], archive=mode == "on")
            runs[mode].append(seconds)
            raw[f"{mode}_{attempt}"] = detail
    off, on = rate(n["drain"], min(runs["off"])), rate(n["drain"], min(runs["on"]))
    rows = [Row(f"{TITLE} · drain with the archive on, SQLite", on, off, "ev/s", "the archive off",
                (ratio_at_least(0.75, "≥ 0.75× off"),))]
    problems = [p for mode in ("off", "on") for i in range(2) for p in raw[f"{mode}_{i}"]["problems"]]
    if problems:
        rows[0].invalid = True
        rows[0].note = "; ".join(problems)
    bytes_live, bytes_history, detail = movielens_bytes(env)
    raw["movielens"] = detail
    rows.append(Row(f"{TITLE} · bytes per event, MovieLens mix", bytes_live, None, "B",
                    checks=(below(10.000001, "≤ 10 B"),),
                    note=f"{bytes_history:.1f} B per event with the ratings' own times (22 years, "
                         f"{detail['history_files']:,} day files)"))
    return Outcome(rows, raw, __doc__)


def drain(env: Env, count: int, *, archive: bool) -> tuple[float, dict]:
    folder = env.workdir / f"archive-{env.prefix('dir')}"
    settings = env.settings("arch", env.sqlite_url("arch"))
    if archive:
        settings = replace(settings, archive=str(folder))
    engine = workload.prepared_engine(settings)
    try:
        backlog = workload.fill(env.redis, settings, count)
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
