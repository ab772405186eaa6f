"""Private servers for the tests: a PostgreSQL cluster of their own, and the servers a run needs.

The fault tests start, stop and crash servers of their own (the shared ones must
never be stopped). `ensure_servers()` makes `make test` work on a fresh machine:
when no Redis or PostgreSQL answers at the test URLs but the server binaries are
installed, it starts private ones for the run; when none is installed, it says how
to get one. PostgreSQL refuses to run as root: the cluster's directory belongs to
the `postgres` user and every server command runs as that user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from readrate.reports.localredis import RedisServer, answers, free_port

PG_USER = "postgres"


def _pg_bin() -> Path:
    """Where initdb and pg_ctl are: READRATE_TEST_PG_BIN, Debian's newest /usr/lib/postgresql/N/bin, or PATH."""
    if os.environ.get("READRATE_TEST_PG_BIN"):
        return Path(os.environ["READRATE_TEST_PG_BIN"])
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if debian:
        return debian[-1].parent
    found = shutil.which("initdb")
    return Path(found).parent if found else Path("/usr/lib/postgresql/bin")


PG_BIN = _pg_bin()
HOW_TO_GET_POSTGRES = ("no PostgreSQL answers at {url} and no PostgreSQL server is installed (initdb). Start one, "
                       "install it (`apt-get install postgresql`, `brew install postgresql`), or set "
                       "READRATE_TEST_PG_URL to one that runs (user with rights to create databases).")


def _as_postgres(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    command = [*args] if os.geteuid() != 0 else ["runuser", "-u", PG_USER, "--", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=True)


def pg_available() -> bool:
    if not (PG_BIN / "initdb").exists():
        return False
    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        return os.geteuid() != 0
    return True


class PgCluster:
    """A throw-away PostgreSQL cluster on a free port; `stop()` and `start()` make an outage."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="readrate-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        if os.geteuid() == 0:
            entry = pwd.getpwnam(PG_USER)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        _as_postgres(str(PG_BIN / "initdb"), "-D", str(self.data), "--auth=trust", "-U", PG_USER,
                     "--no-sync", "-E", "UTF8", "--locale=C")

    @property
    def url(self) -> str:
        return f"postgresql://{PG_USER}@127.0.0.1:{self.port}/postgres"

    def start(self) -> PgCluster:
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off"
        _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", options,
                     "-l", str(self.root / "server.log"), "-w", "start")
        return self

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def postgres_answers(url: str) -> bool:
    from sqlalchemy import create_engine, text

    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1),
                           connect_args={"connect_timeout": 2})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception:  # noqa: BLE001 - any failure to connect means "not there"
        return False
    finally:
        engine.dispose()


class Servers:
    """The Redis and PostgreSQL a test run uses, started privately when none answers; `stop()` removes them."""

    def __init__(self) -> None:
        self.redis: RedisServer | None = None
        self.postgres: PgCluster | None = None

    def ensure(self, redis_url: str, pg_url: str) -> tuple[str, str]:
        """The URLs to test against: the given ones if their servers answer, else private servers'.

        Raises RuntimeError saying how to get a server when one is needed and none is installed."""
        if not answers(redis_url):
            if shutil.which("redis-server") is None:
                from readrate.reports.localredis import HOW_TO_GET_REDIS
                raise RuntimeError(HOW_TO_GET_REDIS.format(url=redis_url))
            self.redis = RedisServer().start()
            redis_url = self.redis.url
        if not postgres_answers(pg_url):
            if not pg_available():
                raise RuntimeError(HOW_TO_GET_POSTGRES.format(url=pg_url))
            self.postgres = PgCluster().start()
            pg_url = self.postgres.url.replace("postgresql://", "postgresql+psycopg://", 1)
        return redis_url, pg_url

    def stop(self) -> None:
        if self.redis is not None:
            self.redis.stop()
        if self.postgres is not None:
            self.postgres.remove()
