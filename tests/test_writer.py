"""The writer's value conversions: what it binds must be exactly what SQLAlchemy would bind."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sqlalchemy import Date
from sqlalchemy.dialects import sqlite

from workers.timeconv import day_date, ms_to_datetime
from workers.writer import day_text, statements, time_text

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
