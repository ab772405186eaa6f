"""Wire format v2: how an event sits in a Redis stream (a contract; see DESIGN.md).

Any producer — this package, a PHP page, `redis-cli` — writes the same thing:
an XADD to `{PREFIX:SHARD}:events` with string fields `k`, `a`, `t`, `v`, `r`,
where `shard = crc32(utf-8 article id) mod shards` and `shards` is the installation
record's (`HGET {PREFIX}:installation shards`). Every key of one shard carries the
same hash tag, `{PREFIX:SHARD}`, so on a Redis Cluster a shard's keys share one slot
and its scripts and transactions run on one node. Pure functions only.
"""

from __future__ import annotations

import json
import re
import zlib
from dataclasses import dataclass

from .errors import InvalidEvent
from .model import Event, Read, Vote
from .scale import RatingScale
from .validator import MAX_FUTURE_MS, check_kind, check_no_rating, check_person, check_time

KIND_READ = "read"
KIND_VOTE = "vote"
FIELDS = {"k", "a", "t", "v", "r"}
WIRE_VERSION = 2
DOORBELL_TTL_MS = 30_000
# 128 characters of up to 4 UTF-8 bytes each, and some slack: anything longer is refused unread.
MAX_FIELD_BYTES = 576
# Bytes kept of each field when a rejected entry is stored; a 1 MB field is not copied whole.
PAYLOAD_FIELD_LIMIT = 1024


def shard_for(article_id: str, shards: int) -> int:
    """The shard an article's events go to: unsigned crc32 of its UTF-8 bytes, mod `shards`."""
    return zlib.crc32(article_id.encode("utf-8")) % shards


@dataclass(frozen=True)
class Keys:
    """Names of the Redis keys and the RQ queue one readrate installation uses.

    `shards` is where producers write; `max_shards` (the most ever used, at least
    `shards`) is what workers drain, so events written before a `config set shards`
    are still counted.
    """

    prefix: str = "readrate"
    shards: int = 4
    max_shards: int = 0

    def tag(self, shard: int) -> str:
        """The hash tag every key of `shard` starts with: `{PREFIX:SHARD}`."""
        return f"{{{self.prefix}:{shard}}}"

    def stream(self, shard: int) -> str:
        return f"{{{self.prefix}:{shard}}}:events"

    def doorbell(self, shard: int) -> str:
        return f"{{{self.prefix}:{shard}}}:doorbell"

    def lease(self, shard: int) -> str:
        return f"{{{self.prefix}:{shard}}}:lease"

    def import_progress(self, shard: int, import_id: str) -> str:
        """The last line of import `import_id` that shard `shard` took (kept beside its stream)."""
        return f"{{{self.prefix}:{shard}}}:import:{import_id}"

    @property
    def installation(self) -> str:
        """The installation record's hash, `{PREFIX}:installation`."""
        return f"{{{self.prefix}}}:installation"

    @property
    def drained(self) -> range:
        """Every shard a worker drains: all below `max_shards`."""
        return range(max(self.shards, self.max_shards))

    @property
    def queue(self) -> str:
        """The RQ queue drain jobs go to; named after the prefix so installations never share one."""
        return self.prefix

    def shard_of(self, article_id: str) -> int:
        return shard_for(article_id, self.shards)


def encode(event: Event) -> dict[str, str]:
    """The stream entry fields for an event."""
    if isinstance(event, Vote):
        return {"k": KIND_VOTE, "a": event.article_id, "t": str(event.at_ms), "v": event.voter,
                "r": rating_text(event.rating)}
    fields = {"k": KIND_READ, "a": event.article_id, "t": str(event.at_ms)}
    if event.visitor is not None:
        fields["v"] = event.visitor
    return fields


def encode_flat(event: Event) -> tuple[str, ...]:
    """The same fields as `encode`, flat (`k, read, a, …`), as XADD takes them."""
    if isinstance(event, Vote):
        return ("k", KIND_VOTE, "a", event.article_id, "t", str(event.at_ms), "v", event.voter,
                "r", rating_text(event.rating))
    if event.visitor is None:
        return ("k", KIND_READ, "a", event.article_id, "t", str(event.at_ms))
    return ("k", KIND_READ, "a", event.article_id, "t", str(event.at_ms), "v", event.visitor)


