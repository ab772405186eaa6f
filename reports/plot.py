"""`--plot FILE.png`: charts for people who would rather look than read.

matplotlib is an optional extra (`pip install 'readrate[plot]'`), imported only
when a plot is asked for, and drawn with the Agg canvas on a bare `Figure` — no
pyplot, no display, no global backend state.
"""

from __future__ import annotations

from pathlib import Path

from readrate.events.errors import ReadrateError

from .ranking import TopRow

INSTALL_HINT = "pip install 'readrate[plot]'"
LABEL_CHARS = 40
# Bars a top-list chart holds: beyond a few screens of them no one reads the labels, and a figure tall
# enough for every article of a full export would pass the image size Agg can draw.
MAX_BARS = 100
METRIC = {"reads": ("reads", "Reads"), "votes": ("votes", "Votes"),
          "rating": ("score", "Bayesian rating"), "trending": ("score", "Trend (recent pace ÷ earlier pace)"),
          "readers": ("readers", "Distinct readers")}
READS_COLOR, VOTES_COLOR = "#4477aa", "#ee6677"


class PlotUnavailable(ReadrateError):
    """Raised when --plot is asked for but matplotlib is not installed."""


def _figure(width_in: float, height_in: float):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise PlotUnavailable(f"--plot needs matplotlib, which is not installed; run: {INSTALL_HINT}") from None
    figure = Figure(figsize=(width_in, height_in), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def literal(text: str) -> str:
    """`text` as matplotlib should show it: a title with two `$` would otherwise be read as mathtext."""
    return text.replace("$", r"\$")


def _label(row: TopRow) -> str:
    text = row.title or row.article_id
    return literal(text if len(text) <= LABEL_CHARS else text[:LABEL_CHARS - 1] + "…")


def plot_top(rows: list[TopRow], by: str, title: str, path: str | Path) -> None:
    top_figure(rows, by, title).savefig(path, format="png")


def top_figure(rows: list[TopRow], by: str, title: str):
    """A horizontal bar chart of a top list (its first MAX_BARS rows), the first at the top, each bar
    labelled with its value."""
    rows = rows[:MAX_BARS]
    figure = _figure(10, 1.5 + 0.35 * max(len(rows), 1))
    _bars(figure.add_subplot(), rows, by, title)
    return figure


def plot_summary(lists: list[tuple[list[TopRow], str, str]], path: str | Path) -> None:
    """A summary's top lists, one bar chart each, stacked: `(rows, by, title)` per list."""
    lists = [(rows[:MAX_BARS], by, title) for rows, by, title in lists]
    height = sum(1.2 + 0.35 * max(len(rows), 1) for rows, _, _ in lists)
    figure = _figure(10, height)
    for ax, (rows, by, title) in zip(figure.subplots(len(lists), 1, squeeze=False)[:, 0], lists):
        _bars(ax, rows, by, title)
    figure.savefig(path, format="png")


def _bars(ax, rows: list[TopRow], by: str, title: str) -> None:
    key, axis_label = METRIC[by]
    labels = [f"{r.rank}. {_label(r)}" for r in rows]
    values = [getattr(r, key) or 0 for r in rows]
    bars = ax.barh(range(len(rows)), values, color=READS_COLOR)
    ax.set_yticks(range(len(rows)), labels)
    ax.invert_yaxis()
    ax.bar_label(bars, labels=[f"{v:,.0f}" if float(v).is_integer() else f"{v:.2f}" for v in values], padding=3)
    ax.set_xlabel(axis_label)
    ax.set_title(literal(title), loc="left")
    ax.spines[["top", "right"]].set_visible(False)


def plot_article(report: dict, title: str, path: str | Path) -> None:
    article_figure(report, title).savefig(path, format="png")


def article_figure(report: dict, title: str):
    """Daily reads (bars, left axis) and votes (line, right axis) of one article. A series with nothing in
    it is left out: a votes-only article gets bars of votes on one axis, not an empty axis of reads."""
    daily = report["daily"]
    days = [d["day"] for d in daily]
    reads, votes = [d["reads"] for d in daily], [d["votes"] for d in daily]
    figure = _figure(10, 4.5)
    ax = figure.add_subplot()
    axes = [ax]
    if any(votes) and not any(reads):
        ax.bar(days, votes, width=0.8, color=VOTES_COLOR, label="votes")
        ax.set_ylabel("votes per day")
    else:
        ax.bar(days, reads, width=0.8, color=READS_COLOR, label="reads")
        ax.set_ylabel("reads per day")
    if any(votes) and any(reads):
        votes_ax = ax.twinx()
        votes_ax.plot(days, votes, color=VOTES_COLOR, label="votes", marker="o" if len(days) <= 60 else None,
                      markersize=3)
        votes_ax.set_ylabel("votes per day")
        axes.append(votes_ax)
    for axis in axes:
        # Counts per day: from zero, in whole numbers, and at least 0–1, so a quiet day is not drawn on a
        # 0.00–0.05 scale.
        axis.set_ylim(bottom=0, top=max(1, axis.get_ylim()[1]))
        axis.yaxis.get_major_locator().set_params(integer=True)
    ax.set_title(literal(title), loc="left")
    figure.legend(loc="outside upper right", ncols=2)
    figure.autofmt_xdate()
    return figure
