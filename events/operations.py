"""Operator actions as stream entries: how `readrate moderate` puts a reset, an unvote or an undo in order.

An action on an article's counters travels through the article's shard stream like
its reads and votes, so the drain applies it exactly once, after every event before
it and before every event after it. The entry names the `operations` row holding the
details (who, why), and repeats what the archive keeps of it:

    k=op  o=OPERATION ID  x=reset|unvote|undo  t=EPOCH MS  [a=ARTICLE]  [v=VOTER]

Only readrate's CLI writes these; a worker refuses one whose id and action do not
match a row of the operations table (a dead letter, as for any bad entry).
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InvalidEvent

KIND_OPERATION = "op"
ACTIONS = ("reset", "unvote", "undo")


@dataclass(frozen=True)
class OperationEntry:
    """An operator action as it sits in a stream: which operation, what, on which article or voter, when."""

    op_id: int
    action: str
    at_ms: int
    article_id: str | None = None
    voter: str | None = None

    def fields(self) -> dict[str, str]:
        fields = {"k": KIND_OPERATION, "o": str(self.op_id), "x": self.action, "t": str(self.at_ms)}
        if self.article_id is not None:
            fields["a"] = self.article_id
        if self.voter is not None:
            fields["v"] = self.voter
        return fields


def is_operation(fields: list[bytes] | dict[bytes, bytes]) -> bool:
    """True for an entry whose kind is `op` (checked only for entries the event decoder refused)."""
    if type(fields) is list:
        return any(fields[i] == b"k" and fields[i + 1] == b"op" for i in range(0, len(fields) - 1, 2))
    return fields.get(b"k") == b"op"


def parse_operation(fields: list[bytes] | dict[bytes, bytes]) -> OperationEntry:
    """The operation entry in `fields`; InvalidEvent with the reason if it is malformed."""
    if type(fields) is list:
        fields = dict(zip(fields[::2], fields[1::2]))
    unknown = set(fields) - {b"k", b"o", b"x", b"t", b"a", b"v"}
    if unknown:
        raise InvalidEvent(f"unknown field {sorted(unknown)[0].decode(errors='replace')!r} in an operation; "
                           "accepted: k, o, x, t, a, v")
    try:
        op_id, action, at = int(fields[b"o"]), fields[b"x"].decode(), int(fields[b"t"])
        article = fields[b"a"].decode() if b"a" in fields else None
        voter = fields[b"v"].decode() if b"v" in fields else None
    except (KeyError, ValueError, UnicodeDecodeError):
        raise InvalidEvent("an operation needs o (an operation id), x (the action) and t (epoch ms)") from None
    if action not in ACTIONS:
        raise InvalidEvent(f"operation action {action!r} is unknown; accepted: {', '.join(ACTIONS)}")
    return OperationEntry(op_id, action, at, article, voter)
