"""The archive: every counted event, in Parquet files under READRATE_ARCHIVE (DESIGN.md, "Archive").

A drain writes the counted events of a batch before the batch transaction, one
file per event day (`DIR/day=YYYY-MM-DD/`), and that transaction records the files
in `archive_files`. Only recorded files belong to the archive: a file whose
transaction never committed (a crash, a moved offset, a database outage) is never
read, and `clean()` removes it once it is older than any transaction could take.
So after any crash every counted event is in the archive exactly once.

The first archiving transaction also records when the archive started and a copy of
the counters as they stood (`archive_baseline`): `readrate audit` reports those as
"before the archive" instead of drift.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from operator import itemgetter
from pathlib import Path

from sqlalchemy import Connection, Engine, delete, func, insert, select, update

from readrate.events.clock import MS_PER_DAY, day_date, utc_now
from readrate.events.errors import ConfigError, ReadrateError

from .schema import archive_baseline, archive_files, archive_state, article_stats

# An unrecorded file older than this is an orphan: no batch transaction takes anywhere near this long.
ORPHAN_AGE_S = 3600.0
SUFFIX = ".parquet"
PARTIAL = ".partial"
SIDECARS = "_readers"  # the readers index (readers_index.py), derived from the files, beside them
SIDECAR = ".pairs"
COLUMNS = ("stream_id", "shard", "kind", "article_id", "at", "visitor", "rating")
Counted = tuple[bytes, str, int, "bytes | str | None", "float | None"]
COUNTED_FIELDS = 5  # stream id, article, at_ms, visitor or voter, rating


def _arrow():
    """pyarrow and pyarrow.parquet (pyarrow.compute imported too), or a ConfigError saying how to install
    them (the `archive` extra)."""
    try:
        import pyarrow
        import pyarrow.compute
        import pyarrow.parquet
    except ImportError:  # pragma: no cover - the dev and compose installs have it
        raise ConfigError("READRATE_ARCHIVE needs pyarrow: pip install 'readrate[archive]'") from None
    return pyarrow, pyarrow.parquet


def schema():
    pa, _ = _arrow()
    return pa.schema([
        ("stream_id", pa.string()),
        ("shard", pa.int16()),
        ("kind", pa.string()),
        ("article_id", pa.string()),
        ("at", pa.timestamp("ms", tz="UTC")),
        ("visitor", pa.string()),
        ("rating", pa.float64()),
    ])


# Ids that share long prefixes and times that only grow: delta encodings beat dictionaries for them.
WRITE_OPTIONS = {
    "compression": "zstd",
    "compression_level": 3,
    "use_dictionary": ["kind", "article_id", "visitor", "rating", "shard"],
    "column_encoding": {"stream_id": "DELTA_BYTE_ARRAY", "at": "DELTA_BINARY_PACKED"},
}


@dataclass(frozen=True)
class ArchiveFile:
    """One file of a batch: where it is (relative to the archive root) and what it holds."""

    path: str
    day: date
    shard: int
    events: int
    bytes: int
    first_id: str
    last_id: str

    def row(self) -> dict:
        return {"path": self.path, "day": self.day, "shard": self.shard, "events": self.events,
                "bytes": self.bytes, "first_id": self.first_id, "last_id": self.last_id}


def day_folder(day: date) -> str:
    return f"day={day.isoformat()}"


def sidecar(name: str) -> str:
    """Where the readers index keeps the archive file `name`'s reads as numbers (both relative to the root)."""
    return f"{SIDECARS}/{name.removesuffix(SUFFIX)}{SIDECAR}"


