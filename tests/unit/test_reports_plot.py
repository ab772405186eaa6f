"""The charts of `--plot`, drawn without a database: axes that read well, and text drawn as text."""

from __future__ import annotations

import io
from datetime import date, timedelta

import pytest

pytest.importorskip("matplotlib")

from readrate.reports.plot import MAX_BARS, article_figure, top_figure  # noqa: E402
from readrate.reports.ranking import TopRow  # noqa: E402


def _article(reads: list[int], votes: list[int]) -> dict:
    start = date(2024, 1, 1)
    return {"daily": [{"day": start + timedelta(days=i), "reads": r, "votes": v}
                      for i, (r, v) in enumerate(zip(reads, votes))]}


def _drawn(figure) -> None:
    figure.savefig(io.BytesIO(), format="png")  # mathtext and size errors surface only when drawing


def _integer_ticks(axis) -> list[float]:
    low, high = axis.get_ylim()
    ticks = [t for t in axis.get_yticks() if low <= t <= high]
    assert ticks and all(float(t).is_integer() for t in ticks), ticks
    return ticks


def test_a_votes_only_article_is_charted_on_one_axis_of_votes_from_zero_in_whole_numbers():
    figure = article_figure(_article([0] * 6, [6, 0, 0, 0, 0, 2]), "votes only")
    _drawn(figure)
    [ax] = figure.axes  # no empty axis of reads beside it
    assert ax.get_ylabel() == "votes per day"
    assert ax.get_ylim()[0] == 0 and ax.get_ylim()[1] >= 6
    _integer_ticks(ax)


def test_an_article_with_one_vote_is_not_drawn_on_a_scale_of_hundredths():
    figure = article_figure(_article([0, 0, 0], [0, 1, 0]), "one vote")
    _drawn(figure)
    [ax] = figure.axes
    assert ax.get_ylim() == (0, pytest.approx(1, abs=0.1))
    assert _integer_ticks(ax) == [0, 1]


def test_an_article_with_no_reads_and_no_votes_gets_a_reads_axis_of_0_to_1():
    figure = article_figure(_article([0, 0], [0, 0]), "quiet")
    _drawn(figure)
    [ax] = figure.axes
    assert ax.get_ylabel() == "reads per day"
    assert ax.get_ylim() == (0, 1)
    assert _integer_ticks(ax) == [0, 1]


def test_an_article_with_reads_and_votes_has_reads_on_the_left_and_votes_on_the_right():
    figure = article_figure(_article([5, 5, 7, 5], [0, 4, 0, 1]), "both")
    _drawn(figure)
    reads_ax, votes_ax = figure.axes
    assert (reads_ax.get_ylabel(), votes_ax.get_ylabel()) == ("reads per day", "votes per day")
    for ax in (reads_ax, votes_ax):
        assert ax.get_ylim()[0] == 0
        _integer_ticks(ax)


def test_titles_with_dollar_signs_are_drawn_as_text_not_as_mathtext():
    rows = [TopRow(1, "a", r"Costs $5 and $10 $\frac$", 5, 0, None, 5.0)]
    figure = top_figure(rows, "reads", r"Top $\notacommand$")
    _drawn(figure)  # mathtext would refuse \frac without arguments
    [ax] = figure.axes
    assert [t.get_text() for t in ax.get_yticklabels()] == [r"1. Costs \$5 and \$10 \$\frac\$"]
    _drawn(article_figure(_article([1], [0]), r"$\frac$ an article"))


def test_a_chart_of_a_full_export_draws_the_first_bars_only():
    rows = [TopRow(i, f"a{i}", None, 10_000 - i, 0, None, float(10_000 - i)) for i in range(1, 5001)]
    figure = top_figure(rows, "reads", "Every article by reads")
    _drawn(figure)  # every row would be a figure taller than the image size Agg can draw
    [ax] = figure.axes
    assert len(ax.get_yticklabels()) == MAX_BARS
