"""Faults: the bad-input catalogue, each case written raw into a stream as a careless producer would.

Each case is XADDed between two valid events of its shard (a read before, a vote
after), by hand as `redis-cli` or a PHP page could, without ringing the doorbell:
the running worker's sweep finds it. In every case the bad entry becomes a
dead-letter row with its reason, both neighbours are counted, and the worker is
still running. SQL-looking article ids are valid: stored verbatim and harmless.
One worker per database serves the whole module.
"""

from __future__ import annotations

import json
import re
import time
import uuid
import zlib
from dataclasses import dataclass

import pytest
from redis import Redis
from sqlalchemy import inspect, select

from conftest import create_pg_database, drop_pg_database, pg_url
from readrate.events.settings import Settings
from helpers import RunningWorker, wait_until
from readrate.workers.schema import article_stats, rejected_events, votes

from .conftest import REDIS_URL, delete_keys, prepared_engine


MB = 1 << 20
TEN_DAYS_MS = 10 * 86_400_000
SCALE = re.escape("accepted: 1, 2, 3, 4, 5")
BIDI = re.escape("accepted: text without bidi-override characters (U+202A-U+202E, U+2066-U+2069)")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class Catalogue:
    settings: Settings
    engine: object
    redis: Redis
    worker: RunningWorker


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def catalogue(request, tmp_path_factory):
    """A database of its own and one running worker for every case of the module."""
    redis = Redis.from_url(REDIS_URL)
    database = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('catalogue') / 'readrate.db'}"
    else:
        admin = request.getfixturevalue("pg_admin")
        database = create_pg_database(admin)
        url = pg_url(database)
    settings = Settings.from_env({}, redis_url=REDIS_URL, database_url=url, prefix=f"rrc-{uuid.uuid4().hex[:10]}")
    engine = prepared_engine(settings)
    worker = RunningWorker(settings, tmp_path_factory.mktemp("catalogue-log") / "worker.log")
    try:
        with worker:
            yield Catalogue(settings, engine, redis, worker)
        assert worker.process.returncode == 0, worker.log()
    finally:
        engine.dispose()
        delete_keys(redis, settings.prefix)
        redis.close()
        if database is not None:
            drop_pg_database(request.getfixturevalue("pg_admin"), database)


def neighbour(settings: Settings, shard: int, tag: str) -> str:
    """A fresh valid article id that lands on `shard`."""
    for n in range(10_000):
        candidate = f"ok-{tag}-{uuid.uuid4().hex[:8]}-{n}"
        if settings.keys.shard_of(candidate) == shard:
            return candidate
    raise AssertionError("no article id found for the shard")


def counted(engine, article_id: str) -> tuple[int, int]:
    with engine.connect() as conn:
        row = conn.execute(select(article_stats.c.reads, article_stats.c.votes)
                           .where(article_stats.c.article_id == article_id)).first()
    return (int(row.reads), int(row.votes)) if row else (0, 0)


def dead_letter(engine, shard: int, stream_id: str):
    with engine.connect() as conn:
        return conn.execute(select(rejected_events).where(rejected_events.c.shard == shard,
                                                          rejected_events.c.stream_id == stream_id)).first()


def read(article: bytes | str, at: object = None, **more: bytes | str) -> dict:
    return {"k": "read", "a": article, "t": str(now_ms() - 60_000) if at is None else at, **more}


def vote(rating: bytes | str, **more: bytes | str) -> dict:
    return {"k": "vote", "a": "article-rated", "t": str(now_ms() - 60_000), "v": "voter-1", "r": rating, **more}