class Archive:
    """The archive folder: writes a batch's files, lists and removes them."""

    def __init__(self, root: str | os.PathLike) -> None:
        # Absolute: the root is recorded when archiving starts, and read again from other folders.
        self.root = Path(root).absolute()

    def check(self) -> None:
        """Create the folder if needed; ConfigError if it cannot be written (checked at worker start)."""
        _arrow()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / f".probe-{uuid.uuid4().hex}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise ConfigError(f"READRATE_ARCHIVE={str(self.root)!r} cannot be written: {exc.strerror or exc}") \
                from None

    def write(self, shard: int, counted: Sequence[Counted], kind: str | None = None) -> list[ArchiveFile]:
        """Write `counted` (stream order) as one file per event day; the files, not yet part of the archive.

        Kinds are `read` (no rating) and `vote`; `kind` names them all instead (an operator action)."""
        if not counted:
            return []
        pa, _ = _arrow()
        import pyarrow.compute as pc

        # One column at a time: zip(*counted) over a batch's 20,000 tuples costs ten times as much, all of it
        # holding the GIL the writer's thread needs.
        ids, articles, ats, people, ratings = (list(map(itemgetter(field), counted))
                                               for field in range(COUNTED_FIELDS))
        at = pa.array(ats, pa.int64())
        rating = pa.array(ratings, pa.float64())
        person = pa.array(people, pa.binary()).cast(pa.string())
        table = pa.table([
            pa.array(ids, pa.binary()).cast(pa.string()),
            pa.repeat(pa.scalar(shard, pa.int16()), len(ids)),
            pc.if_else(pc.is_null(rating), "read", "vote") if kind is None else pa.repeat(pa.scalar(kind), len(ids)),
            pa.array(articles, pa.string()),
            at.cast(pa.timestamp("ms", tz="UTC")),
            pc.if_else(pc.equal(person, ""), pa.scalar(None, pa.string()), person),  # "" is no visitor
            rating,
        ], schema=schema())
        days = pc.divide(at, MS_PER_DAY)
        first, last = pc.min_max(days).values()
        if first == last:
            runs = [(first.as_py(), 0, len(table))]
        else:  # several days (an import of old events): grouped by day, stream order kept within each
            order = pc.sort_indices(days)  # stable
            table, days = table.take(order), days.take(order)
            encoded = pc.run_end_encode(days)
            ends = encoded.run_ends.to_pylist()
            runs = [(day, start, stop) for day, start, stop in zip(encoded.values.to_pylist(), [0, *ends[:-1]], ends)]
        files = []
        for day_number, start, stop in runs:
            part = table.slice(start, stop - start)
            day = day_date(day_number)
            first_id, last_id = part.column(0)[0].as_py(), part.column(0)[-1].as_py()
            name = f"{day_folder(day)}/{shard:04d}-{first_id}-{uuid.uuid4().hex[:12]}{SUFFIX}"
            size = self.write_table(part, name)
            files.append(ArchiveFile(name, day, shard, len(part), size, first_id, last_id))
        return files

    def write_table(self, table, name: str) -> int:
        """Write the Arrow `table` as the Parquet file `name` (relative to the root); its size in bytes.

        The file is written durably (fsync) under a temporary name, then renamed: it is whole or
        absent. It is not part of the archive until a transaction records it in `archive_files`.
        `table` should have the archive's schema(); an existing file of that name is replaced."""
        _, pq = _arrow()
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + PARTIAL)
        with open(partial, "wb") as out:
            pq.write_table(table, out, **WRITE_OPTIONS)
            out.flush()
            os.fsync(out.fileno())
            size = out.tell()
        os.replace(partial, path)
        return size

    def remove(self, files: Iterable[ArchiveFile | str]) -> None:
        """Delete files (a batch whose transaction did not commit, or files compaction replaced), with
        their readers-index sidecars."""
        for item in files:
            name = item.path if isinstance(item, ArchiveFile) else item
            for path in (self.root / name, self.root / sidecar(name)):
                try:
                    path.unlink()
                except FileNotFoundError:
                    pass

    def on_disk(self) -> list[tuple[str, float]]:
        """(relative path, modification time) of every archive or partial file under the root (the readers
        index's too); a sidecar is listed under its archive file's name (the two are orphans together)."""
        found = []
        for path in [*self.root.glob("day=*/*"), *(self.root / SIDECARS).glob("*/*")]:
            if path.name.endswith((SUFFIX, PARTIAL, SIDECAR)):
                name = path.relative_to(self.root).as_posix()
                if name.endswith(SIDECAR):
                    name = name.removeprefix(f"{SIDECARS}/").removesuffix(SIDECAR) + SUFFIX
                try:
                    found.append((name, path.stat().st_mtime))
                except FileNotFoundError:  # removed meanwhile (compaction, another clean)
                    pass
        return found

    def clean(self, engine: Engine, *, older_than_s: float = ORPHAN_AGE_S) -> list[str]:
        """Remove files no committed batch names that are older than `older_than_s`; the names removed.

        Listed before the recorded names are read, so a file committed in between is kept."""
        cutoff = time.time() - older_than_s
        candidates = [name for name, mtime in self.on_disk() if mtime < cutoff]
        if not candidates:
            return []
        with engine.connect() as conn:
            recorded = set(recorded_paths(conn))
        orphans = [name for name in candidates if name not in recorded]
        self.remove(orphans)
        return orphans

    def paths(self, names: Iterable[str]) -> list[str]:
        """Absolute paths of recorded files, for a Parquet reader."""
        return [str(self.root / name) for name in names]


