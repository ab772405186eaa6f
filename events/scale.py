"""Rating scales: `1-5` (whole stars), `0.5-5/0.5` (half stars), any `LOW-HIGH[/STEP]`.

A scale turns the decimal string on the wire into the float the database sums.
Ratings are checked with `Decimal`, so `4.3` is refused on a whole-star scale
however floats would round it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from .errors import ConfigError, InvalidEvent

_SPEC = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*-\s*(\d+(?:\.\d+)?)\s*(?:/\s*(\d+(?:\.\d+)?))?\s*$")
_RATING = re.compile(r"^\d{1,6}(?:\.\d{1,6})?$")
# Valid rating strings seen so far; bounded so hostile input cannot grow it.
_CACHE_LIMIT = 256


@dataclass(frozen=True)
class RatingScale:
    """The ratings a vote may carry: LOW to HIGH inclusive in steps of STEP."""

    low: Decimal
    high: Decimal
    step: Decimal
    _known: dict[str, float] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def parse(cls, spec: str) -> RatingScale:
        """Read a scale such as `1-5` or `0.5-5/0.5`; raise ConfigError otherwise."""
        match = _SPEC.match(spec or "")
        if not match:
            raise ConfigError(
                f"rating scale {spec!r} is not of the form LOW-HIGH or LOW-HIGH/STEP (e.g. '1-5', '0.5-5/0.5')"
            )
        low, high, step = (Decimal(g) if g else None for g in match.groups())
        # Not `step or 1`: a step of 0 must be refused below, not taken for 1.
        step = Decimal(1) if step is None else step
        if step <= 0 or high <= low or (high - low) % step != 0:
            raise ConfigError(
                f"rating scale {spec!r} must have LOW < HIGH and a positive STEP that divides HIGH-LOW"
            )
        if (high - low) / step > 1000:
            raise ConfigError(f"rating scale {spec!r} has more than 1000 steps")
        return cls(low, high, step)

    def __str__(self) -> str:
        text = f"{_plain(self.low)}-{_plain(self.high)}"
        return text if self.step == 1 else f"{text}/{_plain(self.step)}"

    def values(self) -> list[float]:
        """Every rating on the scale, lowest first (the buckets of a histogram)."""
        count = int((self.high - self.low) / self.step) + 1
        return [float(self.low + i * self.step) for i in range(count)]

    def check(self, rating: object) -> float:
        """Return the rating as a float if it is on the scale; raise InvalidEvent quoting it otherwise."""
        text = rating if isinstance(rating, str) else _to_text(rating)
        known = self._known.get(text)
        if known is not None:
            return known
        if not _RATING.match(text):
            raise InvalidEvent(f"rating {text!r} is not a decimal number; accepted: {self.describe()}")
        try:
            value = Decimal(text)
        except InvalidOperation:  # pragma: no cover - the regex admits only decimals
            raise InvalidEvent(f"rating {text!r} is not a decimal number; accepted: {self.describe()}") from None
        if not (self.low <= value <= self.high) or (value - self.low) % self.step != 0:
            raise InvalidEvent(f"rating {text!r} is not on the scale {self}; accepted: {self.describe()}")
        result = float(value)
        if len(self._known) < _CACHE_LIMIT:
            self._known[text] = result
        return result

    def describe(self) -> str:
        """The accepted ratings in words, for error messages."""
        values = self.values()
        if len(values) <= 10:
            return ", ".join(_plain(Decimal(str(v))) for v in values)
        return f"{_plain(self.low)} to {_plain(self.high)} in steps of {_plain(self.step)}"


def _to_text(rating: object) -> str:
    if isinstance(rating, bool):
        return str(rating)
    if isinstance(rating, int):
        return str(rating)
    if isinstance(rating, float):
        # repr is the shortest text that reads back as the same float: 4.0000001 must not round to '4.000000'.
        return repr(rating)
    if isinstance(rating, Decimal):
        return format(rating, "f")
    if isinstance(rating, bytes):
        return rating.decode("utf-8", "backslashreplace")
    return str(rating)


def _plain(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text


WHOLE_STARS = RatingScale.parse("1-5")
