"""The private resources one bench run uses, and the promise to give every one of them back.

A run gets its own id. Redis is a private `redis-server` started for the run
(AOF every second and noeviction, as docker-compose.yml runs it) unless a URL is
given, in which case every key the run makes carries `rrbench-{run id}` and is
deleted at the end. Databases are SQLite files in a temporary directory and
PostgreSQL databases created for the run and dropped after it. Every process the
run starts is tracked and stopped, whatever happens.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from redis import Redis
from sqlalchemy import create_engine, text

from readrate.events.settings import Settings
from readrate.events.urls import redact
from readrate.reports.localredis import RedisServer, answers

ROOT = Path(__file__).resolve().parent.parent
READRATE = [sys.executable, "-m", "readrate.reports"]
DEFAULT_PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


class Unavailable(Exception):
    """Raised when a resource a measurement needs (PostgreSQL, Redis) cannot be had in this run."""


class Env:
    """Redis, databases and processes for one run; `close()` releases them all."""

    def __init__(self, *, redis_url: str | None = None, pg_admin_url: str | None = None) -> None:
        self.run_id = uuid.uuid4().hex[:8]
        self.workdir = Path(tempfile.mkdtemp(prefix=f"rrbench-{self.run_id}-"))
        self._server: RedisServer | None = None
        self._names = itertools.count(1)
        self._databases: list[str] = []
        self._processes: list[subprocess.Popen] = []
        try:
            self.redis_url = self._redis(redis_url)
        except BaseException:
            shutil.rmtree(self.workdir, ignore_errors=True)
            raise
        self.redis = Redis.from_url(self.redis_url)
        self.pg_admin_url = pg_admin_url or os.environ.get("READRATE_BENCH_PG_URL") or os.environ.get(
            "READRATE_TEST_PG_URL", DEFAULT_PG_ADMIN_URL)
        self.pg_problem = self._probe_pg()

    def _redis(self, url: str | None) -> str:
        if url is None and shutil.which("redis-server") is not None:
            (self.workdir / "redis").mkdir()
            self._server = RedisServer(appendonly=True, appendfsync="everysec",
                                       directory=str(self.workdir / "redis")).start()
            self.redis_where = f"private redis-server started for this run on port {self._server.port}"
            return self._server.url
        # No redis-server to start: fall back to the Redis the rest of readrate would use.
        url = url or os.environ.get("REDIS_URL", DEFAULT_REDIS_URL)
        if not answers(url):
            raise Unavailable(f"no Redis answers at {redact(url)} and no redis-server is installed to start one")
        self.redis_where = f"shared Redis at {redact(url)}, every key prefixed rrbench-{self.run_id}, deleted after"
        return url

    # -- names and settings ---------------------------------------------------------------------

    def prefix(self, name: str) -> str:
        """A key prefix (and RQ queue name) no other run or test uses."""
        return f"rrbench-{self.run_id}-{name}{next(self._names)}"

    def settings(self, name: str, database_url: str, **overrides: object) -> Settings:
        return Settings.from_env({}, redis_url=self.redis_url, database_url=database_url,
                                 prefix=self.prefix(name), **overrides)

    def sqlite_url(self, name: str) -> str:
        return f"sqlite:///{self.workdir / f'{name}-{next(self._names)}.db'}"

    # -- PostgreSQL -----------------------------------------------------------------------------

    def _probe_pg(self) -> str | None:
        try:
            engine = create_engine(self.pg_admin_url, connect_args={"connect_timeout": 3})
            try:
                with engine.connect() as conn:
                    conn.execute(text("SELECT 1"))
            finally:
                engine.dispose()
        except Exception as exc:
            return f"PostgreSQL unreachable at {redact(self.pg_admin_url)} ({type(exc).__name__})"
        return None

    def _admin(self):
        return create_engine(self.pg_admin_url, isolation_level="AUTOCOMMIT")

    def pg_url(self, name: str) -> str:
        """A freshly created, empty PostgreSQL database of this run; raises Unavailable without one."""
        if self.pg_problem:
            raise Unavailable(self.pg_problem)
        database = f"rrbench_{self.run_id}_{name}_{next(self._names)}"
        admin = self._admin()
        try:
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{database}"'))
        finally:
            admin.dispose()
        self._databases.append(database)
        return self.pg_admin_url.rsplit("/", 1)[0] + "/" + database

    def drop_pg(self, url: str) -> None:
        database = url.rsplit("/", 1)[1]
        admin = self._admin()
        try:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        finally:
            admin.dispose()
        if database in self._databases:
            self._databases.remove(database)

    def database_url(self, backend: str, name: str) -> str:
        """A fresh, empty database of `backend` ('sqlite' or 'postgresql')."""
        return self.sqlite_url(name) if backend == "sqlite" else self.pg_url(name)

    def drop_database(self, url: str) -> None:
        if url.startswith("sqlite"):
            path = Path(url.split("///", 1)[1])
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        else:
            self.drop_pg(url)

    # -- processes ------------------------------------------------------------------------------

    def spawn(self, argv: list[str], *, env: dict[str, str], log_name: str) -> subprocess.Popen:
        """Start a process in its own session, stderr to a log in the run's directory; tracked."""
        log = open(self.workdir / f"{log_name}.log", "ab")
        try:
            process = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log,
                                       start_new_session=True)
        finally:
            log.close()
        self._processes.append(process)
        return process

    def spawn_worker(self, settings: Settings, *args: str, name: str) -> subprocess.Popen:
        """A real `readrate worker` process for `settings`."""
        return self.spawn([*READRATE, "worker", "--name", f"{settings.prefix}-{name}", *args],
                          env=env_for(settings), log_name=f"{settings.prefix}-{name}")

    def wait_registered(self, settings: Settings, count: int, *processes: subprocess.Popen,
                        timeout_s: float = 60) -> None:
        """Wait until `count` RQ workers are registered on the settings' queue (they are ready for jobs)."""
        key = f"rq:workers:{settings.keys.queue}"
        deadline = time.monotonic() + timeout_s
        while self.redis.scard(key) < count:
            dead = [p for p in processes if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                raise RuntimeError(f"{count} worker(s) on {settings.keys.queue} did not come up "
                                   f"({len(dead)} exited); logs in {self.workdir}")
            time.sleep(0.05)

    def log_of(self, log_name: str) -> str:
        path = self.workdir / f"{log_name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self, process: subprocess.Popen, timeout_s: float = 30, *, signalled: bool = False) -> int:
        """SIGTERM the process (and its session's group, which it leads), then SIGKILL if it lingers.

        One SIGTERM only: a second one can land while the interpreter is finalizing, with Python's
        handlers already gone, and kill a worker that was shutting down cleanly.
        """
        if process.poll() is None:
            if not signalled:
                _signal_group(process, signal.SIGTERM)
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait()
        if process in self._processes:
            self._processes.remove(process)
        return process.returncode

    def stop_all(self, processes: list[subprocess.Popen], timeout_s: float = 30) -> list[int]:
        """Stop several processes (SIGTERM to all first, so their shutdowns overlap); their exit codes."""
        running = [p for p in processes if p.poll() is None]
        for process in running:
            _signal_group(process, signal.SIGTERM)
        return [self.stop(p, timeout_s, signalled=p in running) for p in processes]

    def forget(self, process: subprocess.Popen) -> None:
        """Stop tracking a process that has exited and been reaped."""
        if process in self._processes:
            self._processes.remove(process)

    # -- Redis keys -----------------------------------------------------------------------------

    def clear(self, pattern_part: str) -> int:
        """Delete every key whose name contains `pattern_part` (a prefix of this run)."""
        keys = list(self.redis.scan_iter(f"*{pattern_part}*", count=5000))
        for start in range(0, len(keys), 5000):
            self.redis.delete(*keys[start:start + 5000])
        return len(keys)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stop_all(list(self._processes), timeout_s=10)
        for database in list(self._databases):
            with contextlib.suppress(Exception):
                self.drop_pg(self.pg_admin_url.rsplit("/", 1)[0] + "/" + database)
        with contextlib.suppress(Exception):
            self.clear(f"rrbench-{self.run_id}")
        with contextlib.suppress(Exception):
            self.redis.close()
        if self._server is not None:
            self._server.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Env:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    # The process leads its own session (start_new_session), so its group id is its pid: this reaches
    # exactly the process we started and anything it started, nothing else.
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass


def python_env(**extra: str) -> dict[str, str]:
    """This process's environment with the project root on PYTHONPATH (bench/ is not installed)."""
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{path}" if path else str(ROOT), **extra}


def env_for(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment a `readrate` (or naive worker) process needs to use `settings`."""
    return python_env(
        REDIS_URL=settings.redis_url,
        DATABASE_URL=settings.database_url,
        READRATE_PREFIX=settings.prefix,
        READRATE_SHARDS=str(settings.shards),
        READRATE_RATING_SCALE=str(settings.rating_scale),
        READRATE_LEASE_MS=str(settings.lease_ms),
        READRATE_BATCH_SIZE=str(settings.batch_size),
        **extra,
    )
