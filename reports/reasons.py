"""Dead-letter reasons grouped by the rule they broke, pure: the value a reason quotes is taken out.

"rating '9' is not on the scale 1-5; …" and "rating '7' is not on the scale 1-5; …"
are one rule; so are article ids of 129 and of 300 characters.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

# A repr()-quoted value ('9', "it's", '\x00…'), then the numbers that are values, not rules.
_QUOTED = re.compile(r"""'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*\"""")
_QUOTED_LIST = re.compile(r"'…'(?:, '…')+")
_VALUE_NUMBERS = [
    re.compile(r"(?<=event time )-?\d+"),
    re.compile(r"\b\d+(?= (?:s in the future|characters|bytes)\b)"),
]


def reason_rule(reason: str) -> str:
    """The rule a dead letter broke: its reason with the offending value taken out."""
    rule = _QUOTED.sub("'…'", reason)
    rule = _QUOTED_LIST.sub("'…'", rule)
    for pattern in _VALUE_NUMBERS:
        rule = pattern.sub("N", rule)
    return rule


def group_reasons(counts: Iterable[tuple[str, int]]) -> list[tuple[str, int]]:
    """(rule, count) for (reason, count) pairs, most frequent rule first, then by rule."""
    rules: Counter[str] = Counter()
    for reason, count in counts:
        rules[reason_rule(reason)] += count
    return sorted(rules.items(), key=lambda item: (-item[1], item[0]))