def recorded_paths(conn: Connection, *, since: date | None = None, until: date | None = None) -> list[str]:
    """The files committed batches name (the archive), oldest day first; optionally only some days."""
    query = select(archive_files.c.path).order_by(archive_files.c.day, archive_files.c.path)
    return list(conn.scalars(_of_days(query, since, until)))


def recorded_events(conn: Connection, *, since: date | None = None, until: date | None = None) -> int:
    """How many events the committed files of those days hold (the files recorded_paths lists)."""
    return int(conn.scalar(_of_days(select(func.coalesce(func.sum(archive_files.c.events), 0)), since, until)))


def _of_days(query, since: date | None, until: date | None):
    if since is not None:
        query = query.where(archive_files.c.day >= since)
    if until is not None:
        query = query.where(archive_files.c.day < until)
    return query


def started(conn: Connection) -> tuple[object, str] | None:
    """(started_at, root) once archiving has started in this database; None before."""
    row = conn.execute(select(archive_state.c.started_at, archive_state.c.root)).first()
    return None if row is None else (row[0], row[1])


def prepare(engine: Engine, archive_dir: str | None) -> Archive | None:
    """At worker start: the archive to write, checked; ConfigError if this worker would leave events out of it.

    Once an installation archives, every worker must: a worker without READRATE_ARCHIVE would count
    events the archive never sees, and every audit after would report them as drift."""
    with engine.connect() as conn:
        since = started(conn)
    if archive_dir is None:
        if since is not None:
            raise ConfigError(f"this installation has archived every counted event since {since[0]:%Y-%m-%d %H:%M} "
                              f"UTC (into {since[1]}): set READRATE_ARCHIVE on this worker too, or its events "
                              "would be missing from the archive")
        return None
    archive = Archive(archive_dir)
    if since is not None and Path(since[1]) != archive.root:
        raise ConfigError(f"READRATE_ARCHIVE is {str(archive.root)!r} but this installation archives into "
                          f"{since[1]!r}: one archive per installation, so every worker and command must name "
                          "the same folder (mounted at the same path on every host)")
    archive.check()
    archive.clean(engine)
    return archive


class ArchiveRequired(ConfigError):
    """Raised in a batch transaction of a drainer without the archive once the installation archives."""


def check_required(conn: Connection) -> None:
    """In a batch without the archive: refuse once archiving has started (a worker started before it was
    switched on, in a rolling deploy); its events wait in Redis for workers that archive them."""
    since = started(conn)
    if since is not None:
        raise ArchiveRequired(f"this installation archives every counted event (into {since[1]}) since "
                              f"{since[0]:%Y-%m-%d %H:%M} UTC; this worker has no READRATE_ARCHIVE: restart it "
                              "with READRATE_ARCHIVE set (its events wait in Redis meanwhile)")


class ArchiveDamaged(ReadrateError):
    """Raised when files the archive records are missing from its folder."""


def check_present(archive: Archive, names: list[str]) -> None:
    """ArchiveDamaged naming the recorded files that are not on disk (deleted by hand, another folder)."""
    missing = [name for name in names if not (archive.root / name).is_file()]
    if missing:
        raise ArchiveDamaged(f"{len(missing):,} of the {len(names):,} files the archive records are missing from "
                             f"{archive.root}, e.g. {missing[0]}: restore them from a backup, or check "
                             "READRATE_ARCHIVE names the archive's folder")


# -- compaction and retention ---------------------------------------------------------------------

MERGED_SHARD = -1  # archive_files.shard of a merged file, which holds several shards' events


@dataclass(frozen=True)
class Compacted:
    day: date
    files: int
    events: int
    bytes_before: int
    bytes_after: int


