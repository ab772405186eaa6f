"""No secret is ever printed: every `readrate` command (found by walking click's command tree, as
test_cli_errors does), run as a real process with passwords in REDIS_URL, READRATE_QUEUE_URL and
DATABASE_URL, right and wrong, never shows one on stdout, on stderr (run with -vv, so every log line
counts) or in the log the demo's workers write. A password Redis refuses is an authentication
failure, exit 3, and the demo then starts no Redis in its place.

Redis with a password is a redis-server of this module's own (`--requirepass`); PostgreSQL (trust
auth) takes any password, so there a right password is one the server ignores.
"""

from __future__ import annotations

import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from redis import Redis
from sqlalchemy import insert
from sqlalchemy.engine import make_url

from conftest import REDIS_URL, create_pg_database, drop_pg_database, pg_url
from helpers import READRATE, stop, wait_for_listening_worker, wait_until
from readrate.events.settings import Settings
from readrate.reports.localredis import RedisServer
from readrate.workers.db import make_engine, upgrade
from readrate.workers.installation import establish
from readrate.workers.schema import archive_state, operations

from .test_cli_errors import COMMANDS, arguments

REDIS_PASSWORD = "S3cretRedisPw"
WRONG_REDIS_PASSWORD = "N0tTheRedisPw"
QUEUE_PASSWORD = "S3cretQueuePw"
DB_PASSWORD = "S3cretDbPw"
SECRETS = (REDIS_PASSWORD, WRONG_REDIS_PASSWORD, QUEUE_PASSWORD, DB_PASSWORD)

EVERY = frozenset(name for name, _ in COMMANDS)
# Commands that never touch Redis: with a wrong Redis password they run as with the right one.
DATABASE_ONLY = frozenset({"articles import", "dead list", "dead purge", "report article", "report summary",
                           "report top", "audit", "rebuild", "archive status", "archive compact", "archive prune",
                           "moderate log"})
# A URL that fails the way one already run with every command fails runs only these, which between
# them reach every kind of server (streams, queue, database, the demo's probe) and print every URL,
# so the whole file runs in about a minute on two idle cores.
SAMPLE = frozenset({"config show", "demo", "emit read", "status", "worker"})
# The commands that make a client for RQ's queue (the emitters enqueue drain jobs), and `config show`.
QUEUE_USERS = SAMPLE | {"import"}
REDIS_REFUSED = "Redis authentication failed"


class LockedRedis(RedisServer):
    """A private redis-server that wants REDIS_PASSWORD (RedisServer's start() probes `url`)."""

    def __init__(self) -> None:
        super().__init__()
        self.args += ["--requirepass", REDIS_PASSWORD]

    @property
    def url(self) -> str:
        return self.url_with(REDIS_PASSWORD)

    def url_with(self, password: str, db: int = 0) -> str:
        return f"redis://:{password}@127.0.0.1:{self.port}/{db}"


@pytest.fixture(scope="module")
def locked_redis():
    server = LockedRedis().start()
    yield server
    server.stop()


@pytest.fixture
def new_database(pg_admin):
    """Makes a new PostgreSQL database per call, named by a URL with DB_PASSWORD in it; all dropped after.

    `in_query`: the password as a `?password=` parameter, which SQLAlchemy's own hiding misses.
    """
    names = []

    def make(*, in_query: bool = False) -> str:
        names.append(create_pg_database(pg_admin))
        url = make_url(pg_url(names[-1])).set(drivername="postgresql")
        url = url.update_query_dict({"password": DB_PASSWORD}) if in_query else url.set(password=DB_PASSWORD)
        return url.render_as_string(hide_password=False)

    yield make
    for name in names:
        drop_pg_database(pg_admin, name)


@pytest.fixture
def spy_path(tmp_path):
    """A folder for PATH whose `redis-server` only notes that it was started (and fails)."""
    folder = tmp_path / "spy"
    folder.mkdir()
    spy = folder / "redis-server"
    spy.write_text(f"#!/bin/sh\necho \"$@\" >> {folder / 'started'}\nexit 1\n")
    spy.chmod(0o755)
    return folder


