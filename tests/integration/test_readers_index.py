"""Integration: the readers index `readrate archive compact` writes (workers/readers_index.py) and readers from it.

Events go into the streams through `events.Emitter`; a real `readrate worker --burst` drains them with
READRATE_ARCHIVE on. Reported readers are compared with exact counts worked out here with Python sets over
the emitted events (helpers.expected_readers), and the index's own files (sidecars, dictionaries) are decoded
here with DuckDB and compared with the events, so a wrong number is caught even where a report would hide it.
Which files readers() read raw rather than from the index is watched through its `load_events` (`raw_reads`).
"""

from __future__ import annotations

import os
import shutil
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import duckdb
import pytest

from helpers import (
    MS_PER_DAY as D,
    MS_PER_HOUR as H,
    cli,
    drain,
    emit,
    expected_readers,
    iso,
    reader_events,
    top_json,
)
from readrate.events import Read
from readrate.reports import readers as readers_module
from readrate.reports.readers import readers
from readrate.reports.windows import Window
from readrate.workers.archive import SIDECARS, Archive, recorded_paths, sidecar
from readrate.workers.readers_index import ReadersIndex, unindexed
from readrate.workers.recompute import duckdb_connection

SOME = ["art-2", "tie-x", "anon-only", "voted-unread", "nowhere"]  # an `articles=` subset


# -- helpers -------------------------------------------------------------------------------------------------


@pytest.fixture
def raw_reads(monkeypatch) -> list[list[str]]:
    """The archive files readers() reads raw (not from the index), one list per read."""
    calls: list[list[str]] = []
    real = readers_module.load_events

    def spy(duck, archive, names, **kwargs):
        calls.append(list(names))
        return real(duck, archive, names, **kwargs)
    monkeypatch.setattr(readers_module, "load_events", spy)
    return calls


def emitted_and_compacted(settings, emitter, archive_dir, events) -> str:
    """Emit and drain `events` in two halves (several files a day), then `readrate archive compact`: its note."""
    half = len(events) // 2
    for part in (events[:half], events[half:]):
        emit(emitter, part)
        drain(settings, archive_dir)
    return cli(settings, "archive", "compact", archive=archive_dir).stderr


def recorded(engine) -> list[str]:
    with engine.connect() as conn:
        return recorded_paths(conn)


def sidecars_on_disk(root) -> set[str]:
    return {p.relative_to(root).as_posix() for p in (root / SIDECARS).glob("day=*/*")}


def parquet(path, columns: str = "*") -> list[tuple]:
    """The rows of one Parquet file (without the column DuckDB would add for a `day=` folder)."""
    with duckdb.connect() as duck:
        return duck.execute(f"SELECT {columns} FROM read_parquet($path, hive_partitioning = false)",
                            {"path": str(path)}).fetchall()


def column_types(path) -> list[tuple[str, str]]:
    with duckdb.connect() as duck:
        return [(c, t) for c, t, *_ in duck.execute(
            "DESCRIBE SELECT * FROM read_parquet($p, hive_partitioning = false)", {"p": str(path)}).fetchall()]


def dictionary(root, folder: str) -> dict[str, int]:
    """value -> number across the dictionary's segments, checked: each segment `FIRST-COUNT.dict` holds exactly
    the numbers its name says, and no value or number appears twice (numbers run 1..N)."""
    pairs = []
    for segment in sorted((root / SIDECARS / folder).glob("*.dict")):
        first, count = map(int, segment.stem.split("-"))
        rows = parquet(segment, "value, no")
        assert sorted(no for _, no in rows) == list(range(first, first + count)), segment.name
        pairs += rows
    values = dict(pairs)
    assert len(values) == len(pairs), "a value numbered twice"
    assert sorted(values.values()) == list(range(1, len(pairs) + 1)), "a number given twice or skipped"
    return values


def decoded_index(root, names) -> Counter:
    """(epoch hour, article, visitor) -> reads, as the sidecars of `names` hold them, numbers turned back."""
    articles = {no: value for value, no in dictionary(root, "articles").items()}
    visitors = {no: value for value, no in dictionary(root, "visitors").items()}
    found: Counter = Counter()
    for name in names:
        for hour, article, visitor, n in parquet(root / sidecar(name), "hour, article, visitor, reads"):
            found[(hour, articles[article], None if visitor is None else visitors[visitor])] += n
    return found