def rating_text(rating: float) -> str:
    """A rating as field `r` carries it: `4`, `4.5` (never `4.0`)."""
    return str(int(rating)) if rating == int(rating) else repr(rating)


def _field_text(fields: dict[bytes, bytes], name: bytes, *, required: bool = True) -> str | None:
    raw = fields.get(name)
    if raw is None:
        if required:
            raise InvalidEvent(f"field {name.decode()!r} is missing")
        return None
    if len(raw) > MAX_FIELD_BYTES:
        raise InvalidEvent(f"field {name.decode()!r} is {len(raw)} bytes; no field may exceed {MAX_FIELD_BYTES}")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidEvent(f"field {name.decode()!r} is not valid UTF-8") from None


def decode(fields: dict[bytes, bytes], *, scale: RatingScale, now_ms: int) -> Event:
    """Turn raw stream entry fields into a checked event; raise InvalidEvent with the reason otherwise.

    The transport checks (field names, sizes, UTF-8, digits) are here; the event rules
    are validator.py's, the same ones every producer applied before sending.
    """
    unknown = [name for name in fields if name.decode("utf-8", "replace") not in FIELDS]
    if unknown:
        names = ", ".join(repr(n.decode("utf-8", "backslashreplace")[:20]) for n in unknown[:3])
        raise InvalidEvent(f"unknown field {names}; accepted: k, a, t, v, r")
    kind = _field_text(fields, b"k")
    article_id = _field_text(fields, b"a")
    at_text = _field_text(fields, b"t")
    if not at_text.isascii() or not at_text.isdigit():
        raise InvalidEvent(f"event time {at_text[:40]!r} is not a non-negative integer of epoch milliseconds")
    at_ms = check_time(int(at_text), now_ms)
    if check_kind(kind) == KIND_READ:
        check_no_rating(fields.get(b"r"))
        return Read(article_id, at_ms, _field_text(fields, b"v", required=False))
    voter = check_person(_field_text(fields, b"v", required=False), "voter", required=True)
    return Vote(article_id, at_ms, voter, scale.check(_field_text(fields, b"r")))


_ALLOWED = frozenset(name.encode() for name in FIELDS)
# Printable ASCII ids need no decoding or character checks: they hold no control, bidi-override or
# undecodable character, so the validator would take them as they are.
_PLAIN_VISITOR = re.compile(rb"[\x20-\x7e]{0,128}")
_PLAIN_VOTER = re.compile(rb"[\x20-\x7e]{1,128}")
# Article ids and ratings a Decoder remembers as valid before it starts over.
_MEMORY = 100_000


def as_dict(fields: list[bytes] | dict[bytes, bytes]) -> dict[bytes, bytes]:
    """A raw XRANGE entry's flat `[name, value, …]` list as a dict (a dict is returned as is)."""
    if type(fields) is not list:
        return fields
    pairs = iter(fields)
    return dict(zip(pairs, pairs))


