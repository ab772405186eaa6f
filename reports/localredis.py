"""Finding a Redis to talk to, or starting a private `redis-server` (or a 3-master Redis Cluster) for the
demo, the tests and the benchmarks."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis as redis_lib
from redis import Redis

from readrate.events.connections import PROBE, redis_client
from readrate.events.errors import ConfigError, RedisUnavailable
from readrate.events.urls import redact

HOW_TO_GET_REDIS = (
    "no Redis answers at {url} and no redis-server is installed. Start one (e.g. `docker run -p 6379:6379 redis`), "
    "install it (`apt-get install redis-server`, `brew install redis`), or set REDIS_URL to one that runs."
)


def answers(url: str) -> bool:
    """True if a Redis at `url` answers PING; False if none is there.

    A Redis that is there but refuses the password (RedisUnavailable, exit 3), or has
    no such database (ConfigError), is not "no Redis": nobody starts a private one in its place.
    """
    client = redis_client(url, PROBE)
    try:
        return bool(client.ping())
    except redis_lib.AuthenticationError as exc:
        raise RedisUnavailable(f"Redis authentication failed: the Redis at {redact(url)} refused the user "
                               f"name or password in the URL ({exc})") from None
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


CLUSTER_MASTERS = 3
# Each cluster node also listens on its cluster bus port: its port + 10000.
BUS_OFFSET = 10_000


def _bus_port_free(port: int) -> bool:
    """Each node also listens on its cluster bus port, port + 10000."""
    if port + BUS_OFFSET > 65_535:
        return False
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port + BUS_OFFSET))
        except OSError:
            return False
    return True


class LocalCluster:
    """`with LocalCluster() as cluster:` — a private 3-master Redis Cluster on 127.0.0.1 (no replicas; AOF only
    with `appendonly`) for the tests and the benchmarks; `cluster.url` is one node's. `stop()` removes it all."""

    def __init__(self, masters: int = CLUSTER_MASTERS, *, appendonly: bool = False) -> None:
        self.appendonly = appendonly
        self.root = Path(tempfile.mkdtemp(prefix="readrate-cluster-"))
        self.ports: list[int] = []
        while len(self.ports) < masters:
            port = free_port()
            if port not in self.ports and _bus_port_free(port):
                self.ports.append(port)
        self.processes: list[subprocess.Popen] = []

    @property
    def url(self) -> str:
        """REDIS_URL for readrate: the first node's (a cluster client learns the rest from it)."""
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    @property
    def addresses(self) -> list[str]:
        return [f"127.0.0.1:{port}" for port in self.ports]

    def start(self, timeout_s: float = 30.0) -> LocalCluster:
        binary = shutil.which("redis-server")
        if binary is None or shutil.which("redis-cli") is None:
            raise RuntimeError("redis-server and redis-cli must be installed for the Redis Cluster tests")
        try:
            for port in self.ports:
                folder = self.root / str(port)
                folder.mkdir()
                self.processes.append(subprocess.Popen(
                    [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
                     "--cluster-enabled", "yes", "--cluster-config-file", str(folder / "nodes.conf"),
                     "--cluster-node-timeout", "5000", "--save", "",
                     "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", "everysec",
                     "--maxmemory-policy", "noeviction", "--logfile", str(folder / "redis.log")],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            deadline = time.monotonic() + timeout_s
            for port in self.ports:
                self._wait(lambda: self._ask(port, lambda node: node.ping()), deadline, f"node {port} to answer PING")
            created = subprocess.run(["redis-cli", "--cluster", "create", *self.addresses, "--cluster-replicas", "0",
                                      "--cluster-yes"], capture_output=True, text=True, timeout=timeout_s)
            if created.returncode != 0:
                said = created.stdout[-1000:] + created.stderr[-1000:]
                raise RuntimeError(f"redis-cli --cluster create failed: {said}")
            for port in self.ports:
                self._wait(lambda: self._ready(port), deadline, f"node {port} to say cluster_state:ok")
        except BaseException:
            self.stop()
            raise
        return self

    def _ask(self, port: int, question):
        node = Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5, socket_timeout=2)
        try:
            return question(node)
        finally:
            node.close()

    def _ready(self, port: int) -> bool:
        """The node has the whole slot map and knows every node (redis-py parses CLUSTER INFO into a dict)."""
        info = self._ask(port, lambda node: node.cluster("INFO"))
        return info.get("cluster_state") == "ok" and int(info.get("cluster_known_nodes", 0)) == len(self.ports)

    def _logs(self) -> str:
        """The end of every node's log, for a failure message (the directory is removed with the cluster)."""
        tails = []
        for port in self.ports:
            log = self.root / str(port) / "redis.log"
            if log.exists():
                tails.append(f"--- node {port}:\n{log.read_text(errors='replace')[-800:]}")
        return "\n".join(tails)

    def _wait(self, condition, deadline: float, what: str) -> None:
        while True:
            try:
                if condition():
                    return
            except Exception:  # noqa: BLE001 - not up yet
                pass
            if any(p.poll() is not None for p in self.processes):
                raise RuntimeError(f"a cluster node exited while waiting for {what}:\n{self._logs()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}:\n{self._logs()}")
            time.sleep(0.05)

    def clear(self, pattern_part: str) -> int:
        """Delete every key, on every node, whose name contains `pattern_part`."""
        deleted = 0
        for port in self.ports:
            keys = self._ask(port, lambda node: list(node.scan_iter(f"*{pattern_part}*", count=1000)))
            for key in keys:
                deleted += self._ask(port, lambda node: node.delete(key))
        return deleted

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes = []
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
