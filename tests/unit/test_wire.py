"""Wire format v1 (a DESIGN.md contract): keys, crc32 shards, fields, encode/decode, dead-letter payloads."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from readrate.events.errors import InvalidEvent
from readrate.events.model import Read, Vote
from readrate.events.scale import WHOLE_STARS, RatingScale
from readrate.events.wire import (
    DOORBELL_TTL_MS,
    Decoder,
    MAX_FIELD_BYTES,
    PAYLOAD_FIELD_LIMIT,
    Keys,
    as_dict,
    decode,
    encode,
    encode_flat,
    payload_fields,
    payload_text,
    shard_for,
)

NOW_MS = 1_767_225_600_000
HALF_STARS = RatingScale.parse("0.5-5/0.5")


def dec(fields: dict[bytes, bytes], scale: RatingScale = WHOLE_STARS):
    return decode(fields, scale=scale, now_ms=NOW_MS)


def raw(**fields: str | bytes) -> dict[bytes, bytes]:
    return {k.encode(): v if isinstance(v, bytes) else v.encode() for k, v in fields.items()}


# -- keys and shards -----------------------------------------------------------


def test_stream_doorbell_and_lease_keys_share_the_hash_tag_of_prefix_and_shard():
    keys = Keys("readrate", 4)

    assert keys.stream(2) == "{readrate:2}:events"
    assert keys.doorbell(2) == "{readrate:2}:doorbell"
    assert keys.lease(3) == "{readrate:3}:lease"
    assert keys.installation == "{readrate}:installation"
    assert keys.queue == "readrate"


def test_every_key_of_a_shard_hashes_to_one_cluster_slot():
    from redis.crc import key_slot

    keys = Keys("readrate", 16)
    for shard in range(16):
        slots = {key_slot(k.encode()) for k in (keys.stream(shard), keys.doorbell(shard), keys.lease(shard),
                                                 keys.import_progress(shard, "abc"))}
        assert len(slots) == 1


def test_workers_drain_every_shard_below_max_shards_and_producers_write_below_shards():
    keys = Keys("readrate", 8, 16)

    assert keys.drained == range(16)
    assert {keys.shard_of(f"a-{i}") for i in range(1000)} == set(range(8))
    assert Keys("readrate", 4).drained == range(4)


def test_keys_default_to_prefix_readrate_and_four_shards():
    assert Keys() == Keys("readrate", 4, 0)


def test_a_custom_prefix_names_every_key_and_the_queue():
    keys = Keys("site-b", 16)

    assert keys.stream(15) == "{site-b:15}:events"
    assert keys.doorbell(0) == "{site-b:0}:doorbell"
    assert keys.queue == "site-b"


def test_the_doorbell_lives_thirty_seconds():
    assert DOORBELL_TTL_MS == 30_000


@pytest.mark.parametrize(
    ("article_id", "crc32"),
    [
        # The standard CRC-32 check value, and values any zlib, PHP crc32() or JS crc-32 gives.
        ("123456789", 0xCBF43926),
        ("a", 0xE8B7BE43),
        ("hello", 0x3610A686),
        ("article-42", 2_835_148_154),
    ],
)
@pytest.mark.parametrize("shards", [1, 4, 7, 1024])
def test_the_shard_is_unsigned_crc32_of_the_article_id_mod_shards(article_id, crc32, shards):
    assert shard_for(article_id, shards) == crc32 % shards
    assert Keys("p", shards).shard_of(article_id) == crc32 % shards


def test_article_42_goes_to_shard_2_of_4_as_the_readme_says():
    assert shard_for("article-42", 4) == 2


def test_the_shard_is_computed_on_utf8_bytes():
    # crc32(b"\xc3\xa9") — the UTF-8 bytes of "é" — not of its Latin-1 byte 0xE9.
    import zlib

    assert shard_for("é", 1024) == zlib.crc32("é".encode()) % 1024
    assert shard_for("é", 1024) != zlib.crc32(b"\xe9") % 1024


@given(st.text(min_size=1, max_size=128), st.integers(min_value=1, max_value=1024))
def test_every_article_has_a_shard_in_range(article_id, shards):
    assert 0 <= shard_for(article_id, shards) < shards


# -- encode --------------------------------------------------------------------


def test_a_read_is_encoded_as_kind_article_and_time():
    expected = {"k": "read", "a": "article-42", "t": "1700000000123"}
    assert encode(Read("article-42", 1_700_000_000_123)) == expected


def test_a_read_with_a_visitor_carries_it_in_field_v():
    assert encode(Read("a", 5, "visitor-7")) == {"k": "read", "a": "a", "t": "5", "v": "visitor-7"}


def test_a_vote_is_encoded_with_voter_and_rating_as_strings():
    assert encode(Vote("a", 5, "user-1", 4.0)) == {"k": "vote", "a": "a", "t": "5", "v": "user-1", "r": "4"}
    assert encode(Vote("a", 5, "user-1", 4.5))["r"] == "4.5"
    assert encode(Vote("a", 5, "user-1", 0.5))["r"] == "0.5"


def test_the_flat_encoding_xadd_takes_holds_the_same_fields():
    for event in (Read("a", 5), Read("a", 5, "v"), Vote("a", 5, "u", 3.0), Vote("a", 5, "u", 0.5)):
        flat = encode_flat(event)
        assert dict(zip(flat[::2], flat[1::2])) == encode(event)
        assert len(flat) == 2 * len(encode(event))


def test_every_encoded_field_is_a_string():
    for event in (Read("a", 5), Read("a", 5, "v"), Vote("a", 5, "u", 3.0)):
        assert all(isinstance(value, str) for value in encode(event).values())


# -- decode --------------------------------------------------------------------


def test_a_read_written_by_any_producer_decodes():
    assert dec(raw(k="read", a="article-42", t="1700000000123")) == Read("article-42", 1_700_000_000_123)
    assert dec(raw(k="read", a="a", t="5", v="v-9")) == Read("a", 5, "v-9")


def test_a_vote_written_by_any_producer_decodes():
    assert dec(raw(k="vote", a="a", t="5", v="u", r="4")) == Vote("a", 5, "u", 4.0)
    assert dec(raw(k="vote", a="a", t="5", v="u", r="3.5"), HALF_STARS) == Vote("a", 5, "u", 3.5)


def test_a_read_with_an_empty_visitor_decodes_without_one():
    assert dec(raw(k="read", a="a", t="5", v="")).visitor is None


@pytest.mark.parametrize("missing", ["k", "a", "t"])
def test_an_entry_missing_a_required_field_is_refused_naming_it(missing):
    fields = raw(k="read", a="a", t="5")
    del fields[missing.encode()]

    with pytest.raises(InvalidEvent, match=f"field '{missing}' is missing"):
        dec(fields)


def test_a_vote_missing_its_rating_is_refused():
    with pytest.raises(InvalidEvent, match="field 'r' is missing"):
        dec(raw(k="vote", a="a", t="5", v="u"))


@pytest.mark.parametrize("voter", [None, ""])
def test_a_vote_without_a_voter_is_refused(voter):
    fields = raw(k="vote", a="a", t="5", r="4")
    if voter is not None:
        fields[b"v"] = voter.encode()

    with pytest.raises(InvalidEvent, match="voter .*required"):
        dec(fields)


def test_an_entry_with_an_unknown_field_is_refused_naming_it():
    with pytest.raises(InvalidEvent) as caught:
        dec(raw(k="read", a="a", t="5", rating="4"))

    assert "unknown field 'rating'" in str(caught.value)
    assert "accepted: k, a, t, v, r" in str(caught.value)


def test_an_entry_with_an_undecodable_field_name_is_refused():
    with pytest.raises(InvalidEvent, match="unknown field"):
        dec({b"k": b"read", b"a": b"a", b"t": b"5", b"\xff\xfe": b"x"})


@pytest.mark.parametrize("kind", ["click", "READ", "Vote", "", "read "])
def test_an_entry_of_an_unknown_kind_is_refused_quoting_it(kind):
    with pytest.raises(InvalidEvent) as caught:
        dec(raw(k=kind, a="a", t="5"))

    assert f"kind {kind!r} is unknown" in str(caught.value)
    assert "read, vote" in str(caught.value)


def test_a_read_that_carries_a_rating_is_refused():
    with pytest.raises(InvalidEvent, match="a read carries no rating"):
        dec(raw(k="read", a="a", t="5", r="4"))


@pytest.mark.parametrize("name", ["a", "v", "k", "r", "t"])
def test_an_oversized_field_is_refused_without_being_read(name):
    fields = raw(k="vote", a="a", t="5", v="u", r="4")
    fields[name.encode()] = b"9" * (MAX_FIELD_BYTES + 1)

    with pytest.raises(InvalidEvent, match=f"field '{name}' is {MAX_FIELD_BYTES + 1} bytes"):
        dec(fields)


def test_a_field_of_exactly_the_byte_limit_is_read_and_then_checked():
    with pytest.raises(InvalidEvent, match="576 characters"):
        dec(raw(k="read", a="x" * MAX_FIELD_BYTES, t="5"))


def test_128_four_byte_characters_fit_under_the_field_byte_limit():
    article = "🙂" * 128

    assert dec(raw(k="read", a=article, t="5")).article_id == article


@pytest.mark.parametrize("name", ["k", "a", "t", "v", "r"])
def test_an_undecodable_field_is_refused_as_not_utf8(name):
    fields = raw(k="vote", a="a", t="5", v="u", r="4")
    fields[name.encode()] = b"\xff\xfe"

    with pytest.raises(InvalidEvent, match=f"field '{name}' is not valid UTF-8"):
        dec(fields)


@pytest.mark.parametrize("t", ["-5", "1.5", "", "5ms", " 5", "١٢٣", "0x10", "1e3"])
def test_an_event_time_that_is_not_plain_ascii_digits_is_refused(t):
    with pytest.raises(InvalidEvent, match="not a non-negative integer of epoch milliseconds"):
        dec(raw(k="read", a="a", t=t))


def test_an_event_time_too_far_in_the_future_is_refused_on_decode():
    assert dec(raw(k="read", a="a", t=str(NOW_MS + 300_000))).at_ms == NOW_MS + 300_000
    with pytest.raises(InvalidEvent, match="in the future"):
        dec(raw(k="read", a="a", t=str(NOW_MS + 300_001)))


@pytest.mark.parametrize("rating", ["7", "0", "4.3", "NaN", "abc", ""])
def test_a_vote_with_a_rating_off_the_scale_is_refused_quoting_it(rating):
    with pytest.raises(InvalidEvent) as caught:
        dec(raw(k="vote", a="a", t="5", v="u", r=rating))

    assert repr(rating) in str(caught.value)


@pytest.mark.parametrize(("name", "value"), [("a", "post\u202e-4"), ("v", "v\u2068")])
@pytest.mark.parametrize("kind", ["read", "vote"])
def test_a_bidi_override_in_an_article_id_visitor_or_voter_is_refused_on_decode(kind, name, value):
    fields = raw(k=kind, a="a", t="5", v="u", **({"r": "4"} if kind == "vote" else {}))
    fields[name.encode()] = value.encode()

    with pytest.raises(InvalidEvent, match="contains the bidi-override character") as caught:
        dec(fields)

    role = {"a": "article id", "v": "visitor" if kind == "read" else "voter"}[name]
    assert str(caught.value).startswith(f"{role} {value!r} ")  # repr shows the character escaped


def test_a_warm_decoder_refuses_a_bidi_article_id_and_voter_as_decode_does():
    decoder = Decoder(WHOLE_STARS)
    decoder({b"k": b"vote", b"a": b"post", b"t": b"5", b"v": b"u", b"r": b"4"}, NOW_MS)

    for fields in (raw(k="read", a="post\u202e", t="5"), raw(k="vote", a="post", t="5", v="u\u202a", r="4")):
        expected = _outcome(lambda: dec(fields))
        assert expected[0] == "refused"
        assert _outcome(lambda: decoder(fields, NOW_MS)) == expected
        assert _outcome(lambda: decoder.entry([p for kv in fields.items() for p in kv], NOW_MS)) == expected


def test_a_decoded_article_id_is_checked_like_any_other():
    with pytest.raises(InvalidEvent, match="control character"):
        dec(raw(k="read", a="a\x00b", t="5"))
    with pytest.raises(InvalidEvent, match="empty"):
        dec(raw(k="read", a="", t="5"))


# -- round trips ---------------------------------------------------------------

# Cc covers C0, DEL and C1 controls; Cs the lone surrogates undecodable bytes arrive as.
printable = st.characters(blacklist_categories=("Cc", "Cs"))
article_ids = st.text(alphabet=printable, min_size=1, max_size=128)
people = st.text(alphabet=printable, min_size=1, max_size=128)
times = st.integers(min_value=0, max_value=NOW_MS + 300_000)
reads = st.builds(Read, article_ids, times, st.none() | people)
votes = st.builds(Vote, article_ids, times, people, st.sampled_from(HALF_STARS.values()))


def as_redis_would_return(fields: dict[str, str]) -> dict[bytes, bytes]:
    return {k.encode("utf-8"): v.encode("utf-8") for k, v in fields.items()}


@given(reads | votes)
def test_any_valid_event_survives_encode_and_decode_unchanged(event):
    assert decode(as_redis_would_return(encode(event)), scale=HALF_STARS, now_ms=NOW_MS) == event


@given(st.dictionaries(st.binary(max_size=4), st.binary(max_size=700), max_size=6))
def test_decoding_arbitrary_bytes_gives_an_event_or_an_invalid_event_never_a_crash(fields):
    try:
        event = decode(fields, scale=WHOLE_STARS, now_ms=NOW_MS)
    except InvalidEvent as exc:
        assert str(exc)
    else:
        assert isinstance(event, (Read, Vote))


# -- dead-letter payloads ------------------------------------------------------


def test_a_payload_is_json_with_the_entry_fields_as_text():
    payload = payload_text(raw(k="vote", a="a", t="5", v="u", r="7"))

    assert json.loads(payload) == {"k": "vote", "a": "a", "t": "5", "v": "u", "r": "7"}


def test_a_payload_keeps_undecodable_bytes_exactly_for_a_replay():
    fields = {b"k": b"read", b"a": b"caf\xe9", b"t": b"5", b"\xff": b"\x00\x80"}

    payload = payload_text(fields)

    assert payload.isascii()
    assert payload_fields(payload) == fields


def test_a_payload_cuts_an_oversized_field_and_records_the_cut():
    fields = raw(k="read", a="x" * 5000, t="5")

    payload = payload_text(fields)
    doc = json.loads(payload)

    assert doc["_truncated"] == ["a"]
    assert doc["a"] == "x" * PAYLOAD_FIELD_LIMIT
    assert payload_fields(payload) == {b"k": b"read", b"a": b"x" * PAYLOAD_FIELD_LIMIT, b"t": b"5"}


def test_a_payload_of_a_field_exactly_at_the_limit_is_not_marked_cut():
    doc = json.loads(payload_text(raw(a="y" * PAYLOAD_FIELD_LIMIT)))

    assert "_truncated" not in doc
    assert len(doc["a"]) == PAYLOAD_FIELD_LIMIT


def test_an_entry_with_a_real_field_named_like_the_cut_marker_keeps_it_so_a_replay_is_refused_again():
    fields = raw(k="read", a="a", t="5", _truncated="x")

    back = payload_fields(payload_text(fields))

    assert back == fields
    with pytest.raises(InvalidEvent, match="unknown field '_truncated'"):
        dec(back)


@given(st.dictionaries(st.binary(min_size=1, max_size=8),
                       st.binary(max_size=PAYLOAD_FIELD_LIMIT), max_size=6))
def test_any_entry_up_to_the_limit_survives_payload_text_and_back(fields):
    assert payload_fields(payload_text(fields)) == fields


@given(st.dictionaries(st.sampled_from([b"k", b"a", b"t", b"v", b"r"]), st.binary(max_size=3000), max_size=5))
def test_a_payload_round_trip_gives_each_field_cut_to_the_limit(fields):
    back = payload_fields(payload_text(fields))

    assert back == {k: v[:PAYLOAD_FIELD_LIMIT] for k, v in fields.items()}


# -- Decoder.entry: the in-place fast path must agree with the dict path on every input -------------

_NOW_MS = 1_764_360_000_000
_names = st.sampled_from([b"k", b"a", b"t", b"v", b"r", b"x"])
_BIDI_ARTICLE = "article-1\u202e".encode()
_BIDI_PERSON = "v\u2066".encode()
_any_value = st.one_of(
    st.sampled_from([b"read", b"vote", b"article-1", b"4", b"", b"\xff", b"a\x00b", b"-5", _BIDI_ARTICLE,
                     _BIDI_PERSON]), st.binary(max_size=8))
# The layout Emitter writes, k a t [v] [r], with values on both sides of every rule.
_emitter_layout = st.tuples(
    st.sampled_from([b"read", b"vote", b"like"]),
    st.sampled_from([b"article-1", b"4", b"", b"\xff", b"a\x00b", _BIDI_ARTICLE]),
    st.sampled_from([str(_NOW_MS).encode(), str(_NOW_MS + 300_000).encode(), str(_NOW_MS + 300_001).encode(),
                     b"-5", b"1.5", b"", b"1" * 17]),
    st.sampled_from([None, b"visitor 1", b"", b"\xff", b"a\x00b", b"x" * 129, "ü".encode(), _BIDI_PERSON]),
    st.sampled_from([None, b"4", b"4.5", b"NaN", b"9"]),
)


def _outcome(call):
    try:
        return call()
    except InvalidEvent as exc:
        return ("refused", str(exc))


def _check_entry_agrees(flat):
    warm = Decoder(WHOLE_STARS)  # its caches know some valid values, so the fast path is taken
    for article in (b"article-1", b"4"):
        warm({b"k": b"read", b"a": article, b"t": b"1"}, _NOW_MS)
    warm({b"k": b"vote", b"a": b"article-1", b"t": b"1", b"v": b"u", b"r": b"4"}, _NOW_MS)
    expected = _outcome(lambda: Decoder(WHOLE_STARS)(as_dict(flat), _NOW_MS))
    assert _outcome(lambda: warm.entry(flat, _NOW_MS)) == expected


@given(_emitter_layout)
def test_decoder_entry_agrees_with_the_dict_path_on_the_emitter_layout(layout):
    kind, article, at, person, rating = layout
    flat = [b"k", kind, b"a", article, b"t", at]
    if person is not None:
        flat += [b"v", person]
    if rating is not None:
        flat += [b"r", rating]
    _check_entry_agrees(flat)


@given(st.lists(st.tuples(_names, _any_value), min_size=1, max_size=6))
def test_decoder_entry_agrees_with_the_dict_path_on_any_layout(pairs):
    _check_entry_agrees([part for pair in pairs for part in pair])
