"""Private servers the fault tests start, stop and crash: a PostgreSQL cluster of their own.

The shared servers of the other tests must never be stopped, so the outage tests
run their own. PostgreSQL refuses to run as root: the cluster's directory belongs
to the `postgres` user and every server command runs as that user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from reports.localredis import free_port

PG_BIN = Path(os.environ.get("READRATE_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_USER = "postgres"


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