CASES = [
    pytest.param({"k": "read", "a": "article-1"}, r"field 't' is missing", id="missing-time"),
    pytest.param({"k": "read", "t": "1700000000000"}, r"field 'a' is missing", id="missing-article"),
    pytest.param({"a": "article-1", "t": "1700000000000"}, r"field 'k' is missing", id="missing-kind"),
    pytest.param({"k": "vote", "a": "article-1", "t": "1700000000000", "r": "4"},
                 r"voter \(field 'v'\) is required for a vote", id="vote-without-voter"),
    pytest.param({"k": "vote", "a": "article-1", "t": "1700000000000", "v": "voter-1"},
                 r"field 'r' is missing", id="vote-without-rating"),
    pytest.param(read("article-1", x="1"), r"unknown field 'x'; accepted: k, a, t, v, r", id="unknown-field"),
    pytest.param({"k": "like", "a": "article-1", "t": "1700000000000"},
                 r"kind 'like' is unknown; accepted: read, vote", id="unknown-kind"),
    pytest.param(vote("0"), rf"rating '0' is not on the scale 1-5; {SCALE}", id="rating-0"),
    pytest.param(vote("6"), rf"rating '6' is not on the scale 1-5; {SCALE}", id="rating-6"),
    pytest.param(vote("4.3"), rf"rating '4.3' is not on the scale 1-5; {SCALE}", id="rating-4.3-on-whole-stars"),
    pytest.param(vote("abc"), rf"rating 'abc' is not a decimal number; {SCALE}", id="rating-abc"),
    pytest.param(vote("NaN"), rf"rating 'NaN' is not a decimal number; {SCALE}", id="rating-NaN"),
    pytest.param(vote("inf"), rf"rating 'inf' is not a decimal number; {SCALE}", id="rating-inf"),
    pytest.param(read("a-read", r="3"), r"a read carries no rating; field 'r' is for votes", id="read-with-rating"),
    pytest.param(read(""), r"article id is empty; accepted: 1-128 characters", id="empty-article-id"),
    pytest.param(read("x" * 129), r"article id 'x{40}…' is 129 characters; accepted: 1-128",
                 id="129-character-article-id"),
    pytest.param(read("news\x00today"), r"article id 'news\\x00today' contains a control character",
                 id="nul-in-article-id"),
    pytest.param(read("news\x1b[31mtoday"), r"article id 'news\\x1b\[31mtoday' contains a control character",
                 id="escape-in-article-id"),
    pytest.param(read("news\u202etoday"), rf"article id 'news\\u202etoday' contains the bidi-override character "
                 rf"'\\u202e'; {BIDI}", id="bidi-override-in-article-id"),
    pytest.param(read("article-1", v="v\u2066"), rf"visitor 'v\\u2066' contains the bidi-override character "
                 rf"'\\u2066'; {BIDI}", id="bidi-isolate-in-visitor"),
    pytest.param(vote("4", v="u\u202b"), rf"voter 'u\\u202b' contains the bidi-override character "
                 rf"'\\u202b'; {BIDI}", id="bidi-embedding-in-voter"),
    pytest.param(read(b"caf\xe9"), r"field 'a' is not valid UTF-8", id="non-utf8-article-id"),
    pytest.param(read("article-1", at=str(now_ms() + TEN_DAYS_MS)),
                 r"event time \d+ is \d+ s in the future; accepted: at most 300 s ahead", id="time-far-in-future"),
    pytest.param(read("article-1", at="-5"),
                 r"event time '-5' is not a non-negative integer of epoch milliseconds", id="time-negative"),
    pytest.param(read("article-1", at="1700000000000.5"),
                 r"event time '1700000000000.5' is not a non-negative integer", id="time-not-an-integer"),
    pytest.param(read("article-1", at="yesterday"),
                 r"event time 'yesterday' is not a non-negative integer", id="time-not-a-number"),
    pytest.param(read("article-1", v="v" * MB), r"field 'v' is 1048576 bytes; no field may exceed 576",
                 id="1-MB-visitor"),
    pytest.param(read("a" * MB), r"field 'a' is 1048576 bytes; no field may exceed 576", id="1-MB-article-id"),
]


@pytest.mark.parametrize("fields, reason", CASES)
def test_a_bad_entry_becomes_a_dead_letter_with_its_reason_and_the_events_around_it_are_counted(
        catalogue, fields, reason):
    settings, redis = catalogue.settings, catalogue.redis
    article = fields.get("a", "")
    shard = zlib.crc32(article if isinstance(article, bytes) else article.encode("utf-8", "surrogateescape")) \
        % settings.shards
    before, after = neighbour(settings, shard, "before"), neighbour(settings, shard, "after")
    stream = settings.keys.stream(shard)
    redis.xadd(stream, read(before))
    bad_id = redis.xadd(stream, fields).decode()
    redis.xadd(stream, vote("4", a=after))

    row = wait_until(lambda: dead_letter(catalogue.engine, shard, bad_id), timeout=60,
                     message=f"a dead letter for {bad_id}")
    assert re.search(reason, row.reason), row.reason
    wait_until(lambda: counted(catalogue.engine, before) == (1, 0) and counted(catalogue.engine, after) == (0, 1),
               timeout=30, message="both valid neighbours to be counted")
    stored = json.loads(row.payload)
    assert len(row.payload) < 8_192, "an oversized field must not be copied whole into the database"
    if any(len(v) > 1024 for v in fields.values()):
        assert stored["_truncated"], stored
    assert catalogue.worker.alive(), catalogue.worker.log()


SQL_LOOKING = ["x'); DROP TABLE votes;--", "1 OR 1=1", "'; DELETE FROM article_stats WHERE ''='",
               "Robert\"); DROP TABLE stream_offsets; --"]


def test_sql_looking_article_ids_and_voters_are_valid_stored_verbatim_and_harmless(catalogue):
    settings, redis, engine = catalogue.settings, catalogue.redis, catalogue.engine
    for article in SQL_LOOKING:
        stream = settings.keys.stream(settings.keys.shard_of(article))
        redis.xadd(stream, read(article))
        redis.xadd(stream, {**vote("5"), "a": article, "v": "voter'); DROP TABLE votes;--"})

    wait_until(lambda: all(counted(engine, a) == (1, 1) for a in SQL_LOOKING), timeout=60,
               message="every SQL-looking article to be counted")
    with engine.connect() as conn:
        tables = set(inspect(conn).get_table_names())
        voters = conn.execute(select(votes.c.article_id, votes.c.voter_id)
                              .where(votes.c.article_id.in_(SQL_LOOKING))).all()
        dead = conn.execute(select(rejected_events.c.id).where(rejected_events.c.payload.like("%DROP TABLE%"))).all()
    assert {"votes", "article_stats", "stream_offsets", "rejected_events"} <= tables
    assert sorted(voters) == sorted((a, "voter'); DROP TABLE votes;--") for a in SQL_LOOKING)
    assert dead == []
    assert catalogue.worker.alive(), catalogue.worker.log()
