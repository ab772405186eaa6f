"""Integration, faults: bad entries written straight to a stream become dead letters, never losses.

Entries that break wire format v1 — a missing field, an unknown kind, a rating off
the scale or 'NaN', bad article ids, control characters, a far-future or non-numeric
time, bytes that are not UTF-8, an oversized field — are XADDed in one MULTI between
valid ones. A running worker must count the valid ones, keep each bad one in
rejected_events with its raw payload and a reason, do both in the same batch, and
keep running.
"""

from __future__ import annotations

import json
import time

from sqlalchemy import select

from helpers import RunningWorker, offsets, tally, wait_for_listening_worker, wait_for_state, wait_until
from readrate.workers.schema import rejected_events, stream_offsets


ARTICLE = "article-42"  # crc32 mod 4 = 2, like "article-1"
OTHER = "article-1"
SHARD = 2
OVERSIZED = 100_000


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def entries_and_reasons(t: int) -> list[tuple[dict[bytes, bytes], str | None]]:
    """(fields, a fragment of the expected reason) in stream order; None marks a valid entry."""
    a, ts = ARTICLE.encode(), str(t).encode()
    return [
        ({b"k": b"read", b"a": a, b"t": ts, b"v": b"visitor-1"}, None),
        ({b"k": b"read", b"t": ts}, "'a' is missing"),
        ({b"k": b"vote", b"a": a, b"t": ts, b"v": b"voter-1", b"r": b"4"}, None),
        ({b"k": b"vote", b"a": a, b"t": ts, b"r": b"4"}, "voter"),
        ({b"k": b"click", b"a": a, b"t": ts}, "kind 'click' is unknown"),
        ({b"k": b"vote", b"a": a, b"t": ts, b"v": b"voter-2", b"r": b"6"}, "not on the scale"),
        ({b"k": b"vote", b"a": a, b"t": ts, b"v": b"voter-3", b"r": b"4.5"}, "not on the scale"),
        ({b"k": b"read", b"a": OTHER.encode(), b"t": ts}, None),
        ({b"k": b"vote", b"a": a, b"t": ts, b"v": b"voter-4", b"r": b"NaN"}, "not a decimal number"),
        ({b"k": b"read", b"a": b"", b"t": ts}, "article id is empty"),
        ({b"k": b"read", b"a": b"x" * 129, b"t": ts}, "129 characters"),
        ({b"k": b"read", b"a": b"bell\x07article", b"t": ts}, "control character"),
        ({b"k": b"vote", b"a": a, b"t": ts, b"v": b"nul\x00voter", b"r": b"3"}, "control character"),
        ({b"k": b"read", b"a": a, b"t": str(t + 86_400_000).encode()}, "in the future"),
        ({b"k": b"read", b"a": a, b"t": b"yesterday"}, "not a non-negative integer"),
        ({b"k": b"read", b"a": b"caf\xe9-latin1", b"t": ts}, "not valid UTF-8"),
        ({b"k": b"read", b"a": a, b"t": ts, b"v": b"\xff\xfe"}, "not valid UTF-8"),
        ({b"k": b"read", b"a": b"y" * OVERSIZED, b"t": ts}, f"{OVERSIZED} bytes"),
        ({b"k": b"read", b"a": a, b"t": ts, b"z": b"1"}, "unknown field 'z'"),
        ({b"k": b"read", b"a": a, b"t": ts, b"r": b"5"}, "carries no rating"),
        ({b"k": b"vote", b"a": a, b"t": str(t + 1).encode(), b"v": b"voter-1", b"r": b"2"}, None),
        ({b"k": b"read", b"a": a, b"t": ts}, None),
    ]


def raw_fields(payload: str) -> dict[bytes, bytes]:
    """The stored payload back as bytes (undecodable bytes are kept as surrogate escapes)."""
    doc = json.loads(payload)
    return {k.encode("utf-8", "surrogateescape"): v.encode("utf-8", "surrogateescape")
            for k, v in doc.items() if k != "_truncated"}


def rejected_rows(engine) -> dict[str, object]:
    with engine.connect() as conn:
        return {r.stream_id: r for r in conn.execute(select(rejected_events))}


def test_bad_entries_become_dead_letters_in_the_batch_that_counts_the_valid_ones(
    settings, engine, redis, tmp_path
):
    t = now_ms() - 60_000
    plan = entries_and_reasons(t)
    with RunningWorker(settings, tmp_path / "worker.log") as worker:
        wait_for_listening_worker(redis, settings)
        # One MULTI: the worker sees all of the entries or none, so they fit one batch.
        with redis.pipeline(transaction=True) as pipe:
            for fields, _reason in plan:
                pipe.xadd(settings.keys.stream(SHARD), fields)
            ids = [i.decode() for i in pipe.execute()]

        wait_for_state(engine, tally(fields for fields, reason in plan if reason is None))
        wait_until(lambda: offsets(engine)[SHARD] == ids[-1], timeout=60,
                   message="the offset to pass the entries")
        rows = rejected_rows(engine)
        assert worker.alive(), worker.log()

    bad = {stream_id: entry for stream_id, entry in zip(ids, plan) if entry[1] is not None}
    assert sorted(rows) == sorted(bad), "exactly the bad entries, each once"
    for stream_id, (fields, reason) in bad.items():
        row = rows[stream_id]
        assert row.shard == SHARD
        assert reason in row.reason, (stream_id, fields, row.reason)
        stored = raw_fields(row.payload)
        if len(fields.get(b"a", b"")) == OVERSIZED:
            assert json.loads(row.payload)["_truncated"] == ["a"]
            assert stored[b"a"] == fields[b"a"][: len(stored[b"a"])] and 0 < len(stored[b"a"]) < 2_000
            del stored[b"a"]
            assert stored == {k: v for k, v in fields.items() if k != b"a"}
        else:
            assert stored == fields, (stream_id, row.payload)
    with engine.connect() as conn:
        batch_time = conn.scalar(select(stream_offsets.c.updated_at).where(stream_offsets.c.shard == SHARD))
    # The dead letters were written by the transaction that moved the offset past every entry.
    assert {row.received_at for row in rows.values()} == {batch_time}