class Decoder:
    """`decode()` for workers: the same rules, returning plain tuples, and fast on the common case.

    It remembers article ids and rating strings it has already found valid (their
    validity depends on nothing else), and takes printable-ASCII visitors and voters
    as they are. Anything else goes through `decode()`, which gives the exact reason.
    """

    def __init__(self, scale: RatingScale) -> None:
        self.scale = scale
        self._articles: dict[bytes, str] = {}
        self._ratings: dict[bytes, float] = {}

    def __call__(self, fields: dict[bytes, bytes], now_ms: int) -> tuple[str, int, str | None, float | None]:
        """`(article_id, at_ms, voter, rating)`; voter and rating are None for a read. Raises InvalidEvent."""
        if fields.keys() <= _ALLOWED:
            at = fields.get(b"t")
            article = self._articles.get(fields.get(b"a"))
            if article is not None and at is not None and at.isdigit() and len(at) <= 16:
                at_ms = int(at)
                if at_ms <= now_ms + MAX_FUTURE_MS:
                    kind = fields.get(b"k")
                    person = fields.get(b"v")
                    if kind == b"read":
                        if b"r" not in fields and (person is None or _PLAIN_VISITOR.fullmatch(person)):
                            return article, at_ms, None, None
                    elif kind == b"vote" and person is not None and _PLAIN_VOTER.fullmatch(person):
                        rating = self._ratings.get(fields.get(b"r"))
                        if rating is not None:
                            return article, at_ms, person.decode("ascii"), rating
        return self._checked(fields, now_ms)

    def entry(self, fields: list[bytes] | dict[bytes, bytes], now_ms: int) -> tuple[str, int, str | None, float | None]:
        """Like calling the decoder, for a raw XRANGE entry's flat `[name, value, …]` list (or a dict).

        The field order `Emitter` writes (k, a, t[, v][, r]) is checked in place, without
        building a dict; any other order or anything unusual goes through the dict path.
        """
        if type(fields) is not list:
            return self(fields, now_ms)
        size = len(fields)
        if size >= 6 and fields[0] == b"k" and fields[2] == b"a" and fields[4] == b"t":
            article = self._articles.get(fields[3])
            at = fields[5]
            if article is not None and at.isdigit() and len(at) <= 16:
                at_ms = int(at)
                if at_ms <= now_ms + MAX_FUTURE_MS:
                    kind = fields[1]
                    if kind == b"read":
                        if size == 6 or (size == 8 and fields[6] == b"v" and _PLAIN_VISITOR.fullmatch(fields[7])):
                            return article, at_ms, None, None
                    elif kind == b"vote" and size == 10 and fields[6] == b"v" and fields[8] == b"r":
                        rating = self._ratings.get(fields[9])
                        if rating is not None and _PLAIN_VOTER.fullmatch(fields[7]):
                            return article, at_ms, fields[7].decode("ascii"), rating
        return self(as_dict(fields), now_ms)

    def _checked(self, fields: dict[bytes, bytes], now_ms: int) -> tuple[str, int, str | None, float | None]:
        event = decode(fields, scale=self.scale, now_ms=now_ms)
        if len(self._articles) >= _MEMORY:
            self._articles.clear()
        self._articles[fields[b"a"]] = event.article_id
        if isinstance(event, Read):
            return event.article_id, event.at_ms, None, None
        if len(self._ratings) < _MEMORY:
            self._ratings[fields[b"r"]] = event.rating
        return event.article_id, event.at_ms, event.voter, event.rating


def payload_text(fields: dict[bytes, bytes]) -> str:
    """The raw entry as JSON text for the dead-letter table.

    Undecodable bytes survive as surrogate escapes (`json` writes them as \\udcXX),
    so `payload_fields()` gives back the exact bytes for a replay. Fields longer than
    PAYLOAD_FIELD_LIMIT bytes are cut, and the cut is recorded under `_truncated`.
    """
    doc: dict[str, object] = {}
    cut: list[str] = []
    for name, value in fields.items():
        key = name.decode("utf-8", "surrogateescape")
        if len(value) > PAYLOAD_FIELD_LIMIT:
            cut.append(key)
            value = value[:PAYLOAD_FIELD_LIMIT]
        doc[key] = value.decode("utf-8", "surrogateescape")
    if cut:
        doc["_truncated"] = cut
    return json.dumps(doc, ensure_ascii=True, sort_keys=True)


def payload_fields(payload: str) -> dict[bytes, bytes]:
    """The stream entry fields stored by `payload_text` (minus the `_truncated` marker)."""
    doc = json.loads(payload)
    # The marker is a list; a producer's own `_truncated` field is text and stays (a replay refuses it again).
    if isinstance(doc.get("_truncated"), list):
        del doc["_truncated"]
    return {k.encode("utf-8", "surrogateescape"): str(v).encode("utf-8", "surrogateescape") for k, v in doc.items()}
