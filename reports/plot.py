"""`--plot FILE.png`: charts for people who would rather look than read.

matplotlib is an optional extra (`pip install 'readrate[plot]'`), imported only
when a plot is asked for, and drawn with the Agg canvas on a bare `Figure` — no
pyplot, no display, no global backend state.
"""

from __future__ import annotations

from pathlib import Path

from events.errors import ReadrateError

INSTALL_HINT = "pip install 'readrate[plot]'"
LABEL_CHARS = 40
METRIC = {"reads": ("reads", "Reads"), "votes": ("votes", "Votes"),
          "rating": ("score", "Bayesian rating"), "trending": ("score", "Trend (recent pace ÷ earlier pace)")}


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


def _label(row: dict) -> str:
    text = row.get("title") or row["article_id"]
    return text if len(text) <= LABEL_CHARS else text[:LABEL_CHARS - 1] + "…"


def plot_top(rows: list[dict], by: str, title: str, path: str | Path) -> None:
    """A horizontal bar chart of a top list, the first at the top, each bar labelled with its value."""
    figure = _figure(10, 1.5 + 0.35 * max(len(rows), 1))
    _bars(figure.add_subplot(), rows, by, title)
    figure.savefig(path, format="png")


def plot_summary(lists: list[tuple[list[dict], str, str]], path: str | Path) -> None:
    """A summary's top lists, one bar chart each, stacked: `(rows, by, title)` per list."""
    height = sum(1.2 + 0.35 * max(len(rows), 1) for rows, _, _ in lists)
    figure = _figure(10, height)
    for ax, (rows, by, title) in zip(figure.subplots(len(lists), 1, squeeze=False)[:, 0], lists):
        _bars(ax, rows, by, title)
    figure.savefig(path, format="png")


def _bars(ax, rows: list[dict], by: str, title: str) -> None:
    key, axis_label = METRIC[by]
    labels = [f"{r['rank']}. {_label(r)}" for r in rows]
    values = [r[key] or 0 for r in rows]
    bars = ax.barh(range(len(rows)), values, color="#4477aa")
    ax.set_yticks(range(len(rows)), labels)
    ax.invert_yaxis()
    ax.bar_label(bars, labels=[f"{v:,.0f}" if float(v).is_integer() else f"{v:.2f}" for v in values], padding=3)
    ax.set_xlabel(axis_label)
    ax.set_title(title, loc="left")
    ax.spines[["top", "right"]].set_visible(False)


def plot_article(report: dict, title: str, path: str | Path) -> None:
    """Daily reads (bars) and votes (line, right axis) of one article."""
    figure = _figure(10, 4.5)
    ax = figure.add_subplot()
    days = [d["day"] for d in report["daily"]]
    ax.bar(days, [d["reads"] for d in report["daily"]], width=0.8, color="#4477aa", label="reads")
    ax.set_ylabel("reads per day")
    votes_ax = ax.twinx()
    votes_ax.plot(days, [d["votes"] for d in report["daily"]], color="#ee6677", label="votes",
                  marker="o" if len(days) <= 60 else None, markersize=3)
    votes_ax.set_ylabel("votes per day")
    for axis in (ax, votes_ax):
        axis.set_ylim(bottom=0)
        axis.yaxis.get_major_locator().set_params(integer=True)
    ax.set_title(title, loc="left")
    figure.legend(loc="outside upper right", ncols=2)
    figure.autofmt_xdate()
    figure.savefig(path, format="png")
