"""Helpers for tests that run real `readrate` processes and read real counters."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from redis import Redis
from sqlalchemy import Engine, select

from readrate.events.emitter import Emitter
from readrate.events.installation import read_record
from readrate.events.model import Read, Vote
from readrate.events.settings import Settings
from readrate.workers.drain import Drainer
from readrate.workers.schema import article_stats

READRATE = [sys.executable, "-m", "readrate.reports"]


def install(redis: Redis, settings: Settings, installation_id: str | None = None) -> Settings:
    """Publish an installation record seeded from `settings` in Redis (as a worker would); the adopted settings.

    For tests of producers alone, with no database: workers create the record in the database too.
    """
    import uuid

    from readrate.events.installation import publish

    publish(redis, settings.keys, settings.seed(installation_id or f"test-{uuid.uuid4().hex[:8]}"))
    return settings.adopt(read_record(redis, settings.keys))


def env_for(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment a `readrate` process needs to use `settings`."""
    return {
        **os.environ,
        "REDIS_URL": settings.redis_url,
        "DATABASE_URL": settings.database_url,
        "READRATE_PREFIX": settings.prefix,
        "READRATE_SHARDS": str(settings.shards),
        "READRATE_RATING_SCALE": str(settings.rating_scale),
        "READRATE_LEASE_MS": str(settings.lease_ms),
        "READRATE_BATCH_SIZE": str(settings.batch_size),
        **extra,
    }


def run_cli(settings: Settings, *args: str, input: str | None = None, timeout: float = 300,
            **extra_env: str) -> subprocess.CompletedProcess:
    """Run `readrate ARGS` as a real process; returns the completed process (text stdout/stderr)."""
    return subprocess.run([*READRATE, *args], env=env_for(settings, **extra_env), input=input,
                          capture_output=True, text=True, timeout=timeout)


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
    if process.poll() is None:
        process.send_signal(sig)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def wait_until(condition: Callable[[], object], timeout: float = 60, interval: float = 0.05,
               message: str = "condition") -> object:
    """Poll `condition` until it returns something truthy; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        time.sleep(interval)


def counters(engine: Engine) -> dict[str, tuple[int, int, float]]:
    """article_id -> (reads, votes, rating_sum) as the database holds them."""
    with engine.connect() as conn:
        rows = conn.execute(select(article_stats.c.article_id, article_stats.c.reads, article_stats.c.votes,
                                   article_stats.c.rating_sum))
        return {r.article_id: (int(r.reads), int(r.votes), float(r.rating_sum)) for r in rows}


# -- helpers for the integration tests (pipeline, crash, dead letters, worker) -------------------

from collections import Counter  # noqa: E402  (this section was appended; see above)
from datetime import datetime as _datetime, timedelta as _timedelta  # noqa: E402

MS_PER_HOUR = 3_600_000
MS_PER_DAY = 86_400_000
_EPOCH = _datetime(1970, 1, 1)


def start_logged_worker(settings: Settings, log_path, *args: str, **extra_env: str) -> subprocess.Popen:
    """Start `readrate worker` with its stderr in `log_path` (a pipe nobody reads could fill and block it)."""
    log = open(log_path, "ab")
    try:
        return subprocess.Popen([*READRATE, "worker", *args], env=env_for(settings, **extra_env),
                                stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    finally:
        log.close()


def kill_hard(process: subprocess.Popen) -> None:
    """SIGKILL a worker: no signal handler, no finally block, no clean-up runs."""
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)


def stream_entries(redis, settings: Settings) -> dict[int, list[tuple[str, dict[bytes, bytes]]]]:
    """Every entry still in each shard's stream: shard -> [(stream id, fields)] in stream order."""
    out = {}
    for shard in settings.keys.drained:
        out[shard] = [(i.decode(), f) for i, f in redis.xrange(settings.keys.stream(shard))]
    return out


