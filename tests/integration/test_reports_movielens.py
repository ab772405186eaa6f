"""MovieLens through the whole pipeline, reported: top lists, windows and an article report must equal an
independent computation straight from the CSVs, order and values.

The 100,836 ratings go in as half-star votes with `readrate import` and `readrate worker
--burst`, the titles with `readrate articles import movies.csv --id-column movieId`,
once per database; the expected numbers are plain Python over the CSV rows.
"""

from __future__ import annotations

import csv
import json
import uuid
from collections import Counter, defaultdict
from datetime import datetime, timezone
from pathlib import Path

import pytest

from conftest import REDIS_URL, create_pg_database, drop_pg_database, pg_url
from readrate.events.settings import Settings
from helpers import run_cli
from readrate.reports.cli import main
from readrate.workers.db import make_engine, upgrade
from readrate.workers.writer import ensure_offsets

DATA = Path("/work/shared/data/movielens-small")
HALF_STARS = "0.5-5/0.5"
PRIOR_VOTES = 10
Y2015 = ("2015-01-01", "2016-01-01")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ratings() -> list[tuple[str, float, int]]:
    """(movie, rating, epoch seconds) for every line of ratings.csv."""
    with (DATA / "ratings.csv").open(newline="") as f:
        return [(r["movieId"], float(r["rating"]), int(r["timestamp"])) for r in csv.DictReader(f)]


@pytest.fixture(scope="module")
def titles() -> dict[str, str]:
    with (DATA / "movies.csv").open(newline="", encoding="utf-8") as f:
        return {r["movieId"]: r["title"].strip() for r in csv.DictReader(f)}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def movielens(request, tmp_path_factory, redis):
    """A database holding every MovieLens rating and title, loaded through the real CLI."""
    pg_name = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('movielens') / 'readrate.db'}"
    else:
        admin = request.getfixturevalue("pg_admin")
        pg_name = create_pg_database(admin)
        url = pg_url(pg_name)
    settings = Settings.from_env({}, redis_url=REDIS_URL, database_url=url, prefix=f"rrt-{uuid.uuid4().hex[:10]}",
                                 rating_scale=HALF_STARS)
    engine = make_engine(url, create=True)
    upgrade(engine)
    ensure_offsets(engine, settings.shards)
    engine.dispose()
    try:
        steps = [
            ["import", str(DATA / "ratings.csv"), "--kind", "vote", "--map", "article=movieId",
             "--map", "visitor=userId", "--map", "at=timestamp", "--time-unit", "s"],
            ["worker", "--burst"],
            ["articles", "import", str(DATA / "movies.csv"), "--id-column", "movieId"],
        ]
        for step in steps:
            done = run_cli(settings, *step, timeout=900)
            assert done.returncode == 0, done.stderr
        yield settings
    finally:
        keys = list(redis.scan_iter(f"*{settings.prefix}*", count=1000))
        if keys:
            redis.delete(*keys)
        if pg_name:
            drop_pg_database(request.getfixturevalue("pg_admin"), pg_name)


def epoch_s(text: str | None) -> float | None:
    if text is None:
        return None
    parsed = datetime.fromisoformat(text)
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).timestamp()


def expected_top(ratings, titles, by: str, since: str | None = None, until: str | None = None,
                 min_votes: int = 0) -> list[dict]:
    """The top list computed from the CSV rows alone: count, sum, C and the Bayesian score by hand."""
    start, stop = epoch_s(since), epoch_s(until)
    votes: Counter = Counter()
    total: defaultdict = defaultdict(float)
    for movie, rating, at in ratings:
        if (start is None or at >= start) and (stop is None or at < stop):
            votes[movie] += 1
            total[movie] += rating
    mean = sum(total.values()) / sum(votes.values())
    if by == "votes":
        score = {m: float(n) for m, n in votes.items()}
        order = sorted(votes, key=lambda m: (-votes[m], m))
    else:
        score = {m: (mean * PRIOR_VOTES + total[m]) / (PRIOR_VOTES + votes[m]) for m in votes}
        order = sorted((m for m in votes if votes[m] >= min_votes), key=lambda m: (-score[m], -votes[m], m))
    return [{"rank": i, "article_id": m, "title": titles.get(m), "reads": 0, "votes": votes[m],
             "rating_avg": total[m] / votes[m], "score": score[m]} for i, m in enumerate(order, start=1)]


