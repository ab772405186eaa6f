"""Finding a Redis to talk to, or starting a private `redis-server` for the demo and the tests."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis as redis_lib

from readrate.events.connections import PROBE, redis_client
from readrate.events.errors import ConfigError, RedisUnavailable
from readrate.events.urls import redact

HOW_TO_GET_REDIS = (
    "no Redis answers at {url} and no redis-server is installed. Start one (e.g. `docker run -p 6379:6379 redis`), "
    "install it (`apt-get install redis-server`, `brew install redis`), or set REDIS_URL to one that runs."
)


def answers(url: str) -> bool:
    """True if a Redis at `url` answers PING; False if none is there.

    A Redis that is there but refuses the password, or has no such database, is not
    "no Redis": that raises ConfigError, so nobody starts a private one in its place.
    """
    client = redis_client(url, PROBE)
    try:
        return bool(client.ping())
    except redis_lib.AuthenticationError as exc:
        raise ConfigError(f"the Redis at {redact(url)} refused the credentials in the URL: {exc}") from None
    except redis_lib.ResponseError as exc:
        raise ConfigError(f"the Redis at {redact(url)} refused the connection: {exc}") from None
    except (redis_lib.RedisError, OSError):
        return False
    finally:
        client.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A private redis-server on a free port in a temporary directory; stop() removes it all."""

    def __init__(self, *, port: int | None = None, appendonly: bool = False, appendfsync: str = "everysec",
                 directory: str | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisUnavailable("redis-server is not installed")
        self.port = port or free_port()
        self._own_dir = directory is None
        self.dir = Path(directory or tempfile.mkdtemp(prefix="readrate-redis-"))
        self.args = [
            binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
            "--save", "", "--appendonly", "yes" if appendonly else "no", "--appendfsync", appendfsync,
            "--maxmemory-policy", "noeviction", "--logfile", str(self.dir / "redis.log"),
        ]
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> RedisServer:
        self.process = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while not answers(self.url):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RedisUnavailable(f"redis-server on port {self.port} did not start; see {self.dir}/redis.log")
            time.sleep(0.05)
        return self

    def stop(self, *, keep_dir: bool = False) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self._own_dir and not keep_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def kill(self) -> None:
        """SIGKILL the server (a crash, for fault tests); the directory stays for a restart."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
