"""Synthetic but realistic traffic for the demo and the benchmarks (pure: a seeded generator).

Articles are Zipf-popular (a few get most reads), each has a hidden quality its
star ratings scatter around, and some voters come back later and change their
vote. `Expected` tallies what a correct pipeline must end up with.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from .clock import MS_PER_DAY
from .model import Event, Read, Vote

_ADJECTIVES = ("Quiet", "Hidden", "Bold", "Slow", "Bright", "Forgotten", "Modern", "Local", "Secret", "Early",
               "Strange", "Simple", "Lost", "Open", "Final", "Wild")
_NOUNS = ("Economics", "Gardens", "Rivers", "Kitchens", "Elections", "Libraries", "Markets", "Trains", "Coasts",
          "Schools", "Bridges", "Harvests", "Museums", "Storms", "Streets", "Orchestras")
_TOPICS = ("of the City", "in Winter", "after the Flood", "on a Budget", "for Beginners", "Explained",
           "Revisited", "at Night", "Under Pressure", "in Ten Charts")


def zipf_weights(n: int, s: float) -> list[float]:
    """Cumulative Zipf weights for ranks 1..n with exponent `s`."""
    return list(itertools.accumulate(1.0 / (rank ** s) for rank in range(1, n + 1)))


def article_id(i: int) -> str:
    return f"article-{i:05d}"


def title(rng: random.Random) -> str:
    return f"{rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)} {rng.choice(_TOPICS)}"


@dataclass
class Expected:
    """What the database must hold after the traffic is counted."""

    reads: Counter = field(default_factory=Counter)
    # (article, voter) -> (at_ms, order, rating): the latest vote wins, the later one on a tie.
    votes: dict = field(default_factory=dict)

    def add(self, event: Event, order: int) -> None:
        if isinstance(event, Read):
            self.reads[event.article_id] += 1
            return
        key = (event.article_id, event.voter)
        held = self.votes.get(key)
        if held is None or (event.at_ms, order) >= held[:2]:
            self.votes[key] = (event.at_ms, order, event.rating)

    def vote_totals(self) -> dict[str, tuple[int, float]]:
        totals: dict[str, list] = {}
        for (article, _voter), (_at, _order, rating) in self.votes.items():
            entry = totals.setdefault(article, [0, 0.0])
            entry[0] += 1
            entry[1] += rating
        return {a: (n, s) for a, (n, s) in totals.items()}


def traffic(
    *, events: int, articles: int, days: float, now_ms: int, seed: int = 42, vote_share: float = 0.08,
    zipf_s: float = 1.1, voters: int | None = None, revote_share: float = 0.15,
) -> Iterator[Event]:
    """`events` reads and votes over the `days` before `now_ms`, in no particular time order."""
    rng = random.Random(seed)
    cumulative = zipf_weights(articles, zipf_s)
    total = cumulative[-1]
    quality = [min(4.8, max(1.5, rng.gauss(3.6, 0.7))) for _ in range(articles)]
    voter_pool = voters or max(50, events // 20)
    span_ms = int(days * MS_PER_DAY)
    cast: list[tuple[int, str, int]] = []  # (article index, voter, at_ms) of earlier votes, for re-votes
    for _ in range(events):
        at_ms = now_ms - rng.randrange(span_ms)
        if rng.random() >= vote_share:
            index = bisect.bisect_left(cumulative, rng.random() * total)
            yield Read(article_id(index), at_ms, f"visitor-{rng.randrange(voter_pool * 5)}")
            continue
        if cast and rng.random() < revote_share:
            index, voter, before_ms = cast[rng.randrange(len(cast))]
            at_ms = min(now_ms, before_ms + rng.randrange(MS_PER_DAY))
        else:
            index = bisect.bisect_left(cumulative, rng.random() * total)
            voter = f"voter-{rng.randrange(voter_pool)}"
            cast.append((index, voter, at_ms))
        stars = min(5, max(1, round(rng.gauss(quality[index], 0.9))))
        yield Vote(article_id(index), at_ms, voter, float(stars))
