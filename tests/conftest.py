"""Shared fixtures: a private key prefix on the shared Redis, a fresh database per test
(SQLite file or a new PostgreSQL database), and helpers to run real `readrate` processes.

The folder a test lives in is its lane, and marks it: `unit` (in-process, fast: `make
check`), `integration` (real readrate processes, real data sets), `faults` (crashes,
outages, bad input: `make faults`). `make test` runs all three.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from redis import Redis
from sqlalchemy import create_engine, text

from readrate.events.settings import Settings
from readrate.workers.db import make_engine, upgrade
from readrate.workers.installation import establish
from readrate.workers.writer import ensure_offsets
from servers import Servers

REDIS_URL = os.environ.get("READRATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PG_ADMIN_URL = os.environ.get("READRATE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


LANES = ("unit", "integration", "faults")
TESTS = Path(__file__).parent
_servers = Servers()


def pytest_configure(config):
    """Use the Redis and PostgreSQL at the test URLs, or start private ones when none answers there."""
    global REDIS_URL, PG_ADMIN_URL
    try:
        REDIS_URL, PG_ADMIN_URL = _servers.ensure(REDIS_URL, PG_ADMIN_URL)
    except RuntimeError as exc:
        pytest.exit(f"cannot run the tests: {exc}", returncode=3)
    # Child processes (readrate commands, the benchmark) read them from the environment.
    os.environ["READRATE_TEST_REDIS_URL"], os.environ["READRATE_TEST_PG_URL"] = REDIS_URL, PG_ADMIN_URL


def pytest_unconfigure(config):
    _servers.stop()


def pytest_collection_modifyitems(config, items):
    for item in items:
        lane = item.path.relative_to(TESTS).parts[0]
        if lane in LANES:
            item.add_marker(lane)


def pg_url(name: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


@pytest.fixture
def prefix(redis):
    """A key prefix (and RQ queue name) of this test's own; its keys are deleted afterwards."""
    value = f"rrt-{uuid.uuid4().hex[:10]}"
    yield value
    keys = list(redis.scan_iter(f"*{value}*", count=1000))
    if keys:
        redis.delete(*keys)


@pytest.fixture(scope="session")
def redis():
    client = Redis.from_url(REDIS_URL)
    client.ping()
    yield client
    client.close()


@pytest.fixture(scope="session")
def pg_admin():
    engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


def create_pg_database(pg_admin) -> str:
    name = f"rrt_{uuid.uuid4().hex[:12]}"
    with pg_admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    return name


def drop_pg_database(pg_admin, name: str) -> None:
    with pg_admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """An empty database of each kind; PostgreSQL ones are created for the test and dropped after."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'readrate.db'}"
        return
    admin = request.getfixturevalue("pg_admin")
    name = create_pg_database(admin)
    yield pg_url(name)
    drop_pg_database(admin, name)


@pytest.fixture
def pg_database_url(request):
    """A new, empty database on the shared PostgreSQL server, dropped afterwards."""
    admin = request.getfixturevalue("pg_admin")
    name = create_pg_database(admin)
    try:
        yield pg_url(name)
    finally:
        drop_pg_database(admin, name)


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'readrate.db'}"


@pytest.fixture
def settings(prefix, database_url):
    return Settings.from_env({}, redis_url=REDIS_URL, database_url=database_url, prefix=prefix)


@pytest.fixture
def engine(settings, redis):
    """The test database with migrations applied, the installation created (in the database and in Redis,
    as `readrate db upgrade` does: pages can emit before any worker runs) and offset rows made."""
    engine = make_engine(settings.database_url, create=True)
    upgrade(engine)
    establish(engine, redis, settings)
    ensure_offsets(engine, settings.shards)
    yield engine
    engine.dispose()
