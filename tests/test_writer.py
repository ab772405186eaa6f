"""The writer's value conversions: what it binds must be exactly what SQLAlchemy would bind."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from workers.timeconv import ms_to_datetime
from workers.writer import sqlite_text, statements

# Epoch milliseconds from 1970 to the end of 9999, the range a DateTime can hold.
_MS = st.integers(min_value=0, max_value=253_402_300_799_999)


@given(_MS)
def test_sqlite_time_text_equals_what_sqlalchemy_stores_for_the_same_instant(at_ms):
    assert sqlite_text(at_ms) == statements("sqlite").datetime(ms_to_datetime(at_ms))


@given(st.lists(_MS, min_size=2, max_size=20))
def test_sqlite_time_texts_sort_as_the_instants_do(values):
    assert sorted(values, key=sqlite_text) == sorted(values)


def test_postgresql_binds_datetimes_for_event_times():
    assert statements("postgresql").at_ms(1_764_360_000_123) == ms_to_datetime(1_764_360_000_123)
