"""`readrate articles import`: titles and URLs from CSV or JSON Lines, shown by the reports."""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from helpers import run_cli
from readrate.reports.cli import main
from helpers import Pipeline
from readrate.workers.schema import articles

MOVIES = Path("/work/shared/data/movielens-small/movies.csv")


def readrate(settings, *args: str, capsys) -> tuple[int, str, str]:
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        main(["--database-url", settings.database_url, *args])
    out, err = capsys.readouterr()
    return exited.value.code, out, err


def stored(engine) -> dict[str, tuple[str | None, str | None]]:
    with engine.connect() as conn:
        return {r.article_id: (r.title, r.url) for r in conn.execute(select(articles))}


def test_the_movielens_movies_file_imports_as_it_is_and_its_titles_show_in_reports(settings, engine, redis):
    with MOVIES.open(newline="", encoding="utf-8") as f:
        expected = {row["movieId"]: (row["title"].strip(), None) for row in csv.DictReader(f)}
    done = run_cli(settings, "articles", "import", str(MOVIES), "--id-column", "movieId")
    assert done.returncode == 0, done.stderr
    assert f"imported {len(expected):,} articles; 0 bad lines skipped" in done.stderr
    assert stored(engine) == expected
    pipeline = Pipeline(settings, engine, redis)
    pipeline.vote("1", 4, "u1", datetime(2024, 3, 1))
    pipeline.read("999999", datetime(2024, 3, 1))  # no such movie: shown by its id
    pipeline.flush()
    top = run_cli(settings, "report", "top", "--by", "votes", "--format", "json")
    assert [(r["article_id"], r["title"]) for r in json.loads(top.stdout)] == [("1", "Toy Story (1995)")]
    top = run_cli(settings, "report", "top", "--by", "reads")
    assert "999999" in top.stdout


def test_columns_can_be_named_for_csv_and_json_lines(settings, engine, capsys, tmp_path):
    source = tmp_path / "catalog.csv"
    source.write_text("slug,headline,link,extra\npost-1,First post,https://example.org/1,x\n"
                      "post-2, Second post ,,y\n", encoding="utf-8")
    code, _, err = readrate(settings, "articles", "import", str(source), "--id-column", "slug",
                            "--title-column", "headline", "--url-column", "link", capsys=capsys)
    assert code == 0, err
    lines = tmp_path / "more.jsonl"
    lines.write_text(json.dumps({"article_id": "post-3", "title": "Third", "url": "/3"}) + "\n\n"
                     + json.dumps({"article_id": 4, "title": "Fourth"}) + "\n", encoding="utf-8")
    code, _, err = readrate(settings, "articles", "import", str(lines), capsys=capsys)
    assert code == 0, err
    assert stored(engine) == {"post-1": ("First post", "https://example.org/1"), "post-2": ("Second post", None),
                              "post-3": ("Third", "/3"), "4": ("Fourth", None)}


def test_bad_lines_are_reported_by_number_and_the_good_ones_kept(settings, engine, capsys, tmp_path):
    source = tmp_path / "catalog.jsonl"
    source.write_text("\n".join([
        json.dumps({"article_id": "ok-1", "title": "One"}),
        "not json",
        json.dumps({"title": "no id"}),
        json.dumps(["a", "list"]),
        json.dumps({"article_id": "x" * 129}),
        json.dumps({"article_id": "ok-2", "title": "Two"}),
    ]) + "\n", encoding="utf-8")
    code, _, err = readrate(settings, "articles", "import", str(source), capsys=capsys)
    assert code == 1
    assert "line 2: not JSON" in err
    assert "line 3: column 'article_id': article id is empty" in err
    assert "line 4: a JSON line must be an object" in err
    assert "line 5: column 'article_id': article id" in err and "129 characters" in err
    assert "imported 2 articles; 4 bad lines skipped" in err
    assert stored(engine) == {"ok-1": ("One", None), "ok-2": ("Two", None)}


def test_a_later_line_or_import_replaces_an_articles_title(settings, engine, capsys, tmp_path):
    source = tmp_path / "catalog.csv"
    source.write_text("article_id,title,url\na,Old,/a\na,Newer,/a2\n", encoding="utf-8")
    assert readrate(settings, "articles", "import", str(source), capsys=capsys)[0] == 0
    assert stored(engine) == {"a": ("Newer", "/a2")}
    source.write_text("article_id,title\na,Newest\n", encoding="utf-8")
    assert readrate(settings, "articles", "import", str(source), capsys=capsys)[0] == 0
    assert stored(engine) == {"a": ("Newest", None)}


def test_a_header_without_the_named_column_is_a_usage_error_naming_it(settings, capsys, tmp_path):
    source = tmp_path / "movies.csv"
    source.write_text("movieId,title,genres\n1,Toy Story (1995),Comedy\n", encoding="utf-8")
    code, _, err = readrate(settings, "articles", "import", str(source), capsys=capsys)
    assert code == 2
    assert "'article_id' is not in the header (movieId, title, genres)" in err
    code, _, err = readrate(settings, "articles", "import", str(source), "--id-column", "movieId",
                            "--url-column", "link", capsys=capsys)
    assert code == 2 and "'link' is not in the header" in err


def test_a_missing_file_is_a_usage_error_that_names_it(settings, capsys, tmp_path):
    code, _, err = readrate(settings, "articles", "import", str(tmp_path / "nope.csv"), capsys=capsys)
    assert code == 2 and "nope.csv" in err
