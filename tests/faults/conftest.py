"""Fixtures of the fault suite: private servers to crash and stop, and settings that make many batches.

Every server, process and directory a fixture starts is stopped and removed by
its finalizer, whatever the test did to it (a killed Redis, a stopped cluster).
"""

from __future__ import annotations

from dataclasses import replace

import shutil
import tempfile
import uuid

import pytest
from redis import Redis

from conftest import REDIS_URL
from readrate.events.settings import Settings
from readrate.reports.localredis import RedisServer
from readrate.workers.db import make_engine, upgrade
from readrate.workers.installation import establish
from readrate.workers.writer import ensure_offsets

from servers import PgCluster, pg_available


@pytest.fixture
def pg_cluster():
    """A private PostgreSQL cluster, running; tests may stop and start it."""
    if not pg_available():
        pytest.skip("PostgreSQL server binaries are not installed (READRATE_TEST_PG_BIN)")
    cluster = PgCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


class RestartableRedis:
    """A private redis-server with `appendonly yes` and `appendfsync always` that can crash and come back."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="readrate-redis-aof-")
        self.server = RedisServer(appendonly=True, appendfsync="always", directory=self.dir).start()
        self.port = self.server.port

    @property
    def url(self) -> str:
        return self.server.url

    def crash(self) -> None:
        self.server.kill()

    def restart(self) -> None:
        self.server = RedisServer(port=self.port, appendonly=True, appendfsync="always",
                                  directory=self.dir).start()

    def remove(self) -> None:
        try:
            self.server.stop(keep_dir=True)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def aof_redis():
    server = RestartableRedis()
    try:
        yield server
    finally:
        server.remove()


def fault_settings(database_url: str, *, redis_url: str = REDIS_URL, prefix: str | None = None,
                   **changes) -> Settings:
    """Settings with a private prefix; tests pass small batch sizes and leases for many batches."""
    settings = Settings.from_env({}, redis_url=redis_url, database_url=database_url,
                                 prefix=prefix or f"rrf-{uuid.uuid4().hex[:10]}")
    return replace(settings, **changes) if changes else settings


def prepared_engine(settings: Settings):
    """An engine on the settings' database with migrations applied and the installation created (in the
    database and in Redis, as `readrate db upgrade` does), so pages can emit before any worker starts."""
    engine = make_engine(settings.database_url, create=True)
    upgrade(engine)
    redis = Redis.from_url(settings.redis_url)
    try:
        establish(engine, redis, settings)
    finally:
        redis.close()
    ensure_offsets(engine, settings.shards)
    return engine


def delete_keys(redis: Redis, prefix: str) -> None:
    keys = list(redis.scan_iter(f"*{prefix}*", count=1000))
    for start in range(0, len(keys), 1000):
        redis.delete(*keys[start:start + 1000])
