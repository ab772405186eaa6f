"""How each report looks in each format: the columns of a top list, and the blocks of the article and
summary reports. The data come from `queries`/`detail` as JSON-contract dicts and `TopRow`s; `render`
formats tables.

JSON is always the whole document. CSV is always one table with a header, so it
parses back: a top list's rows, an article's daily series, a summary's totals and
top lists as rows of one table with a `section` column.
"""

from __future__ import annotations

import csv
import io

from .render import Column, as_mapping, count, csv_cell, fixed, plural, render, to_json
from .sparkline import DEFAULT_WIDTH, sparkline

SCORE = Column("score", "score", lambda v: f"{v:,.0f}" if float(v).is_integer() else f"{v:.3f}", numeric=True)
TOP_COLUMNS = [
    Column("rank", "#", str, numeric=True),
    Column("article_id", "article"),
    Column("title", "title"),
    Column("reads", "reads", count, numeric=True),
    Column("votes", "votes", count, numeric=True),
    Column("rating_avg", "avg", fixed(2), numeric=True),
    SCORE,
]
TRENDING_COLUMNS = [
    *TOP_COLUMNS[:-1],
    Column("recent_reads", "recent", count, numeric=True),
    Column("expected_reads", "expected", fixed(1), numeric=True),
    Column("score", "trend", fixed(2), numeric=True),
]
DAILY_COLUMNS = [Column("day", "day"), Column("reads", "reads", count, numeric=True),
                 Column("votes", "votes", count, numeric=True)]
HISTOGRAM_COLUMNS = [Column("rating", "rating", lambda v: f"{v:g}", numeric=True),
                     Column("votes", "votes", count, numeric=True), Column("bar", "")]
TOTALS_COLUMNS = [Column("reads", "reads", count, numeric=True), Column("votes", "votes", count, numeric=True),
                  Column("active_articles", "active articles", count, numeric=True),
                  Column("rating_avg", "mean rating", fixed(2), numeric=True)]
READERS = Column("readers", "readers", count, numeric=True)
BAR_WIDTH = 30


def top_columns(by: str, readers: bool = False) -> list[Column]:
    """A top list's columns; `readers` (the archive is on) adds distinct readers after reads."""
    columns = TRENDING_COLUMNS if by == "trending" else TOP_COLUMNS
    if readers:
        at = [c.key for c in columns].index("reads") + 1
        columns = [*columns[:at], READERS, *columns[at:]]
    return columns


def top_text(rows: list, by: str, fmt: str, title: str) -> str:
    readers = any(getattr(row, "readers", None) is not None for row in rows)
    return render(rows, top_columns(by, readers), fmt, title=title)


def article_columns(window_words: str, url: bool, readers: bool = False) -> list[Column]:
    """The counters of an article report; C is the mean of the votes cast in the report's window, so its
    heading names that window. `readers` (the archive is on) adds distinct readers."""
    return [
        Column("reads", "reads", count, numeric=True),
        *([READERS] if readers else []),
        Column("votes", "votes", count, numeric=True),
        Column("rating_avg", "avg", fixed(2), numeric=True),
        Column("score", "Bayesian score", fixed(3), numeric=True),
        Column("mean_rating", f"C (mean of votes, {window_words})", fixed(3), numeric=True),
        Column("rank", "rank by reads", count, numeric=True),
        *([Column("url", "url")] if url else []),
    ]


def article_text(report: dict, fmt: str, window_words: str) -> str:
    """An article report: JSON as is; CSV the daily series; table/Markdown the counters, stars and series."""
    if fmt == "json":
        return to_json(report)
    if fmt == "csv":
        return render(report["daily"], DAILY_COLUMNS, "csv")
    name = report["article_id"] + (f" · {report['title']}" if report["title"] else "")
    columns = article_columns(window_words, bool(report["url"]), report.get("readers") is not None)
    blocks = [render([report], columns, fmt, title=f"{name} ({window_words})")]
    if report.get("resets"):
        blocks.append("\n".join(reset_note(r) for r in report["resets"]) + "\n")
    top = max((h["votes"] for h in report["histogram"]), default=0)
    stars = [{**h, "bar": "█" * round(BAR_WIDTH * h["votes"] / top) if top else ""} for h in report["histogram"]]
    if stars:
        blocks.append(render(stars, HISTOGRAM_COLUMNS, fmt, title="Votes by rating"))
    blocks.append(series_text(report["daily"], fmt))
    return "\n".join(blocks)


def reset_note(reset: dict) -> str:
    """`Reset on 2026-12-02 (a bot storm): reads and votes before it removed.`"""
    return (f"Reset on {reset['applied_at']:%Y-%m-%d} ({reset['reason']}): "
            f"{' and '.join(reset['reset'])} before it removed (operation {reset['id']}).")


def series_text(daily: list[dict], fmt: str) -> str:
    """The daily series as two sparklines with their span and peaks."""
    if not daily:
        return "No daily activity in this window.\n"
    first, last = daily[0]["day"], daily[-1]["day"]
    fewest, most = max(1, len(daily) // DEFAULT_WIDTH), -(-len(daily) // DEFAULT_WIDTH)
    marks = "one mark a day" if most == 1 else f"each mark sums {fewest}{'' if fewest == most else f'–{most}'} days"
    lines = [f"Daily, {first} to {last} ({plural(len(daily), 'day')}; {marks})"]
    for key in ("reads", "votes"):
        values = [d[key] for d in daily]
        lines.append(f"{key:<5} {sparkline(values)}  total {sum(values):,}, busiest day {max(values):,}")
    if fmt == "markdown":
        return "**" + lines[0] + "**\n\n```\n" + "\n".join(lines[1:]) + "\n```\n"
    return "\n".join(lines) + "\n"


def summary_text(report: dict, fmt: str, window_words: str) -> str:
    """A summary: JSON as is; CSV one table with a `section` column; table/Markdown three blocks."""
    if fmt == "json":
        return to_json(report)
    if fmt == "csv":
        return summary_csv(report)
    blocks = [render([report], TOTALS_COLUMNS, fmt, title=f"Summary, {window_words}")]
    blocks.append(render(report["top_reads"], TOP_COLUMNS, fmt, title="Most read"))
    blocks.append(render(report["top_rating"], TOP_COLUMNS, fmt, title="Top rated (Bayesian average)"))
    return "\n".join(blocks)


SUMMARY_CSV = ["section", "rank", "article_id", "title", "reads", "votes", "rating_avg", "score", "active_articles"]


def summary_csv(report: dict) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, SUMMARY_CSV, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerow({"section": "total", **_cells(report)})
    for section in ("top_reads", "top_rating"):
        for r in report[section]:
            writer.writerow({"section": section, **_cells(as_mapping(r))})
    return out.getvalue()


def _cells(row: dict) -> dict:
    return {k: csv_cell(v) for k, v in row.items() if k in SUMMARY_CSV}