def installed(database_url: str, redis_url: str, prefix: str, archive: Path | None = None) -> str:
    """`database_url` with readrate's tables and an installation, as `readrate db upgrade` leaves it; with
    `archive`, archiving started there and one operation applied (something for `moderate undo 1`)."""
    engine = make_engine(database_url, create=True)
    redis = Redis.from_url(redis_url)
    try:
        upgrade(engine)
        settings = Settings.from_env({}, redis_url=redis_url, database_url=database_url, prefix=prefix)
        establish(engine, redis, settings)
        if archive is not None:
            now = datetime.now(timezone.utc).replace(tzinfo=None)
            with engine.begin() as conn:
                conn.execute(insert(archive_state).values(singleton=1, started_at=now, root=str(archive)))
                # A reads reset of an article no other command touches: `moderate reset article-1` and
                # `moderate unvote` run beside `moderate undo 1`, and an undo waits for later actions on
                # the same counters.
                conn.execute(insert(operations).values(
                    created_at=now, actor="test", action="reset", article_id="article-9", reason="a test",
                    params=json.dumps({"reads": True, "votes": False, "shard": 0}),
                    effect=json.dumps({"article_id": "article-9", "upto": {}}), applied_at=now))
    finally:
        redis.close()
        engine.dispose()
    return database_url


def shared_redis_with(password: str, query: str = "") -> str:
    """The shared Redis's URL (that Redis has no password) with `password` in it."""
    parts = urlsplit(REDIS_URL)
    return f"redis://:{password}@{parts.hostname}:{parts.port or 6379}{parts.path or '/0'}{query}"


# -- every command, with passwords right and wrong --------------------------------------------------

# case: (the commands it runs, the ones that must fail, what a failure must say)
CASES = {
    "right-passwords": (EVERY, frozenset(), None),
    "redis-wrong-password": (EVERY - DATABASE_ONLY, EVERY - DATABASE_ONLY, REDIS_REFUSED),
    # The shared Redis has no password. Over RESP2 redis-py sends `AUTH password`, which such a
    # server refuses; over RESP3 (redis-py's default) it sends `HELLO 3 AUTH default password`, which
    # a user without a password ("nopass") accepts whatever the password: commands may then work.
    "shared-redis-refuses-a-password": (SAMPLE, SAMPLE, REDIS_REFUSED),
    # Not the demo: it would run, with its fixed prefix, on the Redis other tests share.
    "shared-redis-takes-any-password": (SAMPLE - {"demo"}, frozenset(), REDIS_REFUSED),
    # Emitters only warn when they cannot enqueue (the sweep will); the demo's worker fails and the demo
    # says so (exit 1), its worker's log says why.
    "queue-wrong-password": (QUEUE_USERS, frozenset({"demo", "status", "worker"}), REDIS_REFUSED),
    "database-missing": (EVERY, EVERY, 'database "nonexistent_db" does not exist'),
    "database-unreachable": (SAMPLE, SAMPLE, "is unreachable"),
}


def environment(case: str, locked: LockedRedis, new_database, prefix: str, tmp: Path) -> dict[str, str]:
    """The variables that make `case`."""
    if case.startswith("database"):
        url = {"database-missing": f"postgresql://postgres:{DB_PASSWORD}@127.0.0.1:5432/nonexistent_db",
               "database-unreachable": f"postgresql://baduser:{DB_PASSWORD}@127.0.0.1:1/x"}[case]
        return {"REDIS_URL": locked.url, "DATABASE_URL": url, "READRATE_DEMO_DATABASE_URL": url}
    if case.startswith("shared"):
        query = "?protocol=2" if case == "shared-redis-refuses-a-password" else ""
        return {"REDIS_URL": shared_redis_with(REDIS_PASSWORD, query),
                "DATABASE_URL": installed(new_database(), REDIS_URL, prefix),
                "READRATE_DEMO_DATABASE_URL": f"sqlite:///{tmp / 'demo.db'}"}
    redis_password = WRONG_REDIS_PASSWORD if case == "redis-wrong-password" else REDIS_PASSWORD
    queue_password = QUEUE_PASSWORD if case == "queue-wrong-password" else REDIS_PASSWORD
    return {"REDIS_URL": locked.url_with(redis_password),
            "READRATE_QUEUE_URL": locked.url_with(queue_password, 1),
            "READRATE_ARCHIVE": str(tmp / "archive"),
            "DATABASE_URL": installed(new_database(), locked.url, prefix, tmp / "archive"),
            "READRATE_DEMO_DATABASE_URL": new_database(in_query=True)}


def command_line(name: str, command, folder: Path) -> list[str]:
    """-vv (every log line shown, so every one checked), the command and arguments it can work with."""
    events = folder / "events.csv"
    events.write_text("kind,article,at,visitor,rating\nread,article-1,1700000000000,v-1,\n")
    titles = folder / "articles.csv"
    titles.write_text("article_id,title\narticle-1,The first article\n")
    given = {"articles import": ["articles", "import", str(titles)],
             "config set": ["config", "set", "rating-scale", "1-5"],
             "archive prune": ["archive", "prune", "--before", "2000-01-01", "--yes"],
             "rebuild": ["rebuild", "--yes"],
             "moderate undo": ["moderate", "undo", "1"]}
    return ["-vv", *(given.get(name) or arguments(name, command, events))]


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*READRATE, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