def days_to_compact(conn: Connection, *, day: date | None = None) -> list[date]:
    """Days with more than one recorded file (or just `day`), oldest first."""
    query = select(archive_files.c.day).group_by(archive_files.c.day).having(func.count() > 1) \
        .order_by(archive_files.c.day)
    if day is not None:
        query = query.where(archive_files.c.day == day)
    return [_as_date(d) for d in conn.scalars(query)]


def _as_date(value) -> date:
    return date.fromisoformat(value) if isinstance(value, str) else value


def compact_day(engine: Engine, archive: Archive, day: date) -> Compacted | None:
    """Merge one day's recorded files into one, safely while workers write new ones.

    The merged file is written first; one transaction then swaps the rows (only if every
    merged file is still recorded: a concurrent compaction makes this one back off); the
    old files are deleted after the commit. Readers see the old files or the new one."""
    pa, pq = _arrow()
    with engine.connect() as conn:
        rows = conn.execute(select(archive_files).where(archive_files.c.day == day)).mappings().all()
    if len(rows) < 2:
        return None
    # Stream order per shard: files of one shard by their first stream id, then shard by shard.
    rows = sorted(rows, key=lambda r: (r["shard"], _id_order(r["first_id"]), r["path"]))
    table = pa.concat_tables([pq.read_table(archive.root / r["path"], schema=schema()) for r in rows])
    name = f"{day_folder(day)}/merged-{uuid.uuid4().hex[:12]}{SUFFIX}"
    size = archive.write_table(table, name)
    merged = ArchiveFile(name, day, MERGED_SHARD, len(table), size, "", "")
    paths = [r["path"] for r in rows]
    try:
        with engine.begin() as conn:
            gone = conn.execute(delete(archive_files).where(archive_files.c.path.in_(paths))).rowcount
            if gone != len(paths):
                raise _Raced()
            conn.execute(insert(archive_files), [{**merged.row(), "committed_at": utc_now()}])
    except _Raced:
        archive.remove([merged])
        return None
    # (On any other error it is unknown whether the swap committed: both stay, clean() removes the unrecorded.)
    archive.remove(paths)
    return Compacted(day, len(rows), len(table), sum(r["bytes"] for r in rows), size)


class _Raced(Exception):
    """Another compaction swapped some of these files first."""


def _id_order(stream_id: str) -> tuple[int, int]:
    if not stream_id:
        return (0, 0)
    ms, _, seq = stream_id.partition("-")
    return (int(ms), int(seq or 0))


def prune(engine: Engine, archive: Archive, before: date) -> tuple[int, int]:
    """Drop the archive's days before `before`: (files, events) removed.

    What the pruned events counted can no longer be recomputed: their articles join the
    baseline (audit reports them as "before the archive") and the archive's start moves to `before`.
    The readers index still names visitors of the pruned days: call readers_index.prune_archive, which
    drops it too, rather than this."""
    with engine.connect() as conn:
        rows = conn.execute(select(archive_files.c.path, archive_files.c.events)
                            .where(archive_files.c.day < before)).all()
    if not rows:
        return 0, 0
    paths = [path for path, _ in rows]
    articles = _articles_in(archive, paths)
    begins = datetime(before.year, before.month, before.day)
    columns = [article_stats.c[name] for name in ("article_id", "reads", "votes", "rating_sum")]
    with engine.begin() as conn:
        conn.execute(delete(archive_files).where(archive_files.c.path.in_(paths)))
        fresh = sorted(articles - set(conn.scalars(select(archive_baseline.c.article_id))))
        for start in range(0, len(fresh), 500):
            stats = conn.execute(select(*columns).where(article_stats.c.article_id.in_(fresh[start:start + 500])))
            baseline = [dict(row._mapping) for row in stats]
            if baseline:
                conn.execute(insert(archive_baseline), baseline)
        conn.execute(update(archive_state).where(archive_state.c.started_at < begins).values(started_at=begins))
    archive.remove(paths)
    return len(rows), sum(n for _, n in rows)


def _articles_in(archive: Archive, names: list[str]) -> set[str]:
    _, pq = _arrow()
    found: set[str] = set()
    for name in names:
        column = pq.read_table(archive.root / name, columns=["article_id"]).column(0)
        found.update(column.unique().to_pylist())
    return found