def report(settings, capsys, *args: str):
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        main(["--database-url", settings.database_url, "--rating-scale", HALF_STARS, "report", *args,
              "--format", "json"])
    out, err = capsys.readouterr()
    assert exited.value.code == 0, err
    return json.loads(out)


@pytest.mark.parametrize("since, until, min_votes", [(None, None, 50), (*Y2015, 10), (*Y2015, 50)])
def test_top_by_rating_with_a_minimum_of_votes_equals_the_csv(movielens, ratings, titles, capsys, since, until,
                                                               min_votes):
    window = [a for flag, v in (("--since", since), ("--until", until)) if v for a in (flag, v)]
    got = report(movielens, capsys, "top", "--by", "rating", "--min-votes", str(min_votes), "--limit", "100000",
                 *window)
    want = expected_top(ratings, titles, "rating", since, until, min_votes=min_votes)
    assert got == want
    # No film had 50 votes in 2015 (the most had 35): an empty list, not an error.
    assert len(want) == {(None, 50): 450, ("2015-01-01", 10): 109, ("2015-01-01", 50): 0}[(since, min_votes)]


@pytest.mark.parametrize("since, until", [(None, None), Y2015])
def test_top_by_votes_with_limit_0_exports_every_film_and_equals_the_csv(movielens, ratings, titles, capsys, since,
                                                                         until):
    window = [a for flag, v in (("--since", since), ("--until", until)) if v for a in (flag, v)]
    got = report(movielens, capsys, "top", "--by", "votes", "--limit", "0", *window)
    want = expected_top(ratings, titles, "votes", since, until)
    assert len(got) == len(want) > 1000
    assert got == want


def test_windows_with_zones_and_ragged_edges_equal_the_csv(movielens, ratings, titles, capsys):
    zoned = ("2015-03-01T12:30:00+05:30", "2015-09-01T00:00:00-04:00")
    assert report(movielens, capsys, "top", "--by", "rating", "--limit", "100000",
                  "--since", zoned[0], "--until", zoned[1]) == expected_top(ratings, titles, "rating", *zoned)
    # An edge exactly on a rating's second: --since takes it in, --until leaves it out.
    at = sorted(t for _, _, t in ratings if 1420070400 <= t < 1451606400)[100]
    edge = datetime.fromtimestamp(at, timezone.utc).isoformat()
    before = ("2015-01-01T00:00:00+00:00", edge)
    after = (edge, "2016-01-01T00:00:00+00:00")
    for window in (before, after):
        got = report(movielens, capsys, "top", "--by", "votes", "--limit", "100000",
                     "--since", window[0], "--until", window[1])
        assert got == expected_top(ratings, titles, "votes", *window)
    assert sum(r["votes"] for r in report(movielens, capsys, "top", "--by", "votes", "--limit", "100000",
                                          "--since", edge, "--until", edge[:-6] + ".001+00:00")) == \
        sum(1 for _, _, t in ratings if t == at)


def test_an_article_report_and_the_summary_equal_the_csv(movielens, ratings, titles, capsys):
    movie = "356"  # Forrest Gump, the most rated
    mine = [(r, t) for m, r, t in ratings if m == movie]
    got = report(movielens, capsys, "article", movie)
    assert (got["title"], got["votes"], got["reads"], got["rank"]) == (titles[movie], len(mine), 0, None)
    assert got["rating_avg"] == sum(r for r, _ in mine) / len(mine)
    assert {h["rating"]: h["votes"] for h in got["histogram"]} == {
        r / 2: sum(1 for x, _ in mine if x == r / 2) for r in range(1, 11)}
    per_day = Counter(datetime.fromtimestamp(t, timezone.utc).date().isoformat() for _, t in mine)
    assert {d["day"]: d["votes"] for d in got["daily"] if d["votes"]} == dict(per_day)
    assert got["daily"][0]["day"] == min(per_day) and got["daily"][-1]["day"] == max(per_day)

    summary = report(movielens, capsys, "summary", "--since", Y2015[0], "--until", Y2015[1], "--min-votes", "10")
    in_2015 = [(m, r) for m, r, t in ratings if 1420070400 <= t < 1451606400]
    assert (summary["votes"], summary["reads"], summary["active_articles"]) == (
        len(in_2015), 0, len({m for m, _ in in_2015}))
    assert summary["rating_avg"] == sum(r for _, r in in_2015) / len(in_2015)
    assert summary["top_reads"] == []
    assert summary["top_rating"] == expected_top(ratings, titles, "rating", *Y2015, min_votes=10)[:5]
