"""Sparklines and the article and summary layouts, without a database."""

from __future__ import annotations

from datetime import date, timedelta

from markdown_it import MarkdownIt

from reports.sparkline import fold, sparkline
from reports.views import article_text, summary_csv


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
