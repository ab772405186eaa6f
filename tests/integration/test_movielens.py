"""Integration, large: all 100,836 MovieLens ratings imported as half-star votes through the real CLI.

`readrate import` (pipelined into Redis) then `readrate worker --burst` (RQ, batches,
SQLite or PostgreSQL); every movie's vote count, rating sum and average must equal
what a direct pass over the CSV computes, and so must the votes table row by row.
"""

from __future__ import annotations

from dataclasses import replace

import csv
import json
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from readrate.events.scale import RatingScale
from helpers import backlog, counters, run_cli
from readrate.workers.schema import rejected_events, votes, votes_daily
from readrate.workers.installation import change

RATINGS = Path("/work/shared/data/movielens-small/ratings.csv")
HALF_STARS = "0.5-5/0.5"
IMPORT_ARGS = ["import", str(RATINGS), "--kind", "vote", "--map", "article=movieId",
               "--map", "visitor=userId", "--map", "at=timestamp", "--time-unit", "s"]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ratings() -> list[tuple[str, str, float, int]]:
    """(movie, user, rating, epoch seconds) for every line of the CSV, read straight from the file."""
    with RATINGS.open(newline="") as f:
        return [(r["movieId"], r["userId"], float(r["rating"]), int(r["timestamp"]))
                for r in csv.DictReader(f)]


def test_the_movielens_file_has_one_rating_per_user_and_movie(ratings):
    # The comparison below assumes no re-votes in the file: check it, or a re-vote would make
    # the "latest wins" rule part of the expected numbers.
    assert len(ratings) == 100_836
    pairs = Counter((movie, user) for movie, user, _, _ in ratings)
    assert pairs.most_common(1)[0][1] == 1


def test_every_movielens_movie_has_the_vote_count_and_average_computed_from_the_csv(
    settings, engine, redis, ratings
):
    change(engine, redis, settings, rating_scale=RatingScale.parse(HALF_STARS))  # `readrate config set rating-scale`
    settings = replace(settings, rating_scale=RatingScale.parse(HALF_STARS))
    expected_votes: Counter = Counter()
    expected_sum: defaultdict = defaultdict(float)
    expected_days: defaultdict = defaultdict(lambda: [0, 0.0])
    for movie, _user, rating, at_s in ratings:
        expected_votes[movie] += 1
        expected_sum[movie] += rating
        day = (datetime(1970, 1, 1) + timedelta(seconds=at_s)).date()
        expected_days[(movie, day)][0] += 1
        expected_days[(movie, day)][1] += rating

    imported = run_cli(settings, *IMPORT_ARGS, READRATE_RATING_SCALE=HALF_STARS, timeout=900)
    assert imported.returncode == 0, imported.stderr
    assert "imported 100,836 events" in imported.stderr
    assert backlog(redis, settings) == 100_836

    drained = run_cli(settings, "worker", "--burst", READRATE_RATING_SCALE=HALF_STARS, timeout=900)
    assert drained.returncode == 0, drained.stderr
    assert "drained 100,836 events (0 rejected" in drained.stderr
    assert backlog(redis, settings) == 0

    stats = counters(engine)
    assert len(stats) == len(expected_votes) == 9_724
    mismatched = [
        (movie, stats.get(movie), (n, expected_sum[movie]))
        for movie, n in expected_votes.items()
        if stats.get(movie) != (0, n, expected_sum[movie])
    ]
    assert not mismatched, mismatched[:5]
    # Half stars add up exactly in binary floating point, so the averages match to the last bit.
    for movie, (_reads, n, total) in stats.items():
        assert total / n == expected_sum[movie] / expected_votes[movie]

    with engine.connect() as conn:
        stored = {(r.article_id, r.voter_id): (float(r.rating), r.voted_at)
                  for r in conn.execute(select(votes))}
        days = {(r.article_id, r.day): [int(r.votes), float(r.rating_sum)]
                for r in conn.execute(select(votes_daily))}
        assert conn.scalar(select(func.count()).select_from(rejected_events)) == 0
    assert stored == {
        (movie, user): (rating, datetime(1970, 1, 1) + timedelta(seconds=at_s))
        for movie, user, rating, at_s in ratings
    }
    assert days == dict(expected_days)


    # And an operator sees the same numbers: the top list by votes, as JSON.
    report = run_cli(settings, "report", "top", "--by", "votes", "--limit", "20", "--format", "json")
    assert report.returncode == 0, report.stderr
    rows = json.loads(report.stdout)
    most_voted = sorted(expected_votes, key=lambda m: (-expected_votes[m], m))[:20]
    assert [r["article_id"] for r in rows] == most_voted
    for row in rows:
        assert row["votes"] == expected_votes[row["article_id"]]
        assert row["rating_avg"] == expected_sum[row["article_id"]] / expected_votes[row["article_id"]]


def test_the_audit_is_clean_after_all_of_movielens_with_the_archive_on(settings, engine, redis, tmp_path):
    """Every rating archived (22 years of event days: many small files), compacted, and audited: no drift."""
    change(engine, redis, settings, rating_scale=RatingScale.parse(HALF_STARS))
    env = {"READRATE_RATING_SCALE": HALF_STARS, "READRATE_ARCHIVE": str(tmp_path / "archive")}
    imported = run_cli(settings, *IMPORT_ARGS, timeout=900, **env)
    assert imported.returncode == 0, imported.stderr
    drained = run_cli(settings, "worker", "--burst", timeout=900, **env)
    assert drained.returncode == 0 and "drained 100,836 events (0 rejected" in drained.stderr, drained.stderr
    compacted = run_cli(settings, "archive", "compact", timeout=900, **env)
    assert compacted.returncode == 0, compacted.stderr
    shown = run_cli(settings, "archive", "status", "--format", "json", **env)
    assert shown.returncode == 0, shown.stderr
    status = json.loads(shown.stdout)
    assert status["events"] == 100_836 and status["files"] == status["days"], status
    audited = run_cli(settings, "audit", "--format", "json", timeout=900, **env)
    assert audited.returncode == 0, audited.stdout[-2000:] + audited.stderr
    document = json.loads(audited.stdout)
    assert (document["events"], document["articles"], document["drifted"]) == (100_836, 9_724, 0), document
