"""Sparklines, the renderers and the article and summary layouts, without a database."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, timedelta

import pytest
from markdown_it import MarkdownIt

from readrate.reports.ranking import TopRow
from readrate.reports.render import Column, render
from readrate.reports.sparkline import fold, sparkline
from readrate.reports.views import TOP_COLUMNS, TRENDING_COLUMNS, article_text, series_text, summary_csv


def test_a_sparkline_draws_zero_lowest_the_peak_highest_and_any_read_above_zero():
    assert sparkline([0, 1, 7, 14]) == "▁▂▅█"
    assert sparkline([0, 0, 0]) == "▁▁▁"
    assert sparkline([]) == ""
    assert sparkline([1, 1000]) == "▂█"  # one read among a thousand still shows


def test_a_long_series_is_folded_by_summing_so_no_spike_is_lost():
    assert fold([1] * 10, 5) == [2, 2, 2, 2, 2]
    assert fold([0, 0, 0, 9, 0, 0, 0], 3) == [0, 9, 0]
    assert sum(fold(list(range(1000)), 60)) == sum(range(1000))
    assert len(sparkline(list(range(1000)), 60)) == 60


def _report(days: int) -> dict:
    start = date(2024, 1, 1)
    return {"rank": 3, "article_id": "a-1", "title": "A | B", "url": None, "reads": 1234, "votes": 2,
            "rating_avg": 4.5, "score": 4.1, "mean_rating": 4.0, "since": None, "until": None,
            "histogram": [{"rating": r, "votes": int(r in (4.0, 5.0))} for r in (1.0, 2.0, 3.0, 4.0, 5.0)],
            "daily": [{"day": start + timedelta(days=i), "reads": i, "votes": 0} for i in range(days)]}


def test_the_article_table_shows_counters_a_histogram_and_sparklines():
    text = article_text(_report(90), "table", "all time")
    assert "a-1 · A | B (all time)" in text
    assert "1,234" in text and "4.50" in text
    assert "C (mean of votes, all time)" in text
    assert "Daily, 2024-01-01 to 2024-03-30 (90 days; each mark sums 1–2 days)" in text
    reads_line = next(line for line in text.splitlines() if line.startswith("reads "))
    assert "total 4,005, busiest day 89" in reads_line
    assert len(reads_line.split()[1]) == 60


def test_the_article_markdown_renders_its_tables():
    html = MarkdownIt("commonmark").enable("table").render(article_text(_report(5), "markdown", "all time"))
    assert html.count("<table>") == 2  # counters and votes by rating
    assert "<code>" in html  # the sparklines, kept in a code block


def test_the_summary_csv_is_one_table_with_a_section_column():
    report = {"reads": 3, "votes": 1, "active_articles": 2, "rating_avg": 5.0, "since": None, "until": None,
              "top_reads": [{"rank": 1, "article_id": "a", "title": None, "reads": 3, "votes": 1,
                             "rating_avg": 5.0, "score": 3.0}],
              "top_rating": []}
    assert summary_csv(report).splitlines() == [
        "section,rank,article_id,title,reads,votes,rating_avg,score,active_articles",
        "total,,,,3,1,5.0,,2",
        "top_reads,1,a,,3,1,5.0,3.0,",
    ]


def test_the_article_table_names_the_window_its_mean_of_votes_c_is_taken_over():
    for fmt in ("table", "markdown"):
        text = " ".join(article_text(_report(3), fmt, "2024-01-01 to 2024-02-01 UTC").split())
        assert "C (mean of votes, 2024-01-01 to 2024-02-01 UTC)" in text
        assert "mean of all votes" not in text


def test_a_series_of_one_day_says_1_day_not_1_days():
    assert "(1 day; one mark a day)" in series_text(_report(1)["daily"], "table")
    assert "(2 days; one mark a day)" in series_text(_report(2)["daily"], "table")
    assert "(1,000 days; each mark sums 16–17 days)" in series_text(_report(1000)["daily"], "table")


ROWS = [TopRow(1, "=cmd|' /C calc'!A0", "+SUM(A1:A9)", 50, 4, 4.0, 50.0),
        TopRow(2, "@evil", "-2+3+cmd", 30, 2, 5.0, 30.0),
        TopRow(3, "-5", "\tTabbed", 20, 0, None, 20.0),
        TopRow(4, "plain", "A - B = C", 10, 0, None, 10.0)]


def _csv(rows, columns=TOP_COLUMNS) -> list[list[str]]:
    return list(csv.reader(io.StringIO(render(rows, columns, "csv"))))


def test_csv_text_cells_a_spreadsheet_would_run_as_a_formula_start_with_a_quote():
    cells = _csv(ROWS)
    assert [row[1:3] for row in cells[1:]] == [
        ["'=cmd|' /C calc'!A0", "'+SUM(A1:A9)"],
        ["'@evil", "'-2+3+cmd"],
        ["-5", "'\tTabbed"],  # "-5" is a plain number, not a formula: left as it is
        ["plain", "A - B = C"],  # only the first character matters
    ]


def test_csv_numbers_stay_numbers_even_when_negative():
    columns = [Column("article_id", "article"), Column("delta", "delta", numeric=True),
               Column("ratio", "ratio", numeric=True)]
    rows = [{"article_id": "a", "delta": -3, "ratio": -0.25}, {"article_id": "-1e3", "delta": 0, "ratio": 1.5}]
    assert _csv(rows, columns) == [["article_id", "delta", "ratio"], ["a", "-3", "-0.25"], ["-1e3", "0", "1.5"]]


def test_the_summary_csv_neutralises_formulas_too():
    report = {"reads": 3, "votes": 0, "active_articles": 1, "rating_avg": None, "since": None, "until": None,
              "top_reads": [ROWS[0]], "top_rating": []}
    assert summary_csv(report).splitlines()[2] == "top_reads,1,'=cmd|' /C calc'!A0,'+SUM(A1:A9),50,4,4.0,50.0,"


def test_markdown_escapes_html_in_cells_and_titles():
    rows = [TopRow(1, "<b>id</b>", "Tom & Jerry <script>alert(1)</script>", 5, 0, None, 5.0)]
    text = render(rows, TOP_COLUMNS, "markdown", title="Top <i>1</i> & more")
    assert "<script>" not in text and "<b>" not in text and "<i>" not in text
    html = MarkdownIt("commonmark").enable("table").render(text)
    assert "<script>" not in html and "<b>id" not in html
    assert "<td>Tom &amp; Jerry &lt;script&gt;alert(1)&lt;/script&gt;</td>" in html
    assert "<td>&lt;b&gt;id&lt;/b&gt;</td>" in html
    assert "<strong>Top &lt;i&gt;1&lt;/i&gt; &amp; more</strong>" in html


@pytest.mark.parametrize("text", ["[/i]", "[bold]big[/bold]", "[link=https://x.org]x[/link]", "a [red]b", "[/]"])
def test_a_terminal_table_shows_rich_markup_in_ids_titles_and_the_heading_literally(text):
    rows = [TopRow(1, text, f"title {text}", 5, 0, None, 5.0)]
    table = render(rows, TOP_COLUMNS, "table", title=f"Top {text}")
    assert text in table
    assert f"title {text}" in table
    assert f"Top {text}" in table


def test_rows_render_the_same_as_top_rows_or_as_their_dicts_in_every_format():
    trending = [TopRow(1, "a", "A", 9, 1, 4.0, 1.5, recent_reads=5, expected_reads=0.0)]
    for rows, columns in ((ROWS, TOP_COLUMNS), (trending, TRENDING_COLUMNS)):
        for fmt in ("table", "csv", "json", "markdown"):
            assert render(rows, columns, fmt, title="t") == render([r.as_dict() for r in rows], columns, fmt,
                                                                   title="t")
    assert json.loads(render(trending, TRENDING_COLUMNS, "json")) == [
        {"rank": 1, "article_id": "a", "title": "A", "reads": 9, "votes": 1, "rating_avg": 4.0, "score": 1.5,
         "recent_reads": 5, "expected_reads": 0.0}]
