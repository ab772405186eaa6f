"""The readers index: each compacted archive file's reads as small integers, so distinct readers count fast.

Counting distinct readers over a month means hashing millions of (article, visitor) string
pairs; as integers the same count takes about a third of the time. `readrate archive
compact` therefore writes, beside each file it leaves (`DIR/_readers/day=…/NAME.pairs`),
that file's reads per (hour, article number, visitor number) with their count, and keeps
two dictionaries that give every article and visitor one number for good
(`DIR/_readers/articles/` and `visitors/`, append-only segments `FIRST-COUNT.dict`).

Derived data only: the archive's Parquet files stay the record. Readers use a sidecar only
for a recorded file (a sidecar of a file compaction replaced is never read, and is removed
with it); everything else is read from the archive as before. Numbers are handed out and
sidecars written under one lock (`numbering`), so two compactions never give one
number to two values or two numbers to one value. Pruning drops the whole index under it
(its dictionaries hold visitors of pruned days); the next compaction writes it again.
The sidecars and dictionaries are Parquet files with their own suffixes, so a Parquet
reader globbing `DIR/**/*.parquet` sees only the archive.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

from sqlalchemy import Engine

from readrate.events.clock import MS_PER_HOUR

from .archive import PARTIAL, SIDECARS, Archive, prune, recorded_paths, sidecar
from .recompute import duckdb_connection, duckdb_io_error, sql_string

SEGMENT = ".dict"
DICTIONARIES = {"articles": "article_id", "visitors": "visitor"}  # folder -> archive column it numbers
NUMBERING_LOCK = 0x72656164  # PostgreSQL advisory lock key of the readers index ("read")
NUMBERING_LOCK_FILE = ".readers.lock"  # its SQLite counterpart, in the archive's root


class ReadersIndex:
    """The readers index of one archive folder."""

    def __init__(self, archive: Archive) -> None:
        self.archive = archive
        self.root = archive.root / SIDECARS

    def indexed(self, names: Iterable[str]) -> list[str]:
        """The archive files among `names` that have a sidecar."""
        return [name for name in names if self._sidecar(name).is_file()]

    def pairs_paths(self, names: Iterable[str]) -> list[str]:
        return [str(self._sidecar(name)) for name in names]

    def _sidecar(self, name: str) -> Path:
        return self.archive.root / sidecar(name)

    def bytes(self) -> int:
        """The index's size on disk."""
        return sum(path.stat().st_size for path in self.root.rglob("*") if path.is_file())

    def segments(self, folder: str) -> list[str]:
        """The dictionary's segment files (absolute paths), lowest numbers first."""
        return sorted(str(path) for path in (self.root / folder).glob(f"*{SEGMENT}"))

    def write(self, engine: Engine, duck, names: list[str]) -> int:
        """Write the sidecars of the recorded archive files `names`; how many were written.

        All under the lock: the dictionaries are extended once for all the files, then each
        file's sidecar is written with their numbers (a prune, which drops the index, waits, so
        no sidecar outlives the dictionaries it was numbered with). A file removed meanwhile
        (compacted or pruned by another process) is skipped."""
        with numbering(engine, self.archive):
            present = self._numbered(duck, names)
            written = 0
            for name in present:
                written += self._write_sidecar(duck, name)
        return written

    def _numbered(self, duck, names: list[str]) -> list[str]:
        """Extend the dictionaries with the values of those of `names` still on disk; those files."""
        while True:
            present = [name for name in names if (self.archive.root / name).is_file()]
            if not present:
                return []
            duck.read_parquet(self.archive.paths(present)).create_view("indexing", replace=True)
            try:
                for folder, column in DICTIONARIES.items():
                    self._extend(duck, folder, column)
                return present
            except duckdb_io_error():
                if all((self.archive.root / name).is_file() for name in present):
                    raise
                names = present  # one was compacted or pruned meanwhile: again without it

    def _write_sidecar(self, duck, name: str) -> int:
        """Write one file's sidecar (1), or nothing if the file is gone (0)."""
        source = self.archive.root / name
        target = self._sidecar(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f"{target.name}-{uuid.uuid4().hex[:8]}{PARTIAL}")
        try:
            duck.execute(f"""
                COPY (SELECT CAST(epoch_ms(e."at") // {MS_PER_HOUR} AS INTEGER) AS hour, a.no AS article,
                             v.no AS visitor, CAST(count(*) AS INTEGER) AS reads
                      FROM read_parquet({sql_string(str(source))}, hive_partitioning = false) e
                      JOIN dict_articles a ON a.value = e.article_id
                      LEFT JOIN dict_visitors v ON v.value = e.visitor
                      WHERE e.kind = 'read' GROUP BY ALL ORDER BY article, visitor, hour)
                TO {sql_string(str(partial))} (FORMAT parquet, COMPRESSION zstd)""")
        except duckdb_io_error():
            if source.is_file():
                raise
            partial.unlink(missing_ok=True)
            return 0  # compacted or pruned meanwhile: its sidecar would never be read
        os.replace(partial, target)
        return 1

    def _extend(self, duck, folder: str, column: str) -> None:
        """Number the values of `column` in the view `indexing` the dictionary lacks; leave the whole
        dictionary as the view dict_<folder>. Call under the lock."""
        segments = self.segments(folder)
        known = f"read_parquet({_list(segments)})" if segments else "(SELECT NULL::VARCHAR AS value, 0 AS no LIMIT 0)"
        duck.execute(f"CREATE OR REPLACE TEMP TABLE dict_{folder} AS SELECT value, no FROM {known}")
        start = 1 + max((_last_number(path) for path in segments), default=0)
        new = f"""SELECT value, CAST({start - 1} + row_number() OVER (ORDER BY value) AS INTEGER) AS no
                  FROM (SELECT DISTINCT {column} AS value FROM indexing
                        WHERE kind = 'read' AND {column} IS NOT NULL) fresh
                  WHERE NOT EXISTS (SELECT 1 FROM dict_{folder} d WHERE d.value = fresh.value)"""
        duck.execute(f"CREATE OR REPLACE TEMP TABLE new_{folder} AS {new}")
        count = duck.execute(f"SELECT count(*) FROM new_{folder}").fetchone()[0]
        if not count:
            return
        target = self.root / folder / f"{start:010d}-{count:010d}{SEGMENT}"
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + PARTIAL)
        duck.execute(f"COPY new_{folder} TO {sql_string(str(partial))} (FORMAT parquet, COMPRESSION zstd)")
        with open(partial, "rb+") as written:  # durable before the lock is let go: numbers are handed out once
            os.fsync(written.fileno())
        os.replace(partial, target)
        duck.execute(f"INSERT INTO dict_{folder} SELECT * FROM new_{folder}")