def shown(done: subprocess.CompletedProcess, cwd: Path) -> str:
    """Everything a command showed: stdout, stderr, and the log of the demo's workers (in its folder)."""
    log = cwd / "readrate-demo-workers.log"
    return done.stdout + done.stderr + (log.read_text(errors="replace") if log.exists() else "")


@pytest.mark.parametrize("case", list(CASES))
def test_every_command_shows_no_password_and_a_refused_one_is_an_authentication_failure(
        case, prefix, locked_redis, new_database, spy_path, tmp_path):
    runs, must_fail, says = CASES[case]
    env = {**os.environ, "READRATE_PREFIX": prefix, "READRATE_QUEUE_URL": "",
           "PATH": f"{spy_path}{os.pathsep}{os.environ['PATH']}",
           **environment(case, locked_redis, new_database, prefix, tmp_path)}
    jobs = []
    for name, command in COMMANDS:
        if name in runs:
            folder = tmp_path / name.replace(" ", "-")
            folder.mkdir()
            jobs.append((name, command_line(name, command, folder), folder))
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda job: (job[0], run(job[1], env, job[2]), job[2]), jobs))

    problems = []
    for name, done, folder in results:
        text = shown(done, folder)
        last = done.stderr.strip().splitlines()[-1:]
        problems += [f"{name}: shows the password {secret}" for secret in SECRETS if secret in text]
        if done.returncode == 0:
            if name in must_fail:
                problems.append(f"{name}: exit 0, but the case must stop it")
        elif says is None or says not in text:
            problems.append(f"{name}: exit {done.returncode} without saying {says!r}: {last}")
        elif done.returncode != (1 if name == "demo" and "a worker exited" in done.stderr else 3):
            problems.append(f"{name}: exit {done.returncode}, not 3: {last}")
    if case == "right-passwords":
        config = next(done.stdout for name, done, _ in results if name == "config show")
        for redacted in (f":***@127.0.0.1:{locked_redis.port}/0", f":***@127.0.0.1:{locked_redis.port}/1",
                         "postgres:***@127.0.0.1"):
            if redacted not in config:
                problems.append(f"config show: does not name {redacted!r} (the URL, password hidden)")
    assert problems == []
    assert not (spy_path / "started").exists(), "the demo started a redis-server of its own"


def test_a_running_worker_and_status_name_their_servers_without_the_passwords(
        prefix, locked_redis, new_database, tmp_path):
    env = {**os.environ, "READRATE_PREFIX": prefix, "REDIS_URL": locked_redis.url,
           "READRATE_QUEUE_URL": locked_redis.url_with(REDIS_PASSWORD, 1),
           "DATABASE_URL": new_database(in_query=True)}
    log_path = tmp_path / "worker.log"
    with open(log_path, "wb") as log:
        worker = subprocess.Popen([*READRATE, "-v", "worker", "--name", f"{prefix}-w"], env=env, cwd=tmp_path,
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    queue = Redis.from_url(locked_redis.url_with(REDIS_PASSWORD, 1))
    try:
        wait_until(lambda: "readrate worker: draining" in log_path.read_text() or worker.poll() is not None,
                   timeout=60, message="the worker's start line")
        assert worker.poll() is None, log_path.read_text()
        wait_for_listening_worker(queue, Settings.from_env({}, prefix=prefix), timeout=60)
        status = run(["-vv", "status"], env, tmp_path)
    finally:
        stop(worker)
        queue.close()

    said = log_path.read_text(errors="replace")
    start_line = next(line for line in said.splitlines() if "readrate worker: draining" in line)
    assert "?password=***" in start_line
    assert status.returncode == 0, status.stderr
    assert f"{prefix}-w" in status.stdout
    assert [secret for secret in SECRETS if secret in said + status.stdout + status.stderr] == []


@pytest.mark.parametrize("url", [
    f"postgresql://postgres:Pa@{DB_PASSWORD}@127.0.0.1:5432/x",  # SQLAlchemy ends the password at the first @
    f"sqlite://:{DB_PASSWORD}@rr.db",  # two slashes: a host, and no file
])
def test_a_database_url_that_would_show_part_of_itself_as_a_host_is_refused_without_the_password(
        url, prefix, tmp_path):
    env = {**os.environ, "READRATE_PREFIX": prefix, "DATABASE_URL": url}

    done = run(["-vv", "report", "top"], env, tmp_path)

    assert done.returncode == 2, done.stderr
    assert "Error: database URL" in done.stderr
    assert DB_PASSWORD not in done.stdout + done.stderr