def read_pairs(events) -> Counter:
    return Counter((e.at_ms // H, e.article_id, e.visitor) for e in events if isinstance(e, Read))


def utc(at_ms: int | None) -> datetime | None:
    return None if at_ms is None else datetime(1970, 1, 1) + timedelta(milliseconds=at_ms)


def windows(day0: int) -> list[tuple[int | None, int | None]]:
    """All time; a window cutting through days at hour boundaries; the same with ragged ends (taken down)."""
    return [(None, None), (day0 + D + 5 * H, day0 + 2 * D + 7 * H),
            (day0 + D + 5 * H + 30 * 60_000, day0 + 2 * D + 7 * H + 45 * 60_000)]


def exact_readers(engine, archive_dir, events, since_ms=None, until_ms=None, articles=None):
    """readers() over the window, checked against the count from `events` with Python sets; the result."""
    got = readers(engine, Window(utc(since_ms), utc(until_ms)), archive_dir=str(archive_dir), articles=articles)
    chosen = [e for e in events if articles is None or e.article_id in articles]
    down = [None if ms is None else ms - ms % H for ms in (since_ms, until_ms)]
    want, reads, anonymous = expected_readers(chosen, *down)
    assert got.exact
    assert got.by_article == {a: n for a, n in want.items() if n}, (since_ms, until_ms, articles)
    assert (got.reads, got.anonymous_reads) == (sum(reads.values()), anonymous), (since_ms, until_ms, articles)
    return got


def all_exact(engine, archive_dir, events, day0, some=SOME) -> list:
    """exact_readers() for every window, of all articles and of `some`."""
    return [exact_readers(engine, archive_dir, events, lo, hi, articles)
            for lo, hi in windows(day0) for articles in (None, some)]


# -- 1. compaction writes the index; readers from it are exact -------------------------------------------


def test_compaction_indexes_every_recorded_file_and_readers_from_the_index_are_exact(
        settings, engine, emitter, archive_dir, day0, raw_reads):
    events = reader_events(day0)
    note = emitted_and_compacted(settings, emitter, archive_dir, events)
    names = recorded(engine)
    assert len(names) == 3 and "indexed the readers of 3 files" in note, note  # one file a day
    assert sidecars_on_disk(archive_dir) == {sidecar(n) for n in names}
    assert unindexed(engine, Archive(archive_dir)) == []
    assert decoded_index(archive_dir, names) == read_pairs(events)
    assert column_types(archive_dir / sidecar(names[0])) == [
        ("hour", "INTEGER"), ("article", "INTEGER"), ("visitor", "INTEGER"), ("reads", "INTEGER")]
    segment = next((archive_dir / SIDECARS / "visitors").glob("*.dict"))
    assert column_types(segment) == [("value", "VARCHAR"), ("no", "INTEGER")]

    from_index = all_exact(engine, archive_dir, events, day0)
    assert raw_reads == []  # every figure came from the sidecars alone

    # Without a dictionary the sidecars mean nothing: the files are read instead, with the same figures.
    shutil.rmtree(archive_dir / SIDECARS / "visitors")
    assert all_exact(engine, archive_dir, events, day0) == from_index
    assert len(raw_reads) == len(from_index) and all(set(call) <= set(names) for call in raw_reads)
    shutil.rmtree(archive_dir / SIDECARS)
    assert all_exact(engine, archive_dir, events, day0) == from_index


# -- 2. files drained after compaction, beside the sidecars ----------------------------------------------


def test_files_drained_after_compaction_are_read_beside_the_sidecars_with_new_and_known_values(
        settings, engine, emitter, archive_dir, day0, raw_reads):
    events = reader_events(day0)
    emitted_and_compacted(settings, emitter, archive_dir, events)
    indexed, visitors_before = recorded(engine), dictionary(archive_dir, "visitors")
    later = [Read("art-1", day0 + D + 6 * H + k, f"vis-{k}") for k in range(12)]  # visitors already numbered
    later += [Read(f"fresh-{k % 3}", day0 + 2 * D + k % 20 * H, f"new-{k % 5}") for k in range(30)]  # both new
    later += [Read("art-2", day0 + D + 8 * H + k, f"new-{k}") for k in range(4)]  # a known article, new visitors
    later += [Read("tie-x", day0 + 20 * H, "p"), Read("tie-x", day0 + 20 * H, "new-9")]  # a repeat, a new one
    later += [Read("fresh-0", day0 + 2 * D + 3 * H, None), Read("art-3", day0 + 30 * H, None),
              Read("fresh-anon", day0 + D + 6 * H, None)]  # reads without a visitor; an article with no reader
    emit(emitter, later)
    drain(settings, archive_dir)
    new = sorted(set(recorded(engine)) - set(indexed))
    assert new and sorted(unindexed(engine, Archive(archive_dir))) == new

    everything = events + later
    some = [*SOME, "fresh-0", "fresh-anon"]
    mixed = all_exact(engine, archive_dir, everything, day0, some)
    assert mixed[0].anonymous_reads == expected_readers(events)[2] + 3
    assert raw_reads and all(set(call) <= set(new) for call in raw_reads)  # only the new files were read raw
    assert dictionary(archive_dir, "visitors") == visitors_before  # reading numbers nothing

    # The next compaction indexes them: new values get the next numbers, known ones keep theirs.
    cli(settings, "archive", "compact", archive=archive_dir)
    visitors_after = dictionary(archive_dir, "visitors")
    assert {v: visitors_after[v] for v in visitors_before} == visitors_before
    assert min(visitors_after[v] for v in visitors_after.keys() - visitors_before.keys()) > len(visitors_before)
    assert decoded_index(archive_dir, recorded(engine)) == read_pairs(everything)
    raw_reads.clear()
    assert all_exact(engine, archive_dir, everything, day0, some) == mixed
    assert raw_reads == []


# -- 3. index writers racing -----------------------------------------------------------------------------


def test_index_writers_racing_give_every_value_one_number(settings, engine, emitter, archive_dir, day0):
    archive, events, writers = Archive(archive_dir), [], 4
    for round_ in range(3):
        # Each visitor reads on all four days (so in many files); half of them were numbered the round before.
        batch = [Read(f"race-{round_ * 2 + k % 5}", day0 + ((k // 40) % 4 - 1) * D + k % 24 * H,
                      f"v-{round_ * 20 + k % 40}") for k in range(400)]
        emit(emitter, batch)
        drain(settings, archive_dir)
        events += batch
        names = unindexed(engine, archive)
        assert len(names) >= writers
        barrier = threading.Barrier(writers)

        def write(group: list[str]) -> int:
            duck = duckdb_connection()
            try:
                barrier.wait()
                return ReadersIndex(archive).write(engine, duck, group)
            finally:
                duck.close()
        with ThreadPoolExecutor(writers) as pool:
            assert sum(pool.map(write, [names[i::writers] for i in range(writers)])) == len(names)
        assert set(dictionary(archive_dir, "visitors")) == {e.visitor for e in events}
        assert set(dictionary(archive_dir, "articles")) == {e.article_id for e in events}
        assert decoded_index(archive_dir, recorded(engine)) == read_pairs(events)
    assert unindexed(engine, archive) == []
    for lo, hi in windows(day0)[:2]:
        exact_readers(engine, archive_dir, events, lo, hi)


def test_a_file_removed_while_the_index_is_written_is_skipped_and_the_others_are_indexed(
        settings, engine, emitter, archive_dir, day0, monkeypatch):
    emit(emitter, reader_events(day0))
    drain(settings, archive_dir)
    archive = Archive(archive_dir)
    names = unindexed(engine, archive)
    assert len(names) >= 2
    gone, real = names[0], ReadersIndex._extend

    def extend_after_a_removal(self, duck, folder, column):
        (archive_dir / gone).unlink(missing_ok=True)  # another process compacted or pruned it meanwhile
        return real(self, duck, folder, column)
    monkeypatch.setattr(ReadersIndex, "_extend", extend_after_a_removal)
    duck = duckdb_connection()
    try:
        assert ReadersIndex(archive).write(engine, duck, names) == len(names) - 1
    finally:
        duck.close()
    assert not (archive_dir / sidecar(gone)).exists()
    assert all((archive_dir / sidecar(name)).is_file() for name in names[1:])


# -- 4. pruning drops the index ----------------------------------------------------------------------------


def test_prune_drops_the_index_readers_stay_exact_and_the_next_compaction_indexes_again(
        settings, engine, emitter, archive_dir, day0, raw_reads):
    events = reader_events(day0)
    emitted_and_compacted(settings, emitter, archive_dir, events)
    assert (archive_dir / SIDECARS).is_dir()

    done = cli(settings, "archive", "prune", "--before", iso(day0 + D)[:10], "--yes", archive=archive_dir)
    assert "pruned" in done.stderr
    assert not (archive_dir / SIDECARS).exists()
    kept = [e for e in events if e.at_ms >= day0 + D]
    pruned = all_exact(engine, archive_dir, kept, day0)
    assert raw_reads

    note = cli(settings, "archive", "compact", archive=archive_dir).stderr
    assert "nothing to compact" in note and "indexed the readers of 2 files" in note, note
    names = recorded(engine)
    assert sidecars_on_disk(archive_dir) == {sidecar(n) for n in names}
    assert decoded_index(archive_dir, names) == read_pairs(kept)
    assert set(dictionary(archive_dir, "visitors")) == {e.visitor for e in kept if isinstance(e, Read)} - {None}
    raw_reads.clear()
    assert all_exact(engine, archive_dir, kept, day0) == pruned
    assert raw_reads == []


# -- 5. sidecars of files no longer recorded ----------------------------------------------------------------


def test_a_replaced_file_loses_its_sidecar_an_orphan_sidecar_is_cleaned_and_a_parquet_glob_sees_only_events(
        settings, engine, emitter, archive_dir, day0):
    first = [Read("a", day0 + k * H, f"v{k % 3}") for k in range(12)] + [Read("b", day0 + 2 * H, None)]
    emitted_and_compacted(settings, emitter, archive_dir, first)
    (replaced,) = recorded(engine)
    assert (archive_dir / sidecar(replaced)).is_file()
    second = [Read("a", day0 + 2 * H + k, f"w{k}") for k in range(5)] + [Read("c", day0 + 3 * H, "v1")]
    emit(emitter, second)
    drain(settings, archive_dir)
    cli(settings, "archive", "compact", archive=archive_dir)
    (merged,) = recorded(engine)
    assert merged != replaced and not (archive_dir / sidecar(replaced)).exists()
    assert sidecars_on_disk(archive_dir) == {sidecar(merged)}

    orphan = f"{merged.split('/')[0]}/0001-orphan.parquet"  # a name no batch recorded
    shutil.copy(archive_dir / sidecar(merged), archive_dir / sidecar(orphan))
    an_hour_ago = datetime.now().timestamp() - 3600
    os.utime(archive_dir / sidecar(orphan), (an_hour_ago, an_hour_ago))
    segments = sorted((archive_dir / SIDECARS).glob("*/*.dict"))
    assert Archive(archive_dir).clean(engine, older_than_s=0) == [orphan]
    assert sidecars_on_disk(archive_dir) == {sidecar(merged)}
    assert sorted((archive_dir / SIDECARS).glob("*/*.dict")) == segments

    events = first + second
    (count,), = duckdb.sql(f"SELECT count(*) FROM read_parquet('{archive_dir}/**/*.parquet')").fetchall()
    assert count == len(events)
    assert decoded_index(archive_dir, [merged]) == read_pairs(events)
    exact_readers(engine, archive_dir, events)


# -- 6. counting rules -------------------------------------------------------------------------------------


def test_with_a_counting_rule_recorded_readers_ignore_the_index_and_apply_the_rule(
        settings, engine, emitter, archive_dir, day0, raw_reads):
    events = reader_events(day0)
    emitted_and_compacted(settings, emitter, archive_dir, events)
    cli(settings, "rebuild", "--exclude-visitor", "vis-1", "--reason", "crawler", "--yes", archive=archive_dir)

    kept = [e for e in events if not (isinstance(e, Read) and e.visitor == "vis-1")]
    assert expected_readers(kept)[0] != expected_readers(events)[0]  # the index alone would be wrong
    all_exact(engine, archive_dir, kept, day0)
    assert raw_reads and sidecars_on_disk(archive_dir)  # read from the files, the index left in place


# -- 7. the report -------------------------------------------------------------------------------------------


def test_report_top_by_readers_is_the_same_before_and_after_compaction(
        settings, engine, emitter, archive_dir, day0, inproc, raw_reads):
    events = reader_events(day0)
    half = len(events) // 2
    for part in (events[:half], events[half:]):
        emit(emitter, part)
        drain(settings, archive_dir)
    cuts = [[], ["--since", iso(day0 + D + 5 * H), "--until", iso(day0 + 2 * D + 7 * H)]]

    def reports():
        return [top_json(inproc, settings, "--by", "readers", *cut, archive=archive_dir) for cut in cuts]
    before = reports()
    want = {a: n for a, n in expected_readers(events)[0].items() if n}
    assert {r["article_id"]: r["readers"] for r in before[0][0]} == want
    assert raw_reads

    cli(settings, "archive", "compact", archive=archive_dir)
    raw_reads.clear()
    assert reports() == before
    assert raw_reads == []  # this time from the index
