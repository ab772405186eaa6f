"""`readrate report top|article|summary` as operators run them: formats that parse back to the rows the
table shows, exports of every article that are safe to open, --output, --plot, and clear messages and exit
codes for empty, unknown, bad and extreme input."""

from __future__ import annotations

from dataclasses import replace

import csv
import io
import json
import subprocess
import sys
from datetime import datetime, timedelta

import pytest
from markdown_it import MarkdownIt

from helpers import env_for, run_cli
from readrate.reports.cli import main
from helpers import Pipeline
from readrate.workers.articles import upsert_articles

T0 = datetime(2024, 3, 1)
WINDOW = ["--since", "2024-03-01", "--until", "2024-03-11"]
TITLES = {"a1": "Alpha | with a pipe", "a2": "Beta", "a4": "Δelta ünïcode"}


@pytest.fixture
def loaded(settings, engine, redis):
    """Ten days of traffic on four articles (a4 surges on the last day), through the real pipeline."""
    pipeline = Pipeline(settings, engine, redis)
    for day in range(10):
        start = T0 + timedelta(days=day)
        for i, (article, n) in enumerate([("a1", 5), ("a2", 3), ("a3", 3), ("a4", 5 if day == 9 else 0)]):
            for k in range(n):
                pipeline.read(article, start + timedelta(hours=2 * k + i))
    for article, ratings, day in [("a1", [4, 4, 5, 3], 2), ("a2", [5, 5], 5), ("a3", [2], 8)]:
        for k, rating in enumerate(ratings):
            pipeline.vote(article, rating, f"v{k}", T0 + timedelta(days=day, hours=k))
    pipeline.flush()
    upsert_articles(engine, [{"article_id": a, "title": t, "url": f"https://example.org/{a}"}
                             for a, t in TITLES.items()])
    return settings