def backlog(redis, settings: Settings) -> int:
    """Entries left in all of the installation's streams (applied ones are trimmed)."""
    return sum(redis.xlen(settings.keys.stream(s)) for s in settings.keys.drained)


def id_key(stream_id: str) -> tuple[int, int]:
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)


def offsets(engine: Engine) -> dict[int, str]:
    from readrate.workers.schema import stream_offsets

    with engine.connect() as conn:
        rows = conn.execute(select(stream_offsets.c.shard, stream_offsets.c.last_id))
        return {r.shard: r.last_id for r in rows}


def _hour(at_ms: int):
    return _EPOCH + _timedelta(hours=at_ms // MS_PER_HOUR)


def _day(at_ms: int):
    return (_EPOCH + _timedelta(days=at_ms // MS_PER_DAY)).date()


def tally(entries) -> dict[str, dict]:
    """What the database must hold after `entries` (valid wire-format fields, in stream order per shard).

    Written independently of workers.aggregate: plain dict arithmetic on the wire fields. The
    latest event time wins per (article, voter); on equal times the later entry wins.
    """
    reads: Counter = Counter()
    hourly: Counter = Counter()
    daily: Counter = Counter()
    latest: dict[tuple[str, str], tuple[int, float]] = {}
    for fields in entries:
        f = {k.decode(): v.decode() for k, v in fields.items()}
        article, at_ms = f["a"], int(f["t"])
        if f["k"] == "read":
            reads[article] += 1
            hourly[(article, _hour(at_ms))] += 1
            daily[(article, _day(at_ms))] += 1
            continue
        key = (article, f["v"])
        if key not in latest or at_ms >= latest[key][0]:
            latest[key] = (at_ms, float(f["r"]))
    return expected_state(reads, hourly, daily, latest)


def expected_state(reads, hourly, daily, latest) -> dict[str, dict]:
    """The snapshot() shape for reads per article/hour/day and the winning vote per (article, voter)."""
    stats: dict[str, list] = {a: [n, 0, 0.0] for a, n in reads.items()}
    votes_daily: dict = {}
    for (article, _voter), (at_ms, rating) in latest.items():
        row = stats.setdefault(article, [0, 0, 0.0])
        row[1] += 1
        row[2] += rating
        bucket = votes_daily.setdefault((article, _day(at_ms)), [0, 0.0])
        bucket[0] += 1
        bucket[1] += rating
    return {
        "stats": {a: tuple(v) for a, v in stats.items()},
        "hourly": dict(hourly),
        "daily": dict(daily),
        "votes_daily": {k: tuple(v) for k, v in votes_daily.items()},
        "votes": {k: (rating, _EPOCH + _timedelta(milliseconds=at_ms))
                  for k, (at_ms, rating) in latest.items()},
    }


def snapshot(engine: Engine) -> dict[str, dict]:
    """Every counter table as plain dicts (votes_daily rows emptied by moved votes are left out)."""
    from readrate.workers.schema import reads_daily, reads_hourly, votes, votes_daily

    with engine.connect() as conn:
        hourly = {(r.article_id, r.hour): int(r.reads) for r in conn.execute(select(reads_hourly))}
        daily = {(r.article_id, r.day): int(r.reads) for r in conn.execute(select(reads_daily))}
        vdaily_rows = list(conn.execute(select(votes_daily)))
        vote_rows = {(r.article_id, r.voter_id): (float(r.rating), r.voted_at)
                     for r in conn.execute(select(votes))}
    empty = [r for r in vdaily_rows if int(r.votes) == 0]
    # A day a vote moved away from keeps a zero row; its sum must be back to zero too.
    assert all(float(r.rating_sum) == 0.0 for r in empty), empty
    return {
        "stats": {a: (r, v, s) for a, (r, v, s) in counters(engine).items()},
        "hourly": hourly,
        "daily": daily,
        "votes_daily": {(r.article_id, r.day): (int(r.votes), float(r.rating_sum)) for r in vdaily_rows
                        if int(r.votes)},
        "votes": vote_rows,
    }


def assert_same_state(actual: dict[str, dict], expected: dict[str, dict]) -> None:
    """Compare two snapshots table by table, so a failure names the table and a few differing keys."""
    for table in ("stats", "hourly", "daily", "votes_daily", "votes"):
        got, want = actual[table], expected[table]
        if got != want:
            diff = sorted(k for k in got.keys() | want.keys() if got.get(k) != want.get(k))
            detail = [(k, got.get(k), want.get(k)) for k in diff[:5]]
            raise AssertionError(f"{table}: {len(diff)} rows differ (key, database, expected): {detail}")


def wire_fields(event) -> dict[bytes, bytes]:
    """Wire format fields of a Read or Vote, spelled out here rather than taken from events.wire."""
    fields = {b"k": b"vote" if hasattr(event, "rating") else b"read", b"a": event.article_id.encode(),
              b"t": str(event.at_ms).encode()}
    person = getattr(event, "voter", None) or getattr(event, "visitor", None)
    if person is not None:
        fields[b"v"] = person.encode()
    if hasattr(event, "rating"):
        fields[b"r"] = str(event.rating).encode()
    return fields


def tally_events(events) -> dict[str, dict]:
    """tally() of Read/Vote objects in the order they were emitted."""
    return tally(wire_fields(e) for e in events)


def wait_for_state(engine: Engine, expected: dict[str, dict], timeout: float = 120) -> None:
    """Poll until every counter table equals `expected`; on timeout, fail naming what differs."""
    try:
        wait_until(lambda: snapshot(engine) == expected, timeout=timeout, interval=0.2,
                   message="the counters to equal the events emitted")
    except AssertionError:
        assert_same_state(snapshot(engine), expected)
        raise


class RunningWorker:
    """`with RunningWorker(settings, log_path) as worker:` — a `readrate worker` that is always stopped."""

    def __init__(self, settings: Settings, log_path, *args: str, **extra_env: str) -> None:
        self.settings, self.log_path, self.args, self.extra_env = settings, log_path, args, extra_env
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "RunningWorker":
        self.process = start_logged_worker(self.settings, self.log_path, *self.args, **self.extra_env)
        return self

    def __exit__(self, *exc_info) -> None:
        if self.process is not None and self.process.poll() is None:
            stop(self.process)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")


def wait_for_listening_worker(redis, settings: Settings, timeout: float = 120, interval: float = 0.1) -> None:
    """Wait until a worker has registered with RQ on the installation's queue (start-up, migrations done)."""
    from rq import Queue, Worker

    queue = Queue(settings.keys.queue, connection=redis)
    wait_until(lambda: Worker.count(connection=redis, queue=queue) > 0, timeout=timeout, interval=interval,
               message="a readrate worker to listen on its queue")


def applied_entries(emitted: dict, committed: dict[int, str]) -> list[dict[bytes, bytes]]:
    """Fields of the entries at or before each shard's committed offset (what must be counted)."""
    return [fields for shard, entries in emitted.items() for stream_id, fields in entries
            if id_key(stream_id) <= id_key(committed[shard])]


def pending_entries(emitted: dict, committed: dict[int, str]) -> int:
    """How many entries lie after each shard's committed offset (not counted yet)."""
    return sum(1 for shard, entries in emitted.items() for stream_id, _ in entries
               if id_key(stream_id) > id_key(committed[shard]))


class Pipeline:
    """Events through the real pipeline, in-process: Emitter → Redis streams → Drainer → the database."""

    def __init__(self, settings, engine, redis) -> None:
        self.settings, self.engine = settings, engine
        self.emitter = Emitter(redis, keys=settings.keys, scale=settings.rating_scale, strict=True, enqueue=False)
        self.events: list = []

    def read(self, article: str, at: _datetime, visitor: str | None = None) -> None:
        self.events.append(self.emitter.make_read(article, visitor, at))

    def vote(self, article: str, rating, voter: str, at: _datetime) -> None:
        self.events.append(self.emitter.make_vote(article, rating, voter, at))

    def flush(self) -> None:
        """Emit what was queued and drain every shard; every event must be applied, none rejected."""
        assert self.emitter.emit_many(self.events) == len(self.events)
        drained = 0
        with Drainer(self.settings, engine=self.engine, redis=Redis.from_url(self.settings.redis_url)) as drainer:
            for shard in range(self.settings.shards):
                result = drainer.drain(shard)
                assert result.rejected == 0
                drained += result.entries
        assert drained == len(self.events)
        self.events = []


# -- helpers for the archive, rebuild and moderation tests ----------------------------------------

NO_ARCHIVE = {"READRATE_ARCHIVE": ""}


def archive_env(archive: Path | None) -> dict[str, str]:
    """The environment for an archive at `archive` (None: READRATE_ARCHIVE set empty, no archive)."""
    return NO_ARCHIVE if archive is None else {"READRATE_ARCHIVE": str(archive)}


def cli(settings: Settings, *args: str, archive: Path | None = None, expect: int | None = 0
        ) -> subprocess.CompletedProcess:
    """`readrate ARGS` as a real process with the archive at `archive`: no traceback, and exit `expect`
    (None: any exit code)."""
    done = run_cli(settings, *args, timeout=120, **archive_env(archive))
    assert "Traceback" not in done.stderr + done.stdout, done.stderr[-3000:]
    if expect is not None:
        assert done.returncode == expect, (args, done.returncode, done.stdout[-2000:], done.stderr[-3000:])
    return done


def drain(settings: Settings, archive: Path | None, *, batch_size: int | None = None) -> None:
    """`readrate worker --burst`, with the archive at `archive` (None: without READRATE_ARCHIVE)."""
    env = archive_env(archive)
    if batch_size is not None:
        env = {**env, "READRATE_BATCH_SIZE": str(batch_size)}
    done = run_cli(settings, "worker", "--burst", timeout=120, **env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]


def moderate(settings: Settings, *args: str, archive: Path | None = None) -> int:
    """`readrate moderate ARGS --wait`: exit 0 once a worker has applied it; the new operation's id."""
    done = cli(settings, "moderate", *args, "--wait", archive=archive)
    applied = re.search(r"operation (\d+) applied:", done.stderr)
    assert applied, (args, done.stderr[-3000:])
    return int(applied.group(1))


def rows(engine: Engine, table) -> list[tuple]:
    """Every row of `table`, every column, sorted by the primary key."""
    names = [c.name for c in table.columns]
    key = [names.index(c.name) for c in table.primary_key.columns]
    with engine.connect() as conn:
        found = [tuple(r._mapping[n] for n in names) for r in conn.execute(select(table))]
    return sorted(found, key=lambda t: tuple(t[i] for i in key))


def full_state(engine: Engine) -> dict[str, list[tuple]]:
    """Every counter table row by row, every column (votes_daily with no emptied buckets: a rebuild has none,
    and the drain deletes the bucket a re-vote moved a day's last vote out of)."""
    from readrate.workers.rebuild import COUNTER_TABLES

    return {t.name: rows(engine, t) for t in COUNTER_TABLES}


def assert_tables_equal(actual: dict[str, list], expected: dict[str, list]) -> None:
    """Compare full_state() results table by table, naming a few rows only one side has."""
    for table in expected:
        got, want = actual[table], expected[table]
        if got != want:
            extra = [r for r in got if r not in want][:5]
            missing = [r for r in want if r not in got][:5]
            raise AssertionError(f"{table}: {len(got)} rows vs {len(want)} expected; "
                                 f"unexpected {extra}; missing {missing}")


def archived(engine: Engine, root: Path) -> list[tuple]:
    """Every row of the archive's recorded files:
    (shard, stream_id, kind, article_id, at_ms, visitor, rating)."""
    import duckdb

    from readrate.workers.schema import archive_files

    with engine.connect() as conn:
        paths = [str(root / p) for p in conn.scalars(select(archive_files.c.path))]
    if not paths:
        return []
    with duckdb.connect() as duck:
        return duck.execute(
            'SELECT shard, stream_id, kind, article_id, epoch_ms("at"), visitor, rating '
            "FROM read_parquet($paths)", {"paths": paths}).fetchall()


def wire_row(shard: int, stream_id: str, fields: dict[bytes, bytes]) -> tuple:
    """The archived() row one valid stream entry must have, from its wire fields."""
    f = {k.decode(): v.decode() for k, v in fields.items()}
    return (shard, stream_id, f["k"], f["a"], int(f["t"]), f.get("v") or None,
            float(f["r"]) if f["k"] == "vote" else None)


class ModerationModel:
    """What the counters must hold, from events and moderation operations in the order the drain applies them.

    The counting rules in plain Python, knowing nothing of the product's code: reads per (article, hour);
    per (article, voter) the vote with the latest event time, on equal times the later one; a reset or
    unvote removes what is counted; an undo puts back what its target removed, each removed vote unless
    the voter's stored vote is as new or newer.
    """

    def __init__(self) -> None:
        self.seen: set[str] = set()  # articles with an article_stats row (any event ever counted)
        self.reads: Counter = Counter()  # (article, epoch hour) -> reads
        self.votes: dict[tuple[str, str], tuple[int, float]] = {}  # (article, voter) -> (at_ms, rating)
        self.removed: dict[int, tuple[Counter, dict]] = {}  # operation id -> (reads, votes) it removed
        self.restored: dict[int, tuple[int, int]] = {}  # undo id -> (reads, votes) it put back
        self.stood = 0  # removed votes an undo did not put back: the voter had voted as late or later since

    def event(self, e: Read | Vote) -> None:
        self.seen.add(e.article_id)
        if isinstance(e, Read):
            self.reads[(e.article_id, e.at_ms // MS_PER_HOUR)] += 1
            return
        key = (e.article_id, e.voter)
        held = self.votes.get(key)
        if held is None or e.at_ms >= held[0]:
            self.votes[key] = (e.at_ms, float(e.rating))

    def events(self, events) -> None:
        for e in events:
            self.event(e)

    def _remove(self, op: int, reads: Counter, gone_votes: dict) -> None:
        for key in reads:
            del self.reads[key]
        for key in gone_votes:
            del self.votes[key]
        self.removed[op] = (reads, gone_votes)

    def reset(self, op: int, article: str, *, reads: bool = True, votes: bool = True) -> None:
        gone_reads = Counter({k: n for k, n in self.reads.items() if k[0] == article}) if reads else Counter()
        gone_votes = {k: v for k, v in self.votes.items() if k[0] == article} if votes else {}
        self._remove(op, gone_reads, gone_votes)

    def unvote(self, op: int, voter: str, article: str | None = None) -> None:
        gone = {k: v for k, v in self.votes.items() if k[1] == voter and article in (None, k[0])}
        self._remove(op, Counter(), gone)

    def undo(self, op: int, target: int) -> None:
        reads, gone_votes = self.removed.pop(target)
        self.reads.update(reads)
        back = 0
        for key, (at_ms, rating) in gone_votes.items():
            held = self.votes.get(key)
            if held is None or held[0] < at_ms:  # a stored vote as new or newer stands
                self.votes[key] = (at_ms, rating)
                back += 1
            else:
                self.stood += 1
        self.restored[op] = (sum(reads.values()), back)

    def operation(self, op: dict) -> None:
        """Apply a row of the `operations` table (id, action, article_id, voter_id, params as JSON)."""
        params = json.loads(op["params"])
        if op["action"] == "undo":
            self.undo(op["id"], int(params["undoes"]))
        elif op["action"] == "reset":
            self.reset(op["id"], op["article_id"], reads=params.get("reads", True),
                       votes=params.get("votes", True))
        else:
            self.unvote(op["id"], op["voter_id"], op["article_id"])

    def removed_counts(self, op: int) -> tuple[int, int]:
        reads, gone_votes = self.removed[op]
        return sum(reads.values()), len(gone_votes)

    def expected(self) -> dict[str, dict]:
        """In the shape of snapshot(): every article ever counted has its row, at zero if all was removed."""
        reads: Counter = Counter(dict.fromkeys(self.seen, 0))
        hourly: dict = {}
        daily: Counter = Counter()
        for (article, hour), n in self.reads.items():
            at = _EPOCH + _timedelta(hours=hour)
            reads[article] += n
            hourly[(article, at)] = n
            daily[(article, at.date())] += n
        return expected_state(reads, hourly, daily, self.votes)


# -- helpers for the readers tests (rebuild, readers index) -------------------------------------------------


def emit(emitter: Emitter, events) -> None:
    assert emitter.emit_many(events) == len(events)


def iso(at_ms: int) -> str:
    """Epoch ms as a naive UTC ISO time to the minute (a --since/--until value)."""
    return (_EPOCH + _timedelta(milliseconds=at_ms)).isoformat(timespec="minutes")


def top_json(inproc, settings: Settings, *args: str, archive: Path | None = None) -> tuple[list[dict], str]:
    """`readrate report top --format json --limit 0 ARGS` through the `inproc` fixture: (rows, stderr)."""
    out, err = inproc(settings, "report", "top", "--format", "json", "--limit", "0", *args, archive=archive)
    return json.loads(out), err


def reader_events(day0: int) -> list[Read | Vote]:
    """Reads over three days by known visitors (repeat visits), reads without a visitor, a few votes."""
    import random

    rng = random.Random(20240301)
    articles = [f"art-{n}" for n in range(6)]
    events: list[Read | Vote] = []
    for _ in range(600):
        article = rng.choice(articles)
        pool = 5 + 15 * articles.index(article)
        visitor = None if rng.random() < 0.15 else f"vis-{rng.randrange(pool)}"
        events.append(Read(article, day0 + rng.randrange(72 * MS_PER_HOUR), visitor))
    # Ties: tie-x and tie-y have 3 readers and 5 reads each (by article id), tie-z 3 readers and 6 reads.
    for article, visits in (("tie-y", ["p", "q", "r", "p", "q"]), ("tie-x", ["p", "q", "r", "r", "r"]),
                            ("tie-z", ["p", "q", "r", "p", "p", "p"])):
        events += [Read(article, day0 + 20 * MS_PER_HOUR + k * 60_000, v) for k, v in enumerate(visits)]
    events += [Read("anon-only", day0 + h * MS_PER_HOUR, None) for h in (2, 20, 30)]  # reads, no readers
    events += [Vote("art-1", day0 + 7, "vote-a", 4.0), Vote("tie-x", day0 + 8, "vote-b", 2.0),
               Vote("voted-unread", day0 + 20 * MS_PER_HOUR, "vote-c", 5.0)]
    return events


def expected_readers(events, since_ms: int | None = None, until_ms: int | None = None):
    """(readers per article, reads per article, reads without a visitor) in [since, until)."""
    from collections import defaultdict

    seen: dict[str, set] = defaultdict(set)
    reads: dict[str, int] = defaultdict(int)
    anonymous = 0
    for e in events:
        if not isinstance(e, Read):
            continue
        if (since_ms is not None and e.at_ms < since_ms) or (until_ms is not None and e.at_ms >= until_ms):
            continue
        reads[e.article_id] += 1
        if e.visitor is None:
            anonymous += 1
        else:
            seen[e.article_id].add(e.visitor)
    return {a: len(seen.get(a, ())) for a in reads}, dict(reads), anonymous
