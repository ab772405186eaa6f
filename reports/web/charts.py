"""Charts for the dashboard as inline SVG strings, pure: horizontal bars for a top list or a histogram,
columns for daily counts.

The page that holds them makes no request of its own, so each chart is drawn here, axes,
tick labels and all, from numbers to markup. Every text that reaches a chart (titles and
article ids come from whoever emitted events or imported titles) goes through `text()`;
every chart is an `<svg class="readrate-chart" role="img">` with an `aria-label` and a
`<title>`, and every bar or column has a `<title>` of its own that names its value.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Callable, Sequence

CHART_CLASS = "readrate-chart"
FONT_PX = 12
# What a character of the chart's sans-serif font takes on average; SVG cannot measure text, so labels are
# cut to the characters their column holds.
CHAR_PX = 6.6
COLORS = ("#4477aa", "#ee6677", "#228833", "#ccbb44", "#66ccee", "#aa3377")
AXIS_COLOR, GRID_COLOR, MUTED_COLOR = "#555", "#e3e3e3", "#666"
# C0/C1 controls and the bidirectional overrides and isolates, which could reorder what a label shows.
_UNSHOWABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")

Series = tuple[str, Sequence[float | None]]


def text(value: object) -> str:
    """`value` as HTML/SVG text or attribute: escaped, with controls and direction overrides taken out."""
    return html.escape(_UNSHOWABLE.sub("", str(value)), quote=True)


def number(value: float | None) -> str:
    """A count as `1,234`, a fraction as `4.17`, nothing as an en dash."""
    if value is None:
        return "–"
    if float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:,.2f}"


def short_number(value: float) -> str:
    """A tick label: `0`, `2.5`, `1.5k`, `2M`."""
    for size, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{unit}"
    return f"{value:.3g}"


def ticks(top: float, *, whole: bool, count: int = 5) -> list[float]:
    """Tick values from 0 in round steps (1, 2, 2.5 or 5 times a power of ten) up to at least `top`;
    whole steps only when the values are counts."""
    if not top > 0 or not math.isfinite(top):
        return [0.0, 1.0]
    raw = top / count
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in ((1, 2, 5, 10) if whole else (1, 2, 2.5, 5, 10)) if m * power >= raw)
    if whole:
        step = max(1.0, float(round(step)))
    return [i * step for i in range(math.ceil(top / step - 1e-9) + 1)]


def cut(label: str, chars: int) -> str:
    """`label` in at most `chars` characters, ending in … when it was longer."""
    return label if len(label) <= chars else label[:max(chars - 1, 1)] + "…"


def _values(values: Sequence[float | None]) -> list[float]:
    return [max(float(v), 0.0) if v is not None and math.isfinite(float(v)) else 0.0 for v in values]


def _whole(values: Sequence[float | None]) -> bool:
    return all(v is None or float(v).is_integer() for v in values)


def _svg(title: str, width: int, height: int, body: list[str]) -> str:
    shown = text(title)
    # The heading is drawn a size larger and bold, so its characters are wider than a label's.
    heading = text(cut(title, int(width / (CHAR_PX * 1.25))))
    return (f'<svg class="{CHART_CLASS}" xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{shown}" '
            f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            f'font-family="system-ui, sans-serif" font-size="{FONT_PX}">'
            f'<title>{shown}</title>'
            f'<text x="0" y="16" font-size="{FONT_PX + 2}" font-weight="600" fill="#222">{heading}</text>'
            + "".join(body) + "</svg>")


def _line(x1: float, y1: float, x2: float, y2: float, color: str = AXIS_COLOR) -> str:
    return f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{color}"/>'


def _label(x: float, y: float, shown: str, *, anchor: str = "start", fill: str = "#222") -> str:
    """A text already escaped (or markup: a <title> and its text) at (x, y)."""
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" fill="{fill}">{shown}</text>'


def _bar(x: float, y: float, width: float, height: float, color: str, about: str) -> str:
    return (f'<rect x="{x:.2f}" y="{y:.1f}" width="{width:.2f}" height="{height:.1f}" fill="{color}">'
            f"<title>{text(about)}</title></rect>")


def _empty(title: str, width: int, message: str) -> str:
    return _svg(title, width, 60, [f'<text x="0" y="44" fill="{MUTED_COLOR}">{text(message)}</text>'])


def bar_chart(labels: Sequence[str], values: Sequence[float | None], *, title: str, width: int = 640,
              label_px: int = 220, row_px: int = 24, color: str = COLORS[0],
              value_text: Callable[[float | None], str] = number, links: Sequence[str | None] | None = None,
              empty: str = "nothing to show") -> str:
    """Horizontal bars, one row per label, longest scale from 0 to the largest value, with an axis below.

    `links` (optional, one per label, already a safe relative URL) makes each label and bar a link.
    """
    if not labels:
        return _empty(title, width, empty)
    shown = _values(values)
    scale = ticks(max(shown), whole=_whole(values))
    top, right_px, axis_px = 30, 70, 30
    plot_px = max(width - label_px - right_px, 40)
    height = top + len(labels) * row_px + axis_px
    x = lambda v: label_px + plot_px * v / scale[-1]
    body = []
    bottom = top + len(labels) * row_px
    for t in scale:
        body.append(_line(x(t), top, x(t), bottom, GRID_COLOR)
                    + _label(x(t), bottom + 16, short_number(t), anchor="middle", fill=MUTED_COLOR))
    chars = int((label_px - 8) / CHAR_PX)
    for i, (label, value, raw) in enumerate(zip(labels, shown, values)):
        middle = top + i * row_px + row_px / 2 + 4
        row = (_label(label_px - 8, middle, f"<title>{text(label)}</title>{text(cut(str(label), chars))}",
                      anchor="end")
               + _bar(label_px, top + i * row_px + row_px * 0.15, x(value) - label_px, row_px * 0.7, color,
                      f"{label}: {value_text(raw)}")
               + _label(x(value) + 4, middle, text(value_text(raw))))
        link = links[i] if links is not None else None
        body.append(f'<a href="{text(link)}">{row}</a>' if link else row)
    body.append(_line(label_px, top, label_px, bottom))
    return _svg(title, width, height, body)


def column_chart(labels: Sequence[str], *series: Series, title: str, width: int = 640, height: int = 220,
                 value_text: Callable[[float | None], str] = number, max_labels: int = 10,
                 axis_labels: Sequence[str] | None = None, colors: Sequence[str] = COLORS,
                 empty: str = "nothing to show") -> str:
    """Vertical columns, one group per label (a day) and one column per series (name, values), with a
    y axis of round ticks, at most `max_labels` labels under the x axis (`axis_labels`, shorter ones, in
    place of `labels` there), and a legend for two or more series."""
    if not labels or not series:
        return _empty(title, width, empty)
    every = [v for _, values in series for v in values]
    scale = ticks(max(_values(every), default=0.0), whole=_whole(every))
    left, right, top, bottom = 52, 8, 34, 36
    plot_w, plot_h = max(width - left - right, 40), max(height - top - bottom, 40)
    base = top + plot_h
    y = lambda v: base - plot_h * v / scale[-1]
    body = []
    for t in scale:
        body.append(_line(left, y(t), left + plot_w, y(t), GRID_COLOR)
                    + _label(left - 6, y(t) + 4, short_number(t), anchor="end", fill=MUTED_COLOR))
    group = plot_w / len(labels)
    column = max(group * 0.8 / len(series), 0.5)
    stride = math.ceil(len(labels) / max(max_labels, 1))
    for i, label in enumerate(labels):
        x0 = left + i * group + group * 0.1
        for k, (name, values) in enumerate(series):
            raw = values[i] if i < len(values) else None
            value = _values([raw])[0]
            body.append(_bar(x0 + k * column, y(value), column, base - y(value), colors[k % len(colors)],
                             f"{label}: {value_text(raw)} {name}"))
        if i % stride == 0:
            middle = left + (i + 0.5) * group
            shown = cut(str((axis_labels or labels)[i]), int(group * stride / CHAR_PX))
            half = len(shown) * CHAR_PX / 2  # kept inside the chart: the last label must not be cut off
            inside = min(max(middle, half), width - half)
            body.append(_line(middle, base, middle, base + 4)
                        + _label(inside, base + 17, text(shown), anchor="middle", fill=MUTED_COLOR))
    body.append(_line(left, base, left + plot_w, base) + _line(left, top, left, base))
    if len(series) > 1:
        x = width - right
        for k, (name, _) in reversed(list(enumerate(series))):
            x -= len(str(name)) * CHAR_PX + 26
            body.append(f'<rect x="{x:.1f}" y="6" width="12" height="12" fill="{colors[k % len(colors)]}"/>'
                        + _label(x + 16, 16, text(name)))
    return _svg(title, width, height, body)
