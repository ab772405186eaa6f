"""One rule set: a page's Emitter, `readrate import` and the workers' decoders accept and refuse the same
events, with the same reason.

Every case goes down every path that can carry it — `Emitter.make_read`/`make_vote`,
the importer (a CSV line), `wire.decode`, and a `Decoder` cold and warm (its fast
path knows the article id and rating already) — and all must agree.
"""

from __future__ import annotations

import pytest

from readrate.events.emitter import Emitter
from readrate.events.errors import InvalidEvent
from readrate.events.importer import ImportSpec, parse_lines
from readrate.events.model import Read, Vote
from readrate.events.scale import RatingScale
from readrate.events.validator import BIDI_ACCEPTED, READ_WITH_RATING, VOTER_REQUIRED
from readrate.events.wire import Decoder, decode

NOW_MS = 1_767_225_600_000
T = 1_704_067_200_000
SCALE = RatingScale.parse("1-5")
FUTURE = str(NOW_MS + 300_001)


@pytest.fixture
def emitter(redis):
    return Emitter(redis, scale=SCALE, enqueue=False, clock_ms=lambda: NOW_MS)


def outcome(call):
    try:
        return call()
    except InvalidEvent as exc:
        return ("refused", str(exc))


def as_tuple(event):
    """What a Decoder returns for an event: (article, at_ms, voter, rating)."""
    if isinstance(event, Read):
        return event.article_id, event.at_ms, None, None
    return event.article_id, event.at_ms, event.voter, event.rating


def via_emitter(emitter, kind, article, at, person, rating):
    if kind == "read":
        return outcome(lambda: emitter.make_read(article, person, int(at)))
    return outcome(lambda: emitter.make_vote(article, rating, person, int(at)))


def via_import(emitter, kind, article, at, person, rating):
    line = f"kind,article,at,visitor,rating\n{kind},{article},{at},{person or ''},{rating or ''}\n"
    [(_, result)] = parse_lines(line.splitlines(keepends=True), "csv", ImportSpec(), emitter.make_read,
                                emitter.make_vote)
    return ("refused", str(result)) if isinstance(result, InvalidEvent) else result


def wire_fields(kind, article, at, person, rating) -> dict[bytes, bytes]:
    fields = {"k": kind, "a": article, "t": at}
    if person is not None:
        fields["v"] = person
    if rating is not None:
        fields["r"] = rating
    return {k.encode(): v.encode() for k, v in fields.items()}


CASES = [
    # (kind, article, at, person, rating), the reason (None: accepted)
    pytest.param(("read", "post-4", str(T), "v9", None), None, id="read"),
    pytest.param(("vote", "post-4", str(T), "u1", "4"), None, id="vote"),
    pytest.param(("read", "مقالة-4", str(T), "זאב", None), None, id="right-to-left-text"),
    pytest.param(("read", "post-4", str(T), "v9", "3"), READ_WITH_RATING, id="read-with-rating"),
    pytest.param(("vote", "post-4", str(T), None, "4"), VOTER_REQUIRED, id="vote-without-voter"),
    pytest.param(("vote", "post-4", str(T), "u1", "9"),
                 "rating '9' is not on the scale 1-5; accepted: 1, 2, 3, 4, 5", id="rating-off-the-scale"),
    pytest.param(("vote", "post-4", str(T), "u1", "NaN"),
                 "rating 'NaN' is not a decimal number; accepted: 1, 2, 3, 4, 5", id="rating-nan"),
    pytest.param(("click", "post-4", str(T), None, None), "kind 'click' is unknown; accepted: read, vote",
                 id="unknown-kind"),
    pytest.param(("read", "x" * 129, str(T), None, None),
                 f"article id '{'x' * 40}…' is 129 characters; accepted: 1-128", id="129-characters"),
    pytest.param(("read", "news\x1btoday", str(T), None, None),
                 "article id 'news\\x1btoday' contains a control character or a byte that is not UTF-8",
                 id="escape-in-article-id"),
    pytest.param(("read", "\u202etsop", str(T), None, None),
                 f"article id '\\u202etsop' contains the bidi-override character '\\u202e'; {BIDI_ACCEPTED}",
                 id="bidi-override-in-article-id"),
    pytest.param(("read", "post\u2066-4", str(T), "v9", None),
                 f"article id 'post\\u2066-4' contains the bidi-override character '\\u2066'; "
                 f"{BIDI_ACCEPTED}",
                 id="bidi-isolate-in-article-id"),
    pytest.param(("read", "post-4", str(T), "v\u202d9", None),
                 f"visitor 'v\\u202d9' contains the bidi-override character '\\u202d'; {BIDI_ACCEPTED}",
                 id="bidi-in-visitor"),
    pytest.param(("vote", "post-4", str(T), "u\u20691", "4"),
                 f"voter 'u\\u20691' contains the bidi-override character '\\u2069'; {BIDI_ACCEPTED}",
                 id="bidi-in-voter"),
    pytest.param(("read", "post-4", FUTURE, None, None),
                 f"event time {FUTURE} is 300 s in the future; accepted: at most 300 s ahead", id="future"),
]


