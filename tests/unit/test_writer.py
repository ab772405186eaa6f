"""The writer's value conversions: what it binds must be exactly what SQLAlchemy would bind."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sqlalchemy import Date
from sqlalchemy.dialects import sqlite

from readrate.events.clock import day_date, ms_to_datetime
from readrate.workers.writer import day_text, statements, time_text

# Epoch milliseconds from 1970 to the end of 9999, the range a DateTime can hold.
_MS = st.integers(min_value=0, max_value=253_402_300_799_999)


@given(_MS)
def test_sqlite_time_text_equals_what_sqlalchemy_stores_for_the_same_instant(at_ms):
    assert time_text(at_ms) == statements("sqlite").datetime(ms_to_datetime(at_ms))


@given(st.lists(_MS, min_size=2, max_size=20))
def test_sqlite_time_texts_sort_as_the_instants_do(values):
    assert sorted(values, key=time_text) == sorted(values)


@given(st.integers(min_value=0, max_value=2_932_896))
def test_sqlite_day_text_equals_what_sqlalchemy_stores_for_the_same_date(day):
    dialect = sqlite.dialect()
    assert day_text(day) == Date().dialect_impl(dialect).bind_processor(dialect)(day_date(day))


# -- exactly once: the offset compare-and-set ------------------------------------------------------

def _batch_of(entries):
    from readrate.events.scale import WHOLE_STARS
    from readrate.workers.aggregate import aggregate

    return aggregate(entries, scale=WHOLE_STARS, now_ms=1_800_000_000_000)


def test_the_same_batch_applied_twice_is_refused_the_second_time_and_the_counters_stay(settings, engine):
    from datetime import datetime

    from helpers import snapshot
    from readrate.workers.db import writing
    from readrate.workers.writer import apply_batch, read_offset

    t = 1_700_000_000_000
    batch = _batch_of([
        (f"{t}-0".encode(), {b"k": b"read", b"a": b"a-1", b"t": str(t).encode()}),
        (f"{t}-1".encode(), {b"k": b"vote", b"a": b"a-1", b"t": str(t).encode(), b"v": b"u-1", b"r": b"4"}),
        (f"{t}-2".encode(), {b"k": b"read", b"a": b"a-2", b"t": str(t + 1).encode(), b"v": b"v-9"}),
    ])
    def offset():
        with engine.connect() as conn:
            return read_offset(conn, 0)

    with writing(engine.connect()) as conn:
        assert apply_batch(conn, 0, "0-0", batch, received_at=datetime(2024, 1, 1)) is True
        after_first = snapshot(engine)
        assert offset() == f"{t}-2"

        # A drain that read the same entries from the same old offset (a crash after commit, a lease
        # that expired mid-batch) must be turned away whole.
        assert apply_batch(conn, 0, "0-0", batch, received_at=datetime(2024, 1, 1)) is False

    assert offset() == f"{t}-2"
    assert snapshot(engine) == after_first
    assert after_first["stats"] == {"a-1": (1, 1, 4.0), "a-2": (1, 0, 0.0)}
