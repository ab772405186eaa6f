"""Real `readrate serve` processes for the tests, spoken to over real HTTP.

`collector_server(env, log_path)` starts the collector with the given environment (build it
with `helpers.env_for(settings, **extra)`), waits until GET /healthz answers 200, yields the
base URL (`http://127.0.0.1:PORT`), and stops the server afterwards: SIGTERM, then SIGKILL if
it has not exited within a few seconds. Its stderr goes to `log_path`; a server that does not
come up fails with the tail of that log. `CollectorServer` is the same thing as an object.

`ServerPool` keeps one collector per (configuration, database kind) for a module, each with
a key prefix and a database of its own, created on first use and removed at the end;
`PrivateRedis` is a redis-server a test may stop, pause and start again.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from conftest import create_pg_database, drop_pg_database, pg_url
from helpers import READRATE, env_for, run_cli
from readrate.events.settings import Settings
from readrate.reports.localredis import RedisServer, free_port
from readrate.workers.db import make_engine, upgrade
from readrate.workers.installation import establish
from readrate.workers.writer import ensure_offsets
from redis import Redis
from sqlalchemy import Engine

HOST = "127.0.0.1"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
# free_port() can race with another process taking the port before the server binds it.
PORT_ATTEMPTS = 3


class CollectorServer:
    """One `readrate serve --host 127.0.0.1 --port PORT [ARGS]` process."""

    def __init__(self, env: Mapping[str, str], log_path: Path, *args: str) -> None:
        self.env = dict(env)
        self.log_path = Path(log_path)
        self.args = args
        self.port = 0
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self, timeout_s: float = START_TIMEOUT_S) -> CollectorServer:
        for attempt in range(PORT_ATTEMPTS):
            self.port = free_port()
            with open(self.log_path, "ab") as log:
                self.process = subprocess.Popen(
                    [*READRATE, "serve", "--host", HOST, "--port", str(self.port), *self.args],
                    env=self.env, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
            if self._wait_healthy(timeout_s):
                return self
            lost_race = self.process.poll() is not None and "cannot listen" in self.log()
            self.stop()
            if not lost_race or attempt == PORT_ATTEMPTS - 1:
                break
        raise RuntimeError(f"readrate serve did not become healthy on {self.url} within {timeout_s} s; "
                           f"its log ends:\n{self.log()[-3000:]}")

    def _wait_healthy(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        with httpx.Client(timeout=2.0, trust_env=False) as http:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    return False
                try:
                    if http.get(f"{self.url}/healthz").status_code == 200:
                        return True
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)
        return False

    def terminate(self) -> None:
        """Send SIGTERM without waiting (to stop several servers at once; `stop()` then waits)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM, then SIGKILL; the exit code (None if it was never started)."""
        self.terminate()
        process, self.process = self.process, None
        if process is None:
            return None
        try:
            return process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()

    def log(self) -> str:
        try:
            return self.log_path.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


@contextmanager
def collector_server(env: Mapping[str, str], log_path: Path, *args: str) -> Iterator[str]:
    """`with collector_server(env_for(settings, **extra), tmp_path / "serve.log") as url:` — a collector."""
    with CollectorServer(env, log_path, *args) as server:
        yield server.url


def prepare(settings: Settings, redis: Redis) -> tuple[Settings, Engine]:
    """The database migrated and the installation created in it and in Redis, as `readrate db upgrade`
    does; the adopted settings and an engine on the database."""
    engine = make_engine(settings.database_url, create=True)
    upgrade(engine)
    adopted = establish(engine, redis, settings)
    ensure_offsets(engine, adopted.shards)
    return adopted, engine


@dataclass
class Running:
    """A running collector, an HTTP client for it, and what a test needs to check its counts."""

    url: str
    settings: Settings
    engine: Engine
    server: CollectorServer
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=10, trust_env=False))

    def request(self, method: str, path: str, body: object = None, headers: Mapping[str, str] | None = None,
                **kw) -> httpx.Response:
        """One request to `path`: `body` is sent as it is when bytes or an iterator (chunked), else as JSON.

        No cookie from an earlier answer goes with it: tests share a server, never a cookie jar."""
        if body is not None and not isinstance(body, (bytes, Iterator)):
            body = json.dumps(body)
        self.http.cookies.clear()
        return self.http.request(method, f"{self.url}{path}", content=body, headers=headers, **kw)

    def post(self, path: str, body: object, headers: Mapping[str, str] | None = None) -> httpx.Response:
        return self.request("POST", path, body, headers)

    def get(self, path: str, headers: Mapping[str, str] | None = None, **params) -> httpx.Response:
        return self.request("GET", path, headers=headers, params=params or None)

    def drain(self) -> None:
        """Count everything the collector took, with a real `readrate worker --burst` process."""
        result = run_cli(self.settings, "worker", "--burst", timeout=120)
        assert result.returncode == 0, result.stderr

    def close(self) -> None:
        self.http.close()
        self.server.stop()
        self.engine.dispose()


def start_collector(settings: Settings, redis: Redis, env: Mapping[str, str], log_path: Path) -> Running:
    """A collector on a new installation of `settings` (prepared first), with `env` in its environment."""
    settings, engine = prepare(settings, redis)
    try:
        server = CollectorServer(env_for(settings, **env), log_path).start()
    except BaseException:
        engine.dispose()
        raise
    return Running(server.url, settings, engine, server)


class ServerPool:
    """One collector per (configuration, database kind), started on first use and kept until `close()`.

    `configs` maps a configuration's name to its environment (READRATE_VOTER_SECRET, …); `pg_admin`
    is a callable giving the PostgreSQL admin engine, called only when a PostgreSQL server is wanted;
    `seed` are Settings overrides for every installation (e.g. rating_scale="0.5-5/0.5").
    """

    def __init__(self, redis: Redis, redis_url: str, folder: Path, configs: Mapping[str, Mapping[str, str]],
                 pg_admin, **seed: str) -> None:
        self.redis, self.redis_url, self.folder = redis, redis_url, Path(folder)
        self.configs, self.seed = configs, seed
        self._pg_admin, self._admin = pg_admin, None
        self.running: dict[tuple[str, str], Running] = {}
        self.prefixes: list[str] = []
        self.pg_databases: list[str] = []

    def pg_admin(self):
        if self._admin is None:
            self._admin = self._pg_admin()
        return self._admin

    def get(self, config: str, kind: str = "sqlite") -> Running:
        if (config, kind) not in self.running:
            self.running[(config, kind)] = self._start(config, kind)
        return self.running[(config, kind)]

    def _start(self, config: str, kind: str) -> Running:
        if kind == "sqlite":
            database_url = f"sqlite:///{self.folder / f'{config}.db'}"
        else:
            name = create_pg_database(self.pg_admin())
            self.pg_databases.append(name)
            database_url = pg_url(name)
        self.prefixes.append(f"rrt-{uuid.uuid4().hex[:10]}")
        settings = Settings.from_env({}, redis_url=self.redis_url, database_url=database_url,
                                     prefix=self.prefixes[-1], **self.seed)
        log_path = self.folder / f"{config}-{kind}.log"
        return start_collector(settings, self.redis, self.configs[config], log_path)

    def close(self) -> None:
        for running in self.running.values():  # SIGTERM them all first: each takes a moment to stop
            running.server.terminate()
        for running in self.running.values():
            running.close()
        for prefix in self.prefixes:
            keys = list(self.redis.scan_iter(f"*{prefix}*", count=1000))
            if keys:
                self.redis.delete(*keys)
        for name in self.pg_databases:
            drop_pg_database(self.pg_admin(), name)


class PrivateRedis:
    """A redis-server of the test's own (no persistence) that can be stopped, paused and started again."""

    def __init__(self) -> None:
        self.server = RedisServer().start()
        self.port = self.server.port
        self.url = self.server.url

    def stop(self) -> None:
        self.server.stop()

    def restart(self) -> None:
        """Start again on the same port, empty: what a Redis without persistence holds after a restart."""
        self.server = RedisServer(port=self.port).start()

    def pause(self) -> None:
        """SIGSTOP: connections stay open and nothing answers (timeouts, not refusals)."""
        self.server.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.server.process.send_signal(signal.SIGCONT)

    def remove(self) -> None:
        if self.server.process is not None:
            self.resume()
        self.server.stop()
