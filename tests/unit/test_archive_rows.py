"""The archive's rows: `aggregate(keep=True)` keeps every counted event, `Archive.write` stores them
as Parquet, one file per event day, and `Archive.clean` removes only unrecorded old files (no servers)."""

from __future__ import annotations

import os
import time
from datetime import UTC, date, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import insert

from readrate.events.scale import WHOLE_STARS
from readrate.events.wire import Decoder
from readrate.workers.aggregate import aggregate
from readrate.workers.archive import COLUMNS, PARTIAL, SUFFIX, Archive
from readrate.workers.db import make_engine, upgrade
from readrate.workers.schema import archive_files

NOW_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
MS_PER_DAY = 86_400_000


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def b(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value


def as_dicts(items: list[tuple[str, dict]]) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """Entries as a decoding client returns them: raw id, dict of byte fields."""
    return [(b(i), {b(k): b(v) for k, v in f.items()}) for i, f in items]


def as_flat(items: list[tuple[str, dict]]) -> list[tuple[bytes, list[bytes]]]:
    """Entries as the worker's raw XRANGE replies hold them: flat [name, value, …] in insertion order."""
    return [(b(i), [b(x) for kv in f.items() for x in kv]) for i, f in items]


def read(article: str, at: int, visitor: str | None = None) -> dict:
    fields = {"k": "read", "a": article, "t": str(at)}
    if visitor is not None:
        fields["v"] = visitor
    return fields


def vote(article: str, at: int, voter: str, rating: str) -> dict:
    return {"k": "vote", "a": article, "t": str(at), "v": voter, "r": rating}


def rows(batch) -> list[tuple]:
    """`batch.counted` with each visitor or voter as text, None for no visitor.

    The fold may keep the person as the entry's raw bytes (b"" for an empty visitor, which the
    archive writes as null) or as text: both mean the same row of the archive."""
    assert batch.counted is not None
    out = []
    for raw_id, article, at_ms, person, rating in batch.counted:
        assert isinstance(raw_id, bytes), raw_id
        if isinstance(person, bytes):
            person = person.decode("utf-8")
        out.append((raw_id, article, at_ms, person or None, rating))
    return out


T = ms("2025-12-31T10:00:00")

MIXED = [
    ("1-0", read("a", T, "visitor-1")),
    ("1-1", read("a", T + 1)),  # no visitor
    ("2-0", read("b", T + 2, "")),  # an empty visitor is no visitor
    ("3-0", {"k": "read", "a": "a"}),  # rejected: no time
    ("4-0", vote("a", T + 3, "voter-1", "4")),
    ("5-0", vote("a", T + 4, "voter-1", "2")),  # a re-vote: counted (archived) too
    ("6-0", vote("b", T + 5, "voter-2", "9")),  # rejected: off the scale
    ("7-0", read("c", NOW_MS + 3_600_000, "v")),  # rejected: an hour in the future
    ("8-0", {"k": "like", "a": "a", "t": str(T)}),  # rejected: unknown kind
    ("9-0", read("b", T + 6, "visitor-1")),
    ("9-1", vote("b", T + 7, "voter-2", "5")),
    ("10-0", {"k": "vote", "a": "a", "t": str(T + 8), "r": "3"}),  # rejected: no voter
    ("11-0", read("a", T + 9, "café")),  # a non-ASCII visitor takes the slow path
    ("12-0", read("a", T + 10, "visitor-1")),
]

MIXED_COUNTED = [
    (b"1-0", "a", T, "visitor-1", None),
    (b"1-1", "a", T + 1, None, None),
    (b"2-0", "b", T + 2, None, None),
    (b"4-0", "a", T + 3, "voter-1", 4.0),
    (b"5-0", "a", T + 4, "voter-1", 2.0),
    (b"9-0", "b", T + 6, "visitor-1", None),
    (b"9-1", "b", T + 7, "voter-2", 5.0),
    (b"11-0", "a", T + 9, "café", None),
    (b"12-0", "a", T + 10, "visitor-1", None),
]


# -- aggregate(keep=True) ------------------------------------------------------


def test_keep_keeps_every_valid_entry_in_stream_order_and_no_rejected_one():
    batch = aggregate(as_dicts(MIXED), scale=WHOLE_STARS, now_ms=NOW_MS, keep=True)

    assert rows(batch) == MIXED_COUNTED
    assert sorted(r.stream_id for r in batch.rejected) == sorted(["3-0", "6-0", "7-0", "8-0", "10-0"])
    assert len(batch.counted) + len(batch.rejected) == batch.entries == len(MIXED)


def test_flat_raw_fields_keep_the_same_rows_as_dict_fields():
    by_dict = aggregate(as_dicts(MIXED), scale=WHOLE_STARS, now_ms=NOW_MS, keep=True)
    by_flat = aggregate(as_flat(MIXED), scale=WHOLE_STARS, now_ms=NOW_MS, keep=True)

    assert rows(by_flat) == rows(by_dict) == MIXED_COUNTED


def test_a_decoder_that_knows_every_article_and_rating_keeps_the_same_rows():
    """The second fold with the same Decoder takes the fast paths (known articles and ratings)."""
    decoder = Decoder(WHOLE_STARS)
    first = aggregate(as_flat(MIXED), decoder=decoder, now_ms=NOW_MS, keep=True)
    again = aggregate(as_flat(MIXED), decoder=decoder, now_ms=NOW_MS, keep=True)
    as_dict_again = aggregate(as_dicts(MIXED), decoder=decoder, now_ms=NOW_MS, keep=True)

    assert rows(first) == rows(again) == rows(as_dict_again) == MIXED_COUNTED


def test_a_flat_entry_in_another_field_order_keeps_its_visitor():
    items = [("1-0", {"a": "x", "k": "read", "v": "someone", "t": str(T)}),
             ("2-0", {"t": str(T + 1), "k": "read", "a": "x"}),
             ("3-0", {"v": "", "t": str(T + 2), "a": "x", "k": "read"}),
             ("4-0", {"r": "3", "v": "voter", "t": str(T + 3), "a": "x", "k": "vote"})]

    for entries in (as_flat(items), as_dicts(items)):
        batch = aggregate(entries, scale=WHOLE_STARS, now_ms=NOW_MS, keep=True)
        assert rows(batch) == [(b"1-0", "x", T, "someone", None), (b"2-0", "x", T + 1, None, None),
                                 (b"3-0", "x", T + 2, None, None), (b"4-0", "x", T + 3, "voter", 3.0)]


def test_without_keep_nothing_is_kept():
    assert aggregate(as_dicts(MIXED), scale=WHOLE_STARS, now_ms=NOW_MS).counted is None
    assert aggregate(as_flat(MIXED), scale=WHOLE_STARS, now_ms=NOW_MS, keep=False).counted is None


def test_keep_on_a_batch_of_only_rejected_entries_keeps_an_empty_list():
    batch = aggregate(as_dicts([("1-0", {"k": "read"}), ("2-0", vote("a", T, "v", "0"))]),
                      scale=WHOLE_STARS, now_ms=NOW_MS, keep=True)

    assert batch.counted == [] and len(batch.rejected) == 2


def test_keep_changes_none_of_the_counters():
    kept = aggregate(as_flat(MIXED), scale=WHOLE_STARS, now_ms=NOW_MS, keep=True)
    plain = aggregate(as_flat(MIXED), scale=WHOLE_STARS, now_ms=NOW_MS)

    assert (kept.articles, kept.hourly, kept.daily, kept.votes, kept.rejected, kept.last_id) == \
           (plain.articles, plain.hourly, plain.daily, plain.votes, plain.rejected, plain.last_id)


people = st.one_of(st.none(), st.just(""), st.sampled_from(["v1", "v2", "visitor 3", "ü"]))
events = st.lists(st.tuples(
    st.sampled_from(["read", "vote", "bad-kind", "no-time"]),
    st.sampled_from(["a", "b", "c"]),
    st.integers(0, 3 * MS_PER_DAY),
    people,
    st.sampled_from(["1", "3", "5", "6"]),
), max_size=40)


@hypothesis_settings(max_examples=150, deadline=None)
@given(events)
def test_kept_rows_are_the_valid_entries_whatever_they_are(spec):
    items, expected = [], []
    for n, (kind, article, at, person, rating) in enumerate(spec):
        at_ms = NOW_MS - 3 * MS_PER_DAY + at  # never in the future
        stream_id = f"{1000 + n}-{n % 3}"
        if kind == "read":
            items.append((stream_id, read(article, at_ms, person)))
            expected.append((stream_id.encode(), article, at_ms, person or None, None))
        elif kind == "vote":
            voter = person or "anon"
            items.append((stream_id, vote(article, at_ms, voter, rating)))
            if rating != "6":
                expected.append((stream_id.encode(), article, at_ms, voter, float(rating)))
        elif kind == "bad-kind":
            items.append((stream_id, {"k": "view", "a": article, "t": str(at_ms)}))
        else:
            items.append((stream_id, {"k": "read", "a": article}))

    by_flat = aggregate(as_flat(items), scale=WHOLE_STARS, now_ms=NOW_MS, keep=True)
    by_dict = aggregate(as_dicts(items), scale=WHOLE_STARS, now_ms=NOW_MS, keep=True)

    assert rows(by_flat) == rows(by_dict) == expected
    assert len(by_flat.rejected) == len(items) - len(expected)


# -- Archive.write ---------------------------------------------------------------------------


def day_of(at_ms: int) -> date:
    return datetime.fromtimestamp(at_ms / 1000, UTC).date()


def read_back(root, archive_file) -> pa.Table:
    return pq.read_table(os.path.join(root, archive_file.path))


EXPECTED_SCHEMA = pa.schema([
    ("stream_id", pa.string()),
    ("shard", pa.int16()),
    ("kind", pa.string()),
    ("article_id", pa.string()),
    ("at", pa.timestamp("ms", tz="UTC")),
    ("visitor", pa.string()),
    ("rating", pa.float64()),
])


def leftovers(root) -> list[str]:
    return [p.name for p in root.rglob("*") if p.name.endswith(PARTIAL)]


def test_a_batch_of_one_day_is_one_file_with_every_row_in_stream_order(tmp_path):
    files = Archive(tmp_path).write(3, MIXED_COUNTED)

    assert len(files) == 1
    (f,) = files
    assert f.path.startswith("day=2025-12-31/") and f.path.endswith(SUFFIX)
    assert (f.day, f.shard, f.events, f.first_id, f.last_id) == (date(2025, 12, 31), 3, 9, "1-0", "12-0")
    assert f.bytes == os.path.getsize(tmp_path / f.path)
    table = read_back(tmp_path, f)
    assert table.schema.names == list(COLUMNS)
    assert list(COLUMNS) == ["stream_id", "shard", "kind", "article_id", "at", "visitor", "rating"]
    assert table.schema.remove_metadata() == EXPECTED_SCHEMA
    assert table.to_pylist() == [
        {"stream_id": i.decode(), "shard": 3, "kind": "read" if r is None else "vote", "article_id": a,
         "at": datetime.fromtimestamp(t / 1000, UTC), "visitor": v, "rating": r}
        for i, a, t, v, r in MIXED_COUNTED
    ]
    assert leftovers(tmp_path) == []


def test_a_batch_over_several_days_is_one_file_per_day_each_in_stream_order(tmp_path):
    d0 = ms("2024-02-28T00:00:00")  # across a leap day
    days = [0, 2, 1, 0, 2, 2, 1, 0, 3, 1]
    counted = []
    for n, d in enumerate(days):
        at = d0 + d * MS_PER_DAY + (MS_PER_DAY - 1 if n % 2 else n * 1000)  # the day's first and last ms too
        person = None if n % 3 == 0 else f"p{n}"
        rating = float(1 + n % 5) if n % 4 == 1 else None
        counted.append((f"{1700000000000 + n // 2}-{n}".encode(), f"article-{n % 3}", at,
                        person or ("voter" if rating is not None else None), rating))

    files = Archive(tmp_path).write(12, counted)

    assert [f.day for f in files] == sorted({day_of(row[2]) for row in counted})
    assert [f.day for f in files] == [date(2024, 2, 28), date(2024, 2, 29), date(2024, 3, 1),
                                      date(2024, 3, 2)]
    seen = []
    for f in files:
        assert f.path.startswith(f"day={f.day.isoformat()}/") and f.path.endswith(SUFFIX)
        assert f.shard == 12
        want = [row for row in counted if day_of(row[2]) == f.day]  # stream order within the day
        table = read_back(tmp_path, f)
        assert table.schema.remove_metadata() == EXPECTED_SCHEMA
        assert table.column("stream_id").to_pylist() == [row[0].decode() for row in want]
        assert table.column("at").cast(pa.int64()).to_pylist() == [row[2] for row in want]
        assert table.column("article_id").to_pylist() == [row[1] for row in want]
        assert table.column("visitor").to_pylist() == [row[3] for row in want]
        assert table.column("rating").to_pylist() == [row[4] for row in want]
        assert table.column("kind").to_pylist() == ["read" if row[4] is None else "vote" for row in want]
        assert set(table.column("shard").to_pylist()) == {12}
        assert (f.events, f.first_id, f.last_id) == (len(want), want[0][0].decode(), want[-1][0].decode())
        assert f.bytes == os.path.getsize(tmp_path / f.path)
        seen += table.column("stream_id").to_pylist()
    assert sorted(seen) == sorted(row[0].decode() for row in counted)
    on_disk = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert on_disk == sorted(f.path for f in files)
    assert leftovers(tmp_path) == []


def test_what_the_fold_keeps_is_what_the_file_holds_with_no_visitor_as_null(tmp_path):
    """From raw entries to the file, as the worker does it: empty and absent visitors are both null."""
    batch = aggregate(as_flat(MIXED), scale=WHOLE_STARS, now_ms=NOW_MS, keep=True)

    (f,) = Archive(tmp_path).write(0, batch.counted)

    table = read_back(tmp_path, f)
    got = [(r["stream_id"].encode(), r["article_id"], int(r["at"].timestamp() * 1000), r["visitor"],
            r["rating"]) for r in table.to_pylist()]
    assert got == MIXED_COUNTED
    assert table.column("kind").to_pylist() == ["read" if r[4] is None else "vote" for r in MIXED_COUNTED]


def test_people_given_as_bytes_are_written_as_text_and_empty_ones_as_null(tmp_path):
    counted = [(b"1-0", "a", T, b"visitor-1", None), (b"1-1", "a", T, b"", None),
               (b"1-2", "a", T, None, None), (b"1-3", "a", T, "caf\u00e9".encode(), None),
               (b"1-4", "a", T, b"voter", 4.5)]

    (f,) = Archive(tmp_path).write(0, counted)

    table = read_back(tmp_path, f)
    assert table.schema.remove_metadata() == EXPECTED_SCHEMA
    assert table.column("visitor").to_pylist() == ["visitor-1", None, None, "caf\u00e9", "voter"]
    assert table.column("kind").to_pylist() == ["read"] * 4 + ["vote"]
    assert table.column("rating").to_pylist() == [None] * 4 + [4.5]


def test_every_batch_gets_files_of_its_own(tmp_path):
    archive = Archive(tmp_path)
    first = archive.write(0, MIXED_COUNTED)
    second = archive.write(0, MIXED_COUNTED)  # the same entries again (a batch read twice)

    assert {f.path for f in first}.isdisjoint(f.path for f in second)
    assert all((tmp_path / f.path).exists() for f in first + second)


def test_an_empty_batch_writes_nothing(tmp_path):
    assert Archive(tmp_path / "archive").write(0, []) == []
    assert not (tmp_path / "archive").exists() or list((tmp_path / "archive").rglob("*")) == []


def test_the_epoch_day_and_the_last_ms_of_a_day_go_to_their_own_day(tmp_path):
    counted = [(b"1-0", "a", 0, None, None), (b"1-1", "a", MS_PER_DAY - 1, None, None),
               (b"1-2", "a", MS_PER_DAY, None, None)]

    files = Archive(tmp_path).write(0, counted)

    assert [(f.path.split("/")[0], f.events) for f in files] == [("day=1970-01-01", 2), ("day=1970-01-02", 1)]


# -- Archive.clean ---------------------------------------------------------------------------


@pytest.fixture
def sqlite_engine(tmp_path):
    engine = make_engine("sqlite:///" + str(tmp_path / "x.db"), create=True)
    upgrade(engine)
    yield engine
    engine.dispose()


def record(engine, f) -> None:
    with engine.begin() as conn:
        conn.execute(insert(archive_files), [{**f.row(), "committed_at": datetime(2025, 1, 1)}])


def age(path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_clean_removes_old_unrecorded_files_and_keeps_young_and_recorded_ones(tmp_path, sqlite_engine):
    root = tmp_path / "archive"
    archive = Archive(root)
    old_orphan, young_orphan, old_recorded, young_recorded = (
        archive.write(0, [(f"{n}-0".encode(), "a", T + n, None, None)])[0] for n in range(4))
    record(sqlite_engine, old_recorded)
    record(sqlite_engine, young_recorded)
    for f in (old_orphan, old_recorded):
        age(root / f.path, 7200)
    partial = root / "day=2025-12-31" / f"0000-99-0-abc{SUFFIX}{PARTIAL}"  # a write a crash cut short
    partial.write_bytes(b"PAR1")
    age(partial, 7200)

    removed = archive.clean(sqlite_engine, older_than_s=3600)

    assert sorted(removed) == sorted([old_orphan.path, partial.relative_to(root).as_posix()])
    assert not (root / old_orphan.path).exists() and not partial.exists()
    for f in (young_orphan, old_recorded, young_recorded):
        assert (root / f.path).exists(), f.path


def test_clean_with_no_age_removes_every_unrecorded_file_and_only_those(tmp_path, sqlite_engine):
    root = tmp_path / "archive"
    archive = Archive(root)
    files = archive.write(1, [(f"{n}-0".encode(), "a", T + n * MS_PER_DAY, None, None) for n in range(4)])
    assert len(files) == 4
    for f in files[::2]:
        record(sqlite_engine, f)
    for f in files:
        age(root / f.path, 10)

    assert sorted(archive.clean(sqlite_engine, older_than_s=0)) == sorted(f.path for f in files[1::2])
    assert sorted(name for name, _ in archive.on_disk()) == sorted(f.path for f in files[::2])
    assert archive.clean(sqlite_engine, older_than_s=0) == []


def test_clean_by_default_keeps_an_unrecorded_file_younger_than_an_hour(tmp_path, sqlite_engine):
    root = tmp_path / "archive"
    archive = Archive(root)
    (young,) = archive.write(0, [(b"1-0", "a", T, None, None)])
    (old,) = archive.write(0, [(b"2-0", "a", T, None, None)])
    age(root / young.path, 1800)
    age(root / old.path, 3 * 3600)

    assert archive.clean(sqlite_engine) == [old.path]
    assert (root / young.path).exists()
