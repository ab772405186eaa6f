"""`readrate import` and `readrate articles import` on files wrong as a whole, through the real command.

A wrong header, an empty file, a binary file: one clear message and a non-zero exit,
never a line error per line and never a traceback; nothing reaches Redis or the
database. Lines the workers would refuse are refused on import with the workers'
reason; a 10 MB field is one bad line; epoch seconds imported as milliseconds get
one warning.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import REDIS_URL
from helpers import run_cli
from sqlalchemy import func, select

from readrate.events.scale import RatingScale
from readrate.events.settings import Settings
from readrate.workers.db import make_engine
from readrate.workers.schema import articles, rejected_events

RATINGS = Path("/work/shared/data/movielens-small/ratings.csv")
MOVIES = Path("/work/shared/data/movielens-small/movies.csv")
MOVIELENS_MAP = ["--kind", "vote", "--map", "article=movieId", "--map", "visitor=userId",
                 "--map", "at=timestamp"]
PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489")


@pytest.fixture
def sq(prefix, sqlite_url):
    return Settings.from_env({}, redis_url=REDIS_URL, database_url=sqlite_url, prefix=prefix)


@pytest.fixture
def half(sq):
    return replace(sq, rating_scale=RatingScale.parse("0.5-5/0.5"))


def stream_total(redis, settings) -> int:
    return sum(redis.xlen(settings.keys.stream(s)) for s in range(settings.shards))


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("Error:")]


def top(settings) -> dict[str, tuple[int, int]]:
    result = run_cli(settings, "report", "top", "--format", "json")
    assert result.returncode == 0, result.stderr
    return {r["article_id"]: (r["reads"], r["votes"]) for r in json.loads(result.stdout)}


# -- a header without the needed columns -----------------------------------------------------


def test_movielens_ratings_without_map_exit_2_with_one_error_naming_the_columns_the_header_and_the_options(
        sq, redis):
    result = run_cli(sq, "import", str(RATINGS))

    assert result.returncode == 2, result.stderr
    [error] = error_lines(result.stderr)
    assert "has no columns 'kind', 'article', 'at'" in error
    assert "(userId, movieId, rating, timestamp)" in error
    assert "--map FIELD=COLUMN" in error and "--kind read or --kind vote" in error
    assert not any(line.startswith("line ") for line in result.stderr.splitlines())
    assert "Traceback" not in result.stderr
    assert stream_total(redis, sq) == 0


def test_a_mistyped_map_column_exits_2_naming_it_before_anything_is_sent(half, redis):
    result = run_cli(half, "import", str(RATINGS), "--kind", "vote", "--map", "article=movieid",
                     "--map", "visitor=userId", "--map", "at=timestamp", "--time-unit", "s")

    assert result.returncode == 2, result.stderr
    assert "has no column 'movieid' (for article, from --map)" in result.stderr
    assert stream_total(redis, half) == 0


# -- empty and binary input ------------------------------------------------------------------


@pytest.mark.parametrize(("content", "held"), [
    ("", "it is empty (0 bytes)"),
    ("kind,article,at,visitor,rating\n", "it has a header row and no data lines"),
])
def test_an_empty_file_or_a_header_only_exits_1_saying_no_events_were_found(sq, tmp_path, content, held):
    path = tmp_path / "events.csv"
    path.write_text(content)

    result = run_cli(sq, "import", str(path))

    assert result.returncode == 1, result.stderr
    assert error_lines(result.stderr) == [f"Error: no events found in {str(path)!r}: {held}"]
    assert "imported" not in result.stderr


def test_empty_standard_input_exits_1_saying_no_events_were_found(sq):
    result = run_cli(sq, "import", "-", input="")

    assert result.returncode == 1
    assert error_lines(result.stderr) == ["Error: no events found in standard input: it is empty (0 bytes)"]


@pytest.mark.parametrize(("content", "what"), [
    (gzip.compress(RATINGS.read_bytes()[:200_000]), "is a gzip file, not text; decompress it first"),
    (PNG, "is a PNG image, not text"),
    (b"kind,article,at\n" + b"read,a\x00b,5\n" * 5000, "is not text: it holds a NUL byte"),
], ids=["gzip", "png", "nul-bytes"])
@pytest.mark.parametrize("command", [("import",), ("articles", "import")], ids=" ".join)
def test_a_binary_file_exits_1_with_one_message_and_no_line_errors(sq, redis, tmp_path, content, what,
                                                                   command):
    path = tmp_path / "events.csv"
    path.write_bytes(content)

    result = run_cli(sq, *command, str(path))

    assert result.returncode == 1, result.stderr
    assert error_lines(result.stderr) == [error_lines(result.stderr)[0]]
    assert f"Error: {str(path)!r} {what}" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert stream_total(redis, sq) == 0
    assert not Path(sq.database_url.removeprefix("sqlite:///")).exists(), "no database was made for nothing"


@pytest.mark.parametrize(("content", "held"), [
    ("", "it is empty (0 bytes)"),
    ("article_id,title\n", "it has a header row and no data lines"),
])
def test_articles_import_of_an_empty_file_exits_1_saying_no_articles_were_found(sq, tmp_path, content, held):
    path = tmp_path / "movies.csv"
    path.write_text(content)

    result = run_cli(sq, "articles", "import", str(path))

    assert result.returncode == 1, result.stderr
    assert error_lines(result.stderr) == [f"Error: no articles found in {str(path)!r}: {held}"]


def test_articles_import_of_movielens_movies_without_id_column_exits_2_naming_the_header(sq):
    result = run_cli(sq, "articles", "import", str(MOVIES))

    assert result.returncode == 2, result.stderr
    assert "column 'article_id' is not in the header (movieId, title, genres)" in result.stderr
    assert "--id-column" in result.stderr


# -- lines: one rule set, huge fields, bidi --------------------------------------------------


def test_a_read_carrying_a_rating_is_refused_on_import_with_the_reason_a_worker_gives(sq, redis, tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("kind,article,at,visitor,rating\nread,post-4,1748772000000,v9,3\n"
                    "read,post-5,1748772000000,v9,\n")

    result = run_cli(sq, "import", str(path))

    assert result.returncode == 1, result.stderr
    assert "line 2: a read carries no rating; field 'r' is for votes" in result.stderr
    assert "imported 1 event in" in result.stderr and "1 bad line skipped" in result.stderr
    assert stream_total(redis, sq) == 1
    assert run_cli(sq, "worker", "--burst").returncode == 0
    assert top(sq) == {"post-5": (1, 0)}
    engine = make_engine(sq.database_url)
    with engine.connect() as conn:
        dead = conn.scalar(select(func.count()).select_from(rejected_events))
    assert dead == 0, "nothing reached the workers for them to refuse"
    engine.dispose()


def test_bidi_override_characters_in_ids_are_refused_on_import_and_by_articles_import(sq, tmp_path):
    events = tmp_path / "events.csv"
    events.write_text("kind,article,at,visitor,rating\nread,\u202e4-tsop,1748772000000,,\n"
                      "vote,post-4,1748772000000,u\u20661,4\nread,post-4,1748772000000,,\n", encoding="utf-8")
    catalog = tmp_path / "catalog.csv"
    catalog.write_text("article_id,title\npost\u202e-4,Spoofed\npost-4,Real\n", encoding="utf-8")

    imported = run_cli(sq, "import", str(events))
    titled = run_cli(sq, "articles", "import", str(catalog))

    assert imported.returncode == 1, imported.stderr
    assert "line 2: article id '\\u202e4-tsop' contains the bidi-override character '\\u202e'" \
        in imported.stderr
    assert "line 3: voter 'u\\u20661' contains the bidi-override character '\\u2066'" in imported.stderr
    assert "imported 1 event in" in imported.stderr
    assert titled.returncode == 1, titled.stderr
    assert "line 2: column 'article_id': article id 'post\\u202e-4' contains the bidi-override" \
        in titled.stderr
    engine = make_engine(sq.database_url)
    with engine.connect() as conn:
        assert [tuple(r) for r in conn.execute(select(articles.c.article_id, articles.c.title))] == [
            ("post-4", "Real")]
    engine.dispose()


def test_a_ten_megabyte_csv_field_is_one_bad_line_and_the_rest_is_imported(sq, tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("kind,article,at\nread,a,1748772000000\nread," + "x" * 10_000_000
                    + ",1748772000000\nread,b,1748772000000\n")

    result = run_cli(sq, "import", str(path))

    assert result.returncode == 1, result.stderr
    assert "line 3: a field is longer than 131,072 characters" in result.stderr
    assert "imported 2 events in" in result.stderr and "1 bad line skipped" in result.stderr
    assert "Traceback" not in result.stderr and "_csv.Error" not in result.stderr


def test_a_ten_megabyte_title_is_one_bad_line_for_articles_import(sq, tmp_path):
    path = tmp_path / "catalog.csv"
    path.write_text("article_id,title\na,A\nb," + "t" * 10_000_000 + "\nc,C\n")

    result = run_cli(sq, "articles", "import", str(path))

    assert result.returncode == 1, result.stderr
    assert "line 3: a field is longer than 131,072 characters" in result.stderr
    assert "imported 2 articles; 1 bad line skipped" in result.stderr


# -- epoch seconds imported as milliseconds --------------------------------------------------


def test_movielens_seconds_imported_without_time_unit_s_get_one_warning_and_are_kept_as_given(half, tmp_path):
    sample = tmp_path / "ratings.csv"
    sample.write_text("".join(RATINGS.read_text().splitlines(keepends=True)[:1001]))

    result = run_cli(half, "import", str(sample), *MOVIELENS_MAP)

    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, result.stderr
    assert warnings[0].startswith("warning: 1,000 integer times (the first on line 2: 964982703) look like "
                                  "epoch seconds")
    assert "imported as given, in milliseconds" in warnings[0] and "--time-unit s" in warnings[0]
    assert "imported 1,000 events" in result.stderr


def test_the_same_ratings_with_time_unit_s_import_without_a_warning(half, tmp_path):
    sample = tmp_path / "ratings.csv"
    sample.write_text("".join(RATINGS.read_text().splitlines(keepends=True)[:101]))

    result = run_cli(half, "import", str(sample), *MOVIELENS_MAP, "--time-unit", "s")

    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr
    assert "imported 100 events" in result.stderr