def index_archive(engine: Engine, archive: Archive) -> int:
    """Write the sidecars every recorded file lacks (`readrate archive compact` does, after merging); how many."""
    names = unindexed(engine, archive)
    if not names:
        return 0
    duck = duckdb_connection()
    try:
        return ReadersIndex(archive).write(engine, duck, names)
    finally:
        duck.close()


def unindexed(engine: Engine, archive: Archive) -> list[str]:
    """Recorded archive files without a sidecar, oldest day first."""
    with engine.connect() as conn:
        names = recorded_paths(conn)
    have = set(ReadersIndex(archive).indexed(names))
    return [name for name in names if name not in have]


def prune_archive(engine: Engine, archive: Archive, before: date) -> tuple[int, int]:
    """Retention: drop the archive's days before `before` (archive.prune), and with them the whole readers
    index, whose dictionaries name visitors of the pruned days; (files, events) removed."""
    files, events = prune(engine, archive, before)
    if files:
        drop_index(engine, archive)
    return files, events


def drop_index(engine: Engine, archive: Archive) -> None:
    """Delete the whole index; the next compaction writes it again."""
    with numbering(engine, archive):
        shutil.rmtree(archive.root / SIDECARS, ignore_errors=True)


@contextmanager
def numbering(engine: Engine, archive: Archive) -> Iterator[None]:
    """The index's lock: whoever holds it may number values, write sidecars or drop the index.

    PostgreSQL: an advisory lock, which every host shares. SQLite (one host): a file lock beside the
    archive, which drains do not wait for, as they would for SQLite's write lock."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn, conn.begin():
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({NUMBERING_LOCK})")
            yield
        return
    archive.root.mkdir(parents=True, exist_ok=True)
    with open(archive.root / NUMBERING_LOCK_FILE, "a+b") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(held, fcntl.LOCK_UN)


def _last_number(path: str) -> int:
    first, _, count = Path(path).name.removesuffix(SEGMENT).partition("-")
    return int(first) + int(count) - 1


def _list(paths: list[str]) -> str:
    return "[" + ", ".join(sql_string(p) for p in paths) + "]"