@pytest.mark.parametrize(("event", "reason"), CASES)
def test_every_path_accepts_or_refuses_an_event_alike_with_the_same_reason(emitter, event, reason):
    kind, article, at, person, rating = event
    fields = wire_fields(*event)
    warm = Decoder(SCALE)  # knows the article id and the rating: its fast path is tried first
    warm({b"k": b"vote", b"a": b"post-4", b"t": b"1", b"v": b"u", b"r": b"4"}, NOW_MS)

    decoded = outcome(lambda: decode(fields, scale=SCALE, now_ms=NOW_MS))
    flat = [part for pair in fields.items() for part in pair]
    outcomes = {
        "decode": decoded,
        "import": via_import(emitter, *event),
        "decoder": outcome(lambda: Decoder(SCALE)(fields, NOW_MS)),
        "warm decoder": outcome(lambda: warm(fields, NOW_MS)),
        "warm decoder, flat entry": outcome(lambda: warm.entry(flat, NOW_MS)),
    }
    if kind in ("read", "vote") and not (kind == "read" and rating is not None):
        outcomes["emitter"] = via_emitter(emitter, *event)

    if reason is None:
        event_value = Read(article, int(at), person) if kind == "read" else \
            Vote(article, int(at), person, 4.0)
        assert decoded == event_value
        assert {path: as_tuple(v) if isinstance(v, (Read, Vote)) else v for path, v in outcomes.items()} == \
            {path: as_tuple(event_value) for path in outcomes}
    else:
        assert outcomes == {path: ("refused", reason) for path in outcomes}


def test_a_warm_decoder_that_knows_an_article_still_refuses_a_bidi_visitor_or_voter():
    decoder = Decoder(SCALE)
    assert decoder.entry([b"k", b"vote", b"a", b"post-4", b"t", b"5", b"v", b"u", b"r", b"4"], NOW_MS)

    read = [b"k", b"read", b"a", b"post-4", b"t", b"5", b"v", "v\u202e".encode()]
    vote = [b"k", b"vote", b"a", b"post-4", b"t", b"5", b"v", "u\u2067".encode(), b"r", b"4"]

    with pytest.raises(InvalidEvent, match="^visitor 'v\\\\u202e' contains the bidi-override character"):
        decoder.entry(read, NOW_MS)
    with pytest.raises(InvalidEvent, match="^voter 'u\\\\u2067' contains the bidi-override character"):
        decoder.entry(vote, NOW_MS)


def test_a_decoder_never_remembers_a_bidi_article_id_as_valid():
    decoder = Decoder(SCALE)
    fields = {b"k": b"read", b"a": "\u202etsop".encode(), b"t": b"5"}

    for _ in range(3):
        with pytest.raises(InvalidEvent, match="bidi-override"):
            decoder(fields, NOW_MS)
