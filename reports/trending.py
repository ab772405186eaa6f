"""What is rising, pure: the trending formula and the recent/before split of a window.

The window `[since, until)` (reads, so whole hours; `until` defaults to now and
`since` to 7 days before `until`) is cut at `until - recent` (default 24 h):

    expected = before_reads × recent_hours / before_hours   (the recent period at the earlier pace)
    score    = (recent_reads + k) / (expected + k)          (k = --prior-reads, default 10)

A score of 2 means "read twice as fast as before", 1 "as before", below 1
"falling". `k` works like the prior votes of the Bayesian average: it is added
to both sides, so a handful of reads cannot make an article trend (3 reads of a
new article score 1.3, not infinity) while large counts keep their plain ratio.
Only articles read in the recent period are listed. Ties break by recent reads,
then article id.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from .ranking import Scored, Tally
from .windows import HOUR, Window, earlier, floor_hour, span_text

DEFAULT_RECENT = timedelta(hours=24)
DEFAULT_SPAN = timedelta(days=7)
DEFAULT_PRIOR_READS = 10.0


@dataclass(frozen=True)
class TrendWindows:
    """The two periods a trend compares (both in whole hours)."""

    recent: Window
    before: Window

    @property
    def recent_hours(self) -> float:
        return (self.recent.until - self.recent.since) / HOUR

    @property
    def before_hours(self) -> float:
        return (self.before.until - self.before.since) / HOUR


def trend_windows(window: Window, recent: timedelta, now: datetime) -> TrendWindows:
    """Cut `window` into its recent part and what came before; ValueError if that leaves nothing before."""
    if recent <= timedelta(0) or recent % HOUR:
        raise ValueError(f"--recent {span_text(recent)} is not a whole number of hours; accepted: 1h or more")
    until = floor_hour(window.until if window.until is not None else now)
    since = floor_hour(window.since) if window.since is not None else earlier(until, DEFAULT_SPAN)
    # Compared before subtracting: a --recent longer than the centuries before `until` must not overflow.
    if recent >= until - since:
        raise ValueError(f"--recent {span_text(recent)} leaves nothing before it in a window of "
                         f"{span_text(until - since)}; accepted: a recent period shorter than the window")
    cut = until - recent
    return TrendWindows(recent=Window(cut, until), before=Window(since, cut))


def expected_reads(before_reads: int, before_hours: float, recent_hours: float) -> float:
    """The reads the recent period would have had at the pace of the period before it."""
    return before_reads * recent_hours / before_hours


def lift(recent_reads: int, expected: float, prior_reads: float) -> float:
    """`(recent + k) / (expected + k)`: how much faster than before an article is read, damped by `k`."""
    return (recent_reads + prior_reads) / (expected + prior_reads)


def trend_rows(recent: Mapping[str, int], before: Mapping[str, int], windows: TrendWindows, *,
               prior_reads: float) -> list[Scored]:
    """Every article read in the recent period, scored, with its reads over the whole window (its votes are
    looked up later, for the articles that make the list)."""
    scored = []
    for article_id, recent_reads in recent.items():
        if recent_reads <= 0:
            continue
        earlier_reads = before.get(article_id, 0)
        expected = expected_reads(earlier_reads, windows.before_hours, windows.recent_hours)
        scored.append(Scored(Tally(article_id, reads=recent_reads + earlier_reads),
                             lift(recent_reads, expected, prior_reads),
                             recent_reads=recent_reads, expected_reads=expected))
    return scored
