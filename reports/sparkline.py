"""Sparklines, pure: a daily series as one line of block characters for the terminal.

A long series is folded into at most `width` columns by summing consecutive days,
so a column is never a sample that could miss a spike. Zero is the lowest block;
any non-zero value is at least one step above it, so a single read shows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

BLOCKS = "▁▂▃▄▅▆▇█"
DEFAULT_WIDTH = 60


def fold(values: Sequence[int], width: int = DEFAULT_WIDTH) -> list[int]:
    """`values` summed into at most `width` consecutive groups of (nearly) equal length."""
    if len(values) <= width:
        return list(values)
    groups = []
    for i in range(width):
        start, stop = len(values) * i // width, len(values) * (i + 1) // width
        groups.append(sum(values[start:stop]))
    return groups


def sparkline(values: Sequence[int], width: int = DEFAULT_WIDTH) -> str:
    """One block character per column: 0 → ▁, the largest column → █, others in proportion."""
    columns = fold(values, width)
    top = max(columns, default=0)
    if top <= 0:
        return BLOCKS[0] * len(columns)
    steps = len(BLOCKS) - 1
    return "".join(BLOCKS[0] if v <= 0 else BLOCKS[max(1, math.ceil(v * steps / top))] for v in columns)