def readrate(settings, *args: str, capsys) -> tuple[int, str, str]:
    """Run `readrate ARGS` in this process through its real entry point; (exit code, stdout, stderr)."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        main(["--database-url", settings.database_url, "--prefix", settings.prefix, *args])
    out, err = capsys.readouterr()
    return exited.value.code, out, err


def table_rows(text: str) -> list[list[str]]:
    """The data cells of a terminal table (rows drawn with │)."""
    return [[c.strip() for c in line.split("│")[1:-1]] for line in text.splitlines() if line.startswith("│")]


def from_csv(text: str) -> list[dict]:
    def value(v: str):
        if v == "":
            return None
        for kind in (int, float):
            try:
                return kind(v)
            except ValueError:
                pass
        return v
    return [{k: value(v) for k, v in row.items()} for row in csv.DictReader(io.StringIO(text))]


@pytest.mark.parametrize("by", ["reads", "votes", "rating", "trending"])
def test_csv_and_json_top_lists_parse_back_to_the_rows_the_table_shows(loaded, capsys, by):
    outputs = {fmt: readrate(loaded, "report", "top", "--by", by, *WINDOW, "--format", fmt, capsys=capsys)
               for fmt in ("table", "csv", "json")}
    assert all(code == 0 for code, _, _ in outputs.values())
    rows = json.loads(outputs["json"][1])
    assert from_csv(outputs["csv"][1]) == rows
    shown = table_rows(outputs["table"][1])
    assert len(shown) == len(rows) > 0
    for cells, row in zip(shown, rows):
        assert cells[:3] == [str(row["rank"]), row["article_id"], row["title"] or ""]
        assert [int(c.replace(",", "")) for c in cells[3:5]] == [row["reads"], row["votes"]]
        assert cells[5] == ("" if row["rating_avg"] is None else f"{row['rating_avg']:.2f}")
        assert float(cells[-1]) == pytest.approx(row["score"], abs=0.005)


def test_the_top_lists_of_the_sample_traffic_rank_and_break_ties_as_documented(loaded, capsys):
    def ids(*args):
        code, out, _ = readrate(loaded, "report", "top", *args, *WINDOW, "--format", "json", capsys=capsys)
        assert code == 0
        return [(r["article_id"], r["reads"], r["votes"]) for r in json.loads(out)]

    assert ids("--by", "reads") == [("a1", 50, 4), ("a2", 30, 2), ("a3", 30, 1), ("a4", 5, 0)]
    assert ids("--by", "votes") == [("a1", 50, 4), ("a2", 30, 2), ("a3", 30, 1)]
    # C = (16 + 10 + 2) / 7 = 4; m = 10: a2 (40 + 10) / 12, a1 (40 + 16) / 14 = 4, a3 (40 + 2) / 11.
    code, out, _ = readrate(loaded, "report", "top", "--by", "rating", *WINDOW, "--format", "json", capsys=capsys)
    scores = [(r["article_id"], r["score"]) for r in json.loads(out)]
    assert scores == [("a2", pytest.approx(50 / 12)), ("a1", 4.0), ("a3", pytest.approx(42 / 11))]
    assert ids("--by", "rating", "--min-votes", "2") == [("a2", 30, 2), ("a1", 50, 4)]
    # a4: 5 reads in the last day, none before: (5 + 10) / 10 = 1.5; the others read at their old pace.
    code, out, _ = readrate(loaded, "report", "top", "--by", "trending", *WINDOW, "--format", "json", capsys=capsys)
    trend = json.loads(out)
    assert (trend[0]["article_id"], trend[0]["score"], trend[0]["recent_reads"]) == ("a4", 1.5, 5)
    assert {r["article_id"]: r["score"] for r in trend[1:]} == {"a1": 1.0, "a2": 1.0, "a3": 1.0}


def test_markdown_output_renders_as_a_table_with_escaped_pipes(loaded, capsys):
    code, out, _ = readrate(loaded, "report", "top", *WINDOW, "--format", "markdown", capsys=capsys)
    assert code == 0
    html = MarkdownIt("commonmark").enable("table").render(out)
    assert html.count("<table>") == 1
    assert html.count("<tr>") == 1 + 4  # the heading row and one per article
    assert "<td>Alpha | with a pipe</td>" in html


def test_output_writes_the_report_to_a_file_instead_of_stdout(loaded, capsys, tmp_path):
    target = tmp_path / "top.json"
    code, out, err = readrate(loaded, "report", "top", *WINDOW, "--format", "json", "--output", str(target),
                              capsys=capsys)
    assert (code, out) == (0, "")
    assert f"wrote {target}" in err
    assert [r["article_id"] for r in json.loads(target.read_text())] == ["a1", "a2", "a3", "a4"]


def test_the_article_report_has_counters_rank_histogram_and_a_daily_series(loaded, capsys):
    code, out, _ = readrate(loaded, "report", "article", "a2", "--format", "json", capsys=capsys)
    assert code == 0
    report = json.loads(out)
    assert {k: report[k] for k in ("rank", "article_id", "title", "url", "reads", "votes", "rating_avg")} == {
        "rank": 2, "article_id": "a2", "title": "Beta", "url": "https://example.org/a2", "reads": 30, "votes": 2,
        "rating_avg": 5.0}
    assert report["score"] == pytest.approx((4.0 * 10 + 10) / 12)  # C = 28 / 7 = 4 over all votes
    assert report["histogram"] == [{"rating": r, "votes": 2 if r == 5 else 0} for r in (1.0, 2.0, 3.0, 4.0, 5.0)]
    assert report["daily"] == [{"day": (T0 + timedelta(days=d)).date().isoformat(), "reads": 3,
                                "votes": 2 if d == 5 else 0} for d in range(10)]
    code, out, _ = readrate(loaded, "report", "article", "a2", "--format", "csv", capsys=capsys)
    assert from_csv(out) == report["daily"]
    code, out, _ = readrate(loaded, "report", "article", "a2", capsys=capsys)
    assert "Beta" in out and "▁▁▁▁▁█▁▁▁▁" in out  # the votes sparkline: both votes on day 6 of 10


def test_the_article_report_honours_the_window(loaded, capsys):
    code, out, _ = readrate(loaded, "report", "article", "a1", "--since", "2024-03-03", "--until", "2024-03-05",
                            "--format", "json", capsys=capsys)
    report = json.loads(out)
    # Two days of a1: 5 reads a day, and its four votes (3, 4, 4, 5), all cast on March 3rd.
    assert (report["reads"], report["votes"], report["rating_avg"], report["rank"]) == (10, 4, 4.0, 1)
    assert [(h["rating"], h["votes"]) for h in report["histogram"]] == [(1, 0), (2, 0), (3, 1), (4, 2), (5, 1)]
    assert report["daily"] == [{"day": "2024-03-03", "reads": 5, "votes": 4},
                               {"day": "2024-03-04", "reads": 5, "votes": 0}]
    code, out, _ = readrate(loaded, "report", "article", "a1", "--since", "2024-03-04", "--until", "2024-03-05",
                            "--format", "json", capsys=capsys)
    assert (json.loads(out)["votes"], json.loads(out)["score"]) == (0, None)


def test_the_summary_totals_the_window_and_its_csv_parses_back_to_its_json(loaded, capsys):
    code, out, _ = readrate(loaded, "report", "summary", *WINDOW, "--format", "json", capsys=capsys)
    assert code == 0
    data = json.loads(out)
    assert (data["reads"], data["votes"], data["active_articles"], data["rating_avg"]) == (115, 7, 4, 4.0)
    assert [r["article_id"] for r in data["top_reads"]] == ["a1", "a2", "a3", "a4"]
    assert [r["article_id"] for r in data["top_rating"]] == ["a2", "a1", "a3"]
    code, out, _ = readrate(loaded, "report", "summary", *WINDOW, "--format", "csv", capsys=capsys)
    rows = from_csv(out)
    assert rows[0] == {"section": "total", "rank": None, "article_id": None, "title": None, "reads": 115,
                       "votes": 7, "rating_avg": 4.0, "score": None, "active_articles": 4}
    for section in ("top_reads", "top_rating"):
        assert [{k: v for k, v in r.items() if k not in ("section", "active_articles")}
                for r in rows if r["section"] == section] == data[section]


def test_plot_draws_a_png_chart_of_a_top_list_an_article_and_a_summary(loaded, capsys, tmp_path):
    from matplotlib.image import imread

    for args, name in ((["top", *WINDOW], "top.png"), (["article", "a1"], "article.png"),
                       (["summary", *WINDOW], "summary.png")):
        target = tmp_path / name
        code, _, err = readrate(loaded, "report", *args, "--plot", str(target), capsys=capsys)
        assert code == 0, err
        assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        height, width = imread(target).shape[:2]
        assert width >= 800 and height >= 200


def test_plot_says_so_when_there_is_nothing_to_draw(loaded, capsys, tmp_path):
    target = tmp_path / "empty.png"
    code, _, err = readrate(loaded, "report", "top", "--since", "1999-01-01", "--until", "1999-01-02",
                            "--plot", str(target), capsys=capsys)
    assert code == 0
    assert "nothing to draw" in err and not target.exists()


def test_plot_without_matplotlib_fails_naming_the_extra_to_install(loaded, tmp_path):
    hide = "import sys; sys.modules['matplotlib'] = None; from readrate.reports.cli import main; main()"
    done = subprocess.run([sys.executable, "-c", hide, "report", "top", "--plot", str(tmp_path / "x.png")],
                          env=env_for(loaded), capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "pip install 'readrate[plot]'" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_empty_database_and_an_empty_window_say_so_and_exit_0(settings, engine, loaded, capsys, tmp_path):
    (tmp_path / "never-migrated.db").touch()
    fresh = replace(settings, database_url=f"sqlite:///{tmp_path / 'never-migrated.db'}")
    for who in (fresh, loaded):
        code, out, err = readrate(who, "report", "top", "--since", "2001-01-01", "--until", "2001-02-01",
                                  capsys=capsys)
        assert (code, out) == (0, "")
        assert ("no articles counted yet" if who is fresh else "no article was read in this window") in err
    code, out, err = readrate(loaded, "report", "top", "--since", "2001-01-01", "--until", "2001-02-01",
                              "--format", "json", capsys=capsys)
    assert (code, json.loads(out)) == (0, [])
    code, out, err = readrate(loaded, "report", "summary", "--since", "2001-01-01", "--until", "2001-02-01",
                              capsys=capsys)
    assert (code, out) == (0, "") and "no reads and no votes in this window" in err


def test_an_unknown_article_is_a_failure_that_names_it(loaded, capsys, tmp_path):
    code, out, err = readrate(loaded, "report", "article", "no-such-thing", capsys=capsys)
    assert (code, out) == (1, "")
    assert "'no-such-thing' is unknown" in err
    (tmp_path / "never-migrated.db").touch()
    fresh = replace(loaded, database_url=f"sqlite:///{tmp_path / 'never-migrated.db'}")
    assert readrate(fresh, "report", "article", "a1", capsys=capsys)[0] == 1


def test_an_article_with_a_title_but_no_traffic_is_reported_with_zeros(loaded, engine, capsys):
    upsert_articles(engine, [{"article_id": "quiet", "title": "Nobody reads me", "url": None}])
    code, out, err = readrate(loaded, "report", "article", "quiet", "--format", "json", capsys=capsys)
    assert code == 0
    assert "'quiet' has no reads and no votes" in err
    report = json.loads(out)
    assert (report["title"], report["reads"], report["votes"], report["rank"], report["daily"]) == (
        "Nobody reads me", 0, 0, None, [])


@pytest.mark.parametrize("args, quoted", [
    (["top", "--since", "last tuesday"], "'last tuesday'"),
    (["top", "--until", "2024-02-30"], "'2024-02-30'"),
    (["top", "--by", "popularity"], "'popularity'"),
    (["top", "--limit", "-1"], "-1"),
    (["top", "--since", "2024-03-05", "--until", "2024-03-01"], "2024-03-05"),
    (["top", "--by", "trending", "--recent", "10d", *WINDOW], "--recent 10d"),
    (["top", "--by", "trending", "--recent", "90m"], "'90m'"),
    (["article", "a1", "--since", "soon"], "'soon'"),
    (["summary", "--format", "xml"], "'xml'"),
])
def test_a_bad_option_value_is_a_usage_error_that_quotes_it(loaded, capsys, args, quoted):
    code, out, err = readrate(loaded, "report", *args, capsys=capsys)
    assert (code, out) == (2, "")
    assert quoted in err
    assert "Traceback" not in err


def test_the_real_command_keeps_data_on_stdout_and_exits_3_when_the_database_is_unreachable(loaded):
    done = run_cli(loaded, "report", "top", *WINDOW, "--format", "csv")
    assert done.returncode == 0 and done.stdout.startswith("rank,article_id,title,reads,votes,rating_avg,score\n")
    assert done.stderr == ""
    down = run_cli(replace(loaded, database_url="postgresql://postgres@127.0.0.1:1/none"), "report", "top")
    assert down.returncode == 3 and "unreachable" in down.stderr and down.stdout == ""


def test_help_explains_windows_by_the_hour_and_the_trending_formula(capsys):
    with pytest.raises(SystemExit):
        main(["report", "top", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "Reads are counted by the hour they happened in" in text
    assert "score = (recent reads + k) / (expected + k)" in text
    assert "--since is inclusive, --until exclusive" in text


# -- exports of every article, safe to open -------------------------------------------------------

HOSTILE = {"=1+1": "@SUM(A1:A2)", "[/i]": "[bold]Bold[/bold] & <script>alert(1)</script>", "-5": "-2+3+cmd",
           "<b>x</b>": "Tom & Jerry"}


@pytest.fixture
def hostile(settings, engine, redis):
    """Articles whose ids and titles are spreadsheet formulas, rich markup and HTML, read and voted on."""
    pipeline = Pipeline(settings, engine, redis)
    for n, article in enumerate(HOSTILE, start=1):
        for k in range(n):
            pipeline.read(article, T0 + timedelta(hours=k))
        pipeline.vote(article, 1 + n, "v", T0 + timedelta(hours=n))
    pipeline.flush()
    upsert_articles(engine, [{"article_id": a, "title": t, "url": None} for a, t in HOSTILE.items()])
    return settings


def test_limit_0_lists_every_article_for_a_full_export(loaded, capsys):
    for by, expected in (("reads", 4), ("votes", 3), ("rating", 3), ("trending", 4)):
        code, out, err = readrate(loaded, "report", "top", "--by", by, "--limit", "0", *WINDOW, "--format", "csv",
                                  capsys=capsys)
        assert code == 0, err
        assert len(from_csv(out)) == expected, by
    code, out, _ = readrate(loaded, "report", "top", "--limit", "2", *WINDOW, "--format", "json", capsys=capsys)
    assert [r["article_id"] for r in json.loads(out)] == ["a1", "a2"]
    code, out, _ = readrate(loaded, "report", "top", "--limit", "0", *WINDOW, capsys=capsys)
    assert out.startswith("Every article by reads, 2024-03-01 to 2024-03-11 UTC")
    with pytest.raises(SystemExit):
        main(["report", "top", "--help"])
    assert "0 lists every article" in " ".join(capsys.readouterr().out.split())


def test_csv_exports_put_a_quote_before_text_a_spreadsheet_would_run_as_a_formula(hostile, capsys):
    code, out, err = readrate(hostile, "report", "top", "--limit", "0", "--format", "csv", capsys=capsys)
    assert code == 0, err
    rows = {r["article_id"]: r for r in csv.DictReader(io.StringIO(out))}
    assert rows["'=1+1"]["title"] == "'@SUM(A1:A2)"
    assert rows["-5"]["title"] == "'-2+3+cmd"  # the id -5 is a plain number, not a formula: kept
    assert rows["[/i]"]["title"] == HOSTILE["[/i]"]
    assert all(not v.startswith(("=", "+", "@")) and not (v.startswith("-") and v != "-5")
               for r in rows.values() for v in r.values())
    assert [(r["reads"], r["votes"], r["rating_avg"]) for r in rows.values()] == [
        ("4", "1", "5.0"), ("3", "1", "4.0"), ("2", "1", "3.0"), ("1", "1", "2.0")]
    code, out, _ = readrate(hostile, "report", "summary", "--format", "csv", capsys=capsys)
    assert "top_reads,4,'=1+1,'@SUM(A1:A2),1,1,2.0,1.0," in out.splitlines()


def test_markdown_exports_escape_html_in_ids_titles_and_headings(hostile, capsys):
    code, out, err = readrate(hostile, "report", "top", "--format", "markdown", capsys=capsys)
    assert code == 0, err
    html = MarkdownIt("commonmark").enable("table").render(out)
    assert "<script>" not in html and "<b>" not in html
    assert "<td>[bold]Bold[/bold] &amp; &lt;script&gt;alert(1)&lt;/script&gt;</td>" in html
    assert "<td>&lt;b&gt;x&lt;/b&gt;</td>" in html
    code, out, _ = readrate(hostile, "report", "article", "<b>x</b>", "--format", "markdown", capsys=capsys)
    html = MarkdownIt("commonmark").enable("table").render(out)
    assert "<b>" not in html and "&lt;b&gt;x&lt;/b&gt; · Tom &amp; Jerry" in html


def test_terminal_tables_show_ids_and_titles_with_rich_markup_literally(hostile, capsys):
    for args in (["top"], ["top", "--by", "rating"], ["summary"], ["article", "[/i]"]):
        code, out, err = readrate(hostile, "report", *args, capsys=capsys)
        assert code == 0, err
        assert "[/i]" in out and "[bold]Bold[/bold] & <script>alert(1)</script>" in out, args
    code, out, _ = readrate(hostile, "report", "top", capsys=capsys)
    assert [cells[1:3] for cells in table_rows(out)][:2] == [["<b>x</b>", "Tom & Jerry"], ["-5", "-2+3+cmd"]]


# -- extreme windows ---------------------------------------------------------------------------------

@pytest.mark.parametrize("args, quoted", [
    (["top", "--since", "9999-12-31T12:00"], "'9999-12-31T12:00'"),
    (["top", "--until", "9999-12-31T23:00-05:00"], "'9999-12-31T23:00-05:00'"),
    (["summary", "--since", "0001-01-01T00:00+00:30"], "'0001-01-01T00:00+00:30'"),
    (["article", "a1", "--since", "999999w"], "'999999w'"),
    (["top", "--by", "trending", "--recent", "999999w"], "--recent 999999w"),
    (["top", "--by", "trending", "--since", "0001-01-01", "--recent", "999999w"], "--recent 999999w"),
])
def test_times_past_what_a_report_can_count_are_usage_errors_that_quote_them(loaded, capsys, args, quoted):
    code, out, err = readrate(loaded, "report", *args, capsys=capsys)
    assert (code, out) == (2, "")
    assert quoted in err and "accepted:" in err
    assert "Traceback" not in err and "Overflow" not in err


@pytest.mark.parametrize("by", ["reads", "votes", "rating"])
def test_windows_from_the_year_1_to_the_last_midnight_report_the_whole_history(loaded, capsys, by):
    def rows(*window: str) -> list[dict]:
        code, out, err = readrate(loaded, "report", "top", "--by", by, *window, "--format", "json", capsys=capsys)
        assert code == 0, err
        return json.loads(out)

    everything = rows()
    assert len(everything) >= 3
    assert rows("--since", "0001-01-01", "--until", "9999-12-31") == everything
    assert rows("--since", "0001-01-01") == rows("--until", "9999-12-31") == everything
    assert rows("--until", "0001-01-01") == rows("--since", "9999-12-31") == []


@pytest.mark.parametrize("args", [
    ["top", "--by", "trending", "--until", "9999-12-31"],
    ["top", "--by", "trending", "--since", "0001-01-01"],
    ["top", "--by", "trending", "--since", "0001-01-01", "--until", "2024-03-11", "--recent", "100000w"],
    ["top", "--until", "0001-01-01"],
    ["top", "--since", "9999-12-31"],
    ["summary", "--since", "0001-01-01", "--until", "9999-12-31"],
    ["summary", "--until", "0001-01-01"],
    ["article", "a1", "--since", "0001-01-01", "--until", "9999-12-31"],
    ["article", "a1", "--until", "0001-01-01"],
    ["article", "a1", "--since", "9999-12-31"],
])
def test_extreme_windows_give_a_report_or_say_there_is_nothing_never_a_traceback(loaded, capsys, args):
    for fmt in ("table", "json", "csv"):
        code, out, err = readrate(loaded, "report", *args, "--format", fmt, capsys=capsys)
        assert code == 0, err
        assert "Traceback" not in err and "unexpected" not in err


def test_an_article_over_centuries_lists_its_active_days_not_every_day_since_the_year_1(loaded, capsys):
    code, out, _ = readrate(loaded, "report", "article", "a2", "--since", "0001-01-01", "--until", "9999-12-31",
                            "--format", "json", capsys=capsys)
    report = json.loads(out)
    assert (report["reads"], report["votes"], len(report["daily"])) == (30, 2, 10)
    assert report["daily"][0]["day"] == "2024-03-01" and report["daily"][-1]["day"] == "2024-03-10"


# -- words -------------------------------------------------------------------------------------------

def test_the_article_table_says_which_window_its_mean_of_votes_c_is_taken_over(loaded, capsys):
    code, out, _ = readrate(loaded, "report", "article", "a1", *WINDOW, capsys=capsys)
    text = " ".join(out.split())
    assert "C (mean of votes, 2024-03-01 to 2024-03-11 UTC)" in text
    code, out, _ = readrate(loaded, "report", "article", "a1", capsys=capsys)
    assert "C (mean of votes, all time)" in " ".join(out.split())


def test_a_one_day_article_report_says_1_day(loaded, capsys):
    code, out, _ = readrate(loaded, "report", "article", "a1", "--since", "2024-03-03", "--until", "2024-03-04",
                            capsys=capsys)
    assert "Daily, 2024-03-03 to 2024-03-03 (1 day; one mark a day)" in out


# -- charts and databases with nothing in them --------------------------------------------------------

def test_plot_of_an_article_says_so_when_the_window_has_nothing_to_draw(loaded, capsys, tmp_path):
    target = tmp_path / "quiet.png"
    code, _, err = readrate(loaded, "report", "article", "a1", "--since", "1999-01-01", "--until", "1999-01-02",
                            "--plot", str(target), capsys=capsys)
    assert code == 0 and "nothing to draw" in err and not target.exists()
    votes_only = tmp_path / "votes-only.png"
    code, _, err = readrate(loaded, "report", "article", "a3", "--since", "2024-03-09T00:00", "--until",
                            "2024-03-09T02:00", "--plot", str(votes_only), capsys=capsys)
    assert code == 0 and f"drew {votes_only}" in err


@pytest.fixture
def unmigrated(prefix, database_url):
    """A database of each kind that exists and holds no readrate tables."""
    from readrate.events.settings import Settings
    from conftest import REDIS_URL

    if database_url.startswith("sqlite:///"):
        open(database_url.removeprefix("sqlite:///"), "wb").close()
    return Settings.from_env({}, redis_url=REDIS_URL, database_url=database_url, prefix=prefix)


def test_reports_on_a_database_without_readrate_tables_say_so_in_one_line(unmigrated):
    for args, code, said in ((["top"], 0, "no articles counted yet"),
                             (["top", "--by", "trending"], 0, "no articles counted yet"),
                             (["top", "--by", "rating", "--since", "7d", "--format", "json"], 0, "no articles"),
                             (["summary"], 0, "no articles counted yet"),
                             (["summary", "--since", "7d", "--format", "csv"], 0, "no articles counted yet"),
                             (["article", "a1"], 1, "the database has no readrate tables yet")):
        done = run_cli(unmigrated, "report", *args)
        assert done.returncode == code, (args, done.stderr)
        assert said in done.stderr and len(done.stderr.strip().splitlines()) == 1, (args, done.stderr)
        assert "Traceback" not in done.stderr


def test_reports_on_a_database_missing_a_readrate_table_fail_in_one_line_naming_the_fix(settings, engine):
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE votes_daily")
    for args in (["summary", "--since", "2024-03-01"], ["top", "--by", "votes", "--since", "2024-03-01"],
                 ["top", "--by", "rating", "--since", "2024-03-01T10:00"]):
        done = run_cli(settings, "report", *args)
        assert done.returncode == 1, (args, done.stderr)
        assert "no readrate tables" in done.stderr and "readrate db upgrade" in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
