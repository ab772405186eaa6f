"""What every scenario shares: rows with targets, percentiles, and the Markdown they render to.

A scenario returns an `Outcome`: table rows (one figure for readrate, one for its
baseline, measured in the same run) and the raw measurements behind them. The
ratio in a row is always readrate ÷ baseline, whatever the unit, so a latency
ratio of 1.2× means readrate is 20% slower and a throughput ratio of 300× means
it is 300 times faster; the target column says which way is good.
"""

from __future__ import annotations

import gc
import math
import operator
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, "<=": operator.le, "<": operator.lt, ">": operator.gt,
}
_SIGNS = {">=": "≥", "<=": "≤", "<": "<", ">": ">"}


@dataclass(frozen=True)
class Check:
    """One target: the row's readrate figure or its ratio compared with a bound."""

    subject: str  # "readrate" or "ratio"
    op: str
    bound: float
    text: str = ""

    def passes(self, row: Row) -> bool | None:
        value = row.readrate if self.subject == "readrate" else row.ratio
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return None
        return _OPS[self.op](value, self.bound)

    def describe(self, unit: str) -> str:
        if self.text:
            return self.text
        if self.subject == "ratio":
            return f"{_SIGNS[self.op]} {number(self.bound)}× baseline"
        return f"{_SIGNS[self.op]} {figure(self.bound, unit)}"


def at_least(bound: float, text: str = "") -> Check:
    return Check("readrate", ">=", bound, text)


def below(bound: float, text: str = "") -> Check:
    return Check("readrate", "<", bound, text)


def ratio_at_least(bound: float, text: str = "") -> Check:
    return Check("ratio", ">=", bound, text)


def ratio_at_most(bound: float, text: str = "") -> Check:
    return Check("ratio", "<=", bound, text)


@dataclass
class Row:
    """One line of the results table."""

    scenario: str
    readrate: float | None
    baseline: float | None
    unit: str
    baseline_label: str = ""
    checks: tuple[Check, ...] = ()
    note: str = ""
    # Set when the run's own check failed (e.g. the counters did not match the events): never "met".
    invalid: bool = False

    @property
    def ratio(self) -> float | None:
        if self.readrate is None or self.baseline is None or self.baseline == 0:
            return None
        return self.readrate / self.baseline

    @property
    def met(self) -> bool | None:
        """True if every target is met, False if any is not, None if there is no target or no figure."""
        if self.invalid:
            return False
        if not self.checks:
            return None
        results = [check.passes(self) for check in self.checks]
        if any(r is False for r in results):
            return False
        return None if any(r is None for r in results) else True

    @property
    def verdict(self) -> str:
        if self.invalid:
            return "**not met** (check failed)"
        if not self.checks:
            return "—"
        met = self.met
        return "n/a" if met is None else ("met" if met else "**not met**")

    def as_dict(self) -> dict:
        return {
            "scenario": self.scenario, "readrate": self.readrate, "baseline": self.baseline,
            "unit": self.unit, "baseline_label": self.baseline_label, "ratio": self.ratio,
            "target": "; ".join(c.describe(self.unit) for c in self.checks), "met": self.met,
            "note": self.note,
            "invalid": self.invalid,
        }


@dataclass
class Outcome:
    """What one scenario measured: table rows and the raw measurements behind them."""

    rows: list[Row] = field(default_factory=list)
    raw: dict = field(default_factory=dict)
    method: str = ""


def skipped(scenario: str, reason: str, unit: str = "", checks: Sequence[Check] = ()) -> Row:
    """A row for a figure that could not be measured in this run (and says why)."""
    return Row(scenario, None, None, unit, checks=tuple(checks), note=f"not measured: {reason}")


@contextmanager
def quiet_heap() -> Iterator[None]:
    """Time a block as if in a fresh process: what this process already holds (tallies, event lists) is moved
    out of the garbage collector's reach, so collections during the block cost what the block allocates."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


# -- statistics --------------------------------------------------------------------------

def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100), linear between the closest ranks; `values` need not be sorted."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values: Sequence[float], digits: int = 1) -> dict:
    """Count, mean and the usual percentiles of `values`, rounded, for the raw JSON."""
    if not values:
        return {"count": 0}
    ordered = sorted(values)
    out = {"count": len(ordered), "mean": round(sum(ordered) / len(ordered), digits),
           "min": round(ordered[0], digits)}
    for p in (50, 90, 99, 99.9):
        out[f"p{p:g}"] = round(percentile(ordered, p), digits)
    out["max"] = round(ordered[-1], digits)
    return out


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else math.nan


# -- rendering ------------------------------------------------------------------------------------

def number(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    magnitude = abs(value)
    if float(value).is_integer():
        return f"{int(value):,}"
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def figure(value: float | None, unit: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if unit == "ev/s":
        return f"{value:,.0f} ev/s"
    return f"{number(value)} {unit}".rstrip()


def table(rows: Sequence[Row]) -> str:
    """The results table in Markdown."""
    lines = [
        "| scenario | readrate | baseline | ratio | target | met? |",
        "|---|---:|---:|---:|---|---|",
    ]
    for row in rows:
        baseline = figure(row.baseline, row.unit)
        if row.baseline_label and row.baseline is not None:
            baseline = f"{baseline} ({row.baseline_label})"
        ratio = f"{number(row.ratio)}×" if row.ratio is not None else "—"
        readrate = figure(row.readrate, row.unit)
        if row.note:
            readrate = f"{readrate} ¹" if row.readrate is not None else row.note
        target = "; ".join(c.describe(row.unit) for c in row.checks) or "—"
        lines.append(f"| {row.scenario} | {readrate} | {baseline} | {ratio} | {target} | {row.verdict} |")
    notes = [f"- {row.scenario}: {row.note}" for row in rows if row.note and row.readrate is not None]
    if notes:
        lines += ["", "¹ Notes:", *notes]
    return "\n".join(lines)
