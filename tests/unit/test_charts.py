"""The dashboard's SVG charts, drawn without a page: well-formed, labelled for screen readers, hostile text
kept as text, empty and zero data drawn as such, and every bar and label inside the chart's box."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from readrate.reports.web.charts import CHART_CLASS, bar_chart, column_chart, cut, text, ticks

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = ['<script>alert(1)</script>', '"><img src=x onerror=alert(1)>', "Tom & Jerry's", "\x00\x1b[31m red",
           "\u202eevil\u202c txt"]


def parsed(svg: str) -> ET.Element:
    """The chart as XML: a chart that parses is one the page cannot be broken out of."""
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg" and root.get("class") == CHART_CLASS and root.get("role") == "img"
    return root


def texts(root: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]


def rects(root: ET.Element) -> list[ET.Element]:
    return list(root.iter(f"{SVG}rect"))


@pytest.mark.parametrize("draw", [
    lambda labels: bar_chart(labels, [3, 2, 1, 4, 5], title=labels[0], links=[f"?a={x}" for x in labels]),
    lambda labels: column_chart(labels, (labels[1], [3, 2, 1, 4, 5]), ("votes", [1, 0, 0, 2, 1]),
                                title=labels[0]),
])
def test_hostile_labels_titles_and_links_stay_text_inside_a_well_formed_chart(draw):
    svg = draw(HOSTILE)

    root = parsed(svg)
    assert "<script" not in svg and "<img" not in svg and "\x00" not in svg and "\u202e" not in svg
    assert root.get("aria-label") == "<script>alert(1)</script>"  # what a screen reader reads, unescaped once
    assert root.find(f"{SVG}title").text == "<script>alert(1)</script>"
    assert not [e.tag for e in root.iter() if e.tag in (f"{SVG}script", f"{SVG}foreignObject", f"{SVG}img")]
    assert not [name for e in root.iter() for name in e.attrib if name.lower().startswith("on")]


def test_the_text_helper_escapes_quotes_and_drops_controls_and_direction_overrides():
    assert text('a"b\'c<d>&') == "a&quot;b&#x27;c&lt;d&gt;&amp;"
    assert text("x\x00\x07\x1b\u202ey\u2066z\tw\n") == "xyz\tw\n"


@pytest.mark.parametrize("svg", [
    bar_chart([], [], title="Top by reads", empty="no reads here"),
    column_chart([], ("reads", []), title="Top by reads", empty="no reads here"),
    column_chart(["2024-01-01"], title="Top by reads", empty="no reads here"),
])
def test_no_data_draws_a_small_chart_that_says_so(svg):
    root = parsed(svg)

    assert texts(root) == ["Top by reads", "no reads here"]
    assert rects(root) == [] and int(root.get("height")) < 100


def test_bars_of_zero_and_missing_values_have_no_length_and_the_axis_still_reads_0_to_1():
    root = parsed(bar_chart(["a", "b", "c"], [0, 0, None], title="t"))

    assert {float(r.get("width")) for r in rects(root)} == {0.0}
    axis = [t.text for t in root.iter(f"{SVG}text") if t.get("text-anchor") == "middle"]
    assert axis == ["0", "1"]
    assert "c: –" in [r.find(f"{SVG}title").text for r in rects(root)]


def test_nan_infinite_and_negative_values_draw_as_empty_bars_instead_of_failing():
    root = parsed(column_chart(["a", "b", "c", "d"], ("x", [float("nan"), float("inf"), -3, 2]), title="t"))

    heights = [float(r.get("height")) for r in rects(root)]
    assert heights[:3] == [0.0, 0.0, 0.0] and heights[3] > 0


@pytest.mark.parametrize("rows", [1, 5, 40])
def test_a_bar_chart_grows_one_row_per_label_and_keeps_every_bar_inside_its_width(rows):
    values = [10 * (i + 1) for i in range(rows)]
    root = parsed(bar_chart([f"article-{i}" for i in range(rows)], values, title="t", width=500, label_px=150,
                            row_px=20))

    assert (root.get("width"), root.get("viewBox")) == ("500", f"0 0 500 {root.get('height')}")
    assert int(root.get("height")) == 30 + 20 * rows + 30
    bars = rects(root)
    assert len(bars) == rows
    ends = [float(b.get("x")) + float(b.get("width")) for b in bars]
    assert all(150 <= end <= 500 - 70 + 0.01 for end in ends)
    assert ends == sorted(ends)  # longer for larger values, on one scale


def test_a_long_label_is_cut_to_its_column_and_kept_whole_in_its_title():
    label = "A very long title that goes on and on to see how the chart copes with it"
    root = parsed(bar_chart([label], [1], title="t", label_px=120))

    shown = [t for t in root.iter(f"{SVG}text") if t.find(f"{SVG}title") is not None][0]
    assert shown.find(f"{SVG}title").text == label
    visible = shown.find(f"{SVG}title").tail
    assert visible.endswith("…") and len(visible) <= (120 - 8) / 6.6
    assert cut("abcdef", 4) == "abc…" and cut("abc", 4) == "abc"


def test_a_heading_wider_than_the_chart_is_cut_and_the_whole_one_stays_in_the_aria_label():
    title = "Trend (recent pace ÷ earlier pace), 2026-11-25 11:00 to 2026-12-02 11:00 UTC"
    root = parsed(bar_chart(["a"], [1.5], title=title, width=300))

    assert texts(root)[0].endswith("…") and root.get("aria-label") == title


def test_a_long_daily_series_shows_at_most_the_labels_asked_for_and_none_past_the_edge():
    days = [f"2024-01-{d:02d}" for d in range(1, 32)]
    root = parsed(column_chart(days, ("reads", list(range(31))), title="t", width=600, max_labels=8))

    labels = [t for t in root.iter(f"{SVG}text") if t.text and t.text.startswith("2024")]
    assert 1 < len(labels) <= 8
    assert all(len(t.text) * 6.6 / 2 <= float(t.get("x")) <= 600 - len(t.text) * 6.6 / 2 for t in labels)
    assert len(rects(root)) == 31
    about = [r.find(f"{SVG}title").text for r in rects(root)]
    assert about[:2] == ["2024-01-01: 0 reads", "2024-01-02: 1 reads"]


def test_axis_labels_replace_the_labels_under_the_axis_but_not_in_the_column_titles():
    root = parsed(column_chart(["2024-03-01", "2024-03-02"], ("votes", [1, 2]), title="t",
                               axis_labels=["Mar 1", "Mar 2"]))

    assert "Mar 1" in texts(root) and "2024-03-01" not in texts(root)
    assert rects(root)[0].find(f"{SVG}title").text == "2024-03-01: 1 votes"


def test_two_series_get_a_legend_and_one_column_each_per_label():
    root = parsed(column_chart(["d1", "d2", "d3"], ("reads", [5, 6, 7]), ("votes", [1, 0, 2]), title="t"))

    assert len(rects(root)) == 3 * 2 + 2  # the columns and the legend's two swatches
    assert {"reads", "votes"} <= set(texts(root))


@pytest.mark.parametrize("top, whole, expected", [
    (0, True, [0, 1]),
    (3, True, [0, 1, 2, 3]),
    (7, True, [0, 2, 4, 6, 8]),
    (1234, True, [0, 500, 1000, 1500]),
    (4.17, False, [0, 1, 2, 3, 4, 5]),
    (1.5, False, [0, 0.5, 1, 1.5]),
    (0.7, False, [0, 0.2, 0.4, 0.6, 0.8]),
])
def test_ticks_start_at_zero_in_round_steps_whole_for_counts_and_reach_the_top(top, whole, expected):
    assert ticks(top, whole=whole) == pytest.approx(expected)
