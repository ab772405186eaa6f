"""HTTP load for the collector scenario: servers under test, `wrk` runs against them, the Lua driving wrk.

Peak throughput is closed-loop: `wrk -c N` keeps N requests in flight, each connection
sending its next request as soon as the last one is answered.

Latency at a fixed rate is paced by a `delay()` hook in Lua (Debian's wrk 4.1 has no
wrk2 `-R`). Chosen over a Python open-loop generator (asyncio, httpx) because the load
generator shares the machine's two cores with the server under test, so its own cost
per request comes out of the server's: wrk measured here 41 µs of CPU per request
closed-loop (10,900/s) and about 110 µs paced (2,300/s, its timers included), while a
Python client pays at least what a Python server's HTTP layer pays (the bare ASGI app of
bench/floor_app.py: 65-90 µs a request) before any logic of its own; and both kinds of
run then use one tool. How the pacing works: the thread keeps one schedule,
a slot every 1/rate seconds; each connection, when it is free, takes the next slot and
waits until its time (wrk's timers have 1 ms steps; the wait is rounded down, so a
request leaves up to 1 ms early, never late because of the rounding). wrk times each
request from when it is actually sent. That is exact while some connection is free
at every slot; when all are busy, requests leave behind their slot and their wait would
be missed (coordinated omission, which wrk2 corrects and wrk's hooks cannot: `delay()`
and `response()` do not say which connection they are for). So the script counts every
request sent more than 1 ms behind its slot, and the scenario reports the p99 as a lower
bound when more than 0.1% were. With CONNECTIONS_PACED connections that happens only
when that many requests are in flight at once, i.e. when the server is already far
behind.

Every request of a read run carries a new client address in X-Forwarded-For (the
collector trusts 127.0.0.1 as a proxy), so every read is a distinct visitor and none is
dropped as a repeat, and a desktop browser's User-Agent, so none is dropped as a bot.
Articles follow the bench workload's Zipf popularity.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from .resources import Env

WRK = "wrk"
USER_AGENT = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/124.0.0.0 Safari/537.36")
CONNECTIONS_PEAK = 64
CONNECTIONS_PACED = 256
LATE_US = 1000
# Addresses are 10.a.b.c: 2**24 of them; each run of a server takes its own range of ADDRESSES_PER_RUN.
ADDRESSES_PER_RUN = 2_000_000
_MARK = "RRWRK "

_CLOCK = """
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } rr_timespec;
int clock_gettime(int clk_id, rr_timespec *tp);
]]
local ts = ffi.new("rr_timespec")
local function now_us()
  ffi.C.clock_gettime(1, ts)  -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000000 + tonumber(ts.tv_nsec) / 1000
end
"""

_THREADS = """
local threads = {}
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  base = tonumber(args[1] or "0")
  nthreads = tonumber(args[2] or "1")
  k = 0
  late = 0
  late_max_us = 0
end
"""

_READ = """
local articles = {%(articles)s}
wrk.method = "POST"
wrk.headers["User-Agent"] = "%(user_agent)s"
wrk.headers["Content-Type"] = "application/json"

function request()
  local i = (base + k * nthreads + id) %% 16777216
  k = k + 1
  local address = string.format("10.%%d.%%d.%%d", math.floor(i / 65536), math.floor(i / 256) %% 256, i %% 256)
  -- Set on wrk.headers: headers passed to wrk.format replace wrk.headers instead of adding to them.
  wrk.headers["X-Forwarded-For"] = address
  return wrk.format(nil, nil, nil, '{"article":"' .. articles[(i %% #articles) + 1] .. '"}')
end
"""

_PACED = """
local interval_us = %(interval_us)f
local next_slot = nil

function delay()
  local now = now_us()
  if next_slot == nil then next_slot = now end
  local slot = next_slot
  next_slot = next_slot + interval_us
  local wait = slot - now
  if wait < 0 then
    if -wait > %(late_us)d then late = late + 1 end
    if -wait > late_max_us then late_max_us = -wait end
    return 0
  end
  return math.floor(wait / 1000)
end
"""

_DONE = """
function done(summary, latency, requests)
  local late_total, late_max = 0, 0
  for _, thread in ipairs(threads) do
    late_total = late_total + (thread:get("late") or 0)
    late_max = math.max(late_max, thread:get("late_max_us") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    '%(mark)s{"duration_us": %%d, "requests": %%d, "bytes": %%d, "errors": {"connect": %%d, "read": %%d, ' ..
    '"write": %%d, "status": %%d, "timeout": %%d}, "latency_us": {"mean": %%.1f, "min": %%d, "p50": %%d, ' ..
    '"p90": %%d, "p99": %%d, "p99.9": %%d, "max": %%d}, "late": %%d, "late_max_us": %%.0f}\\n',
    summary.duration, summary.requests, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.min, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, late_total, late_max))
end
"""


@dataclass
class Load:
    """What one wrk run measured."""

    requests: int
    seconds: float
    latency_us: dict
    errors: dict
    connections: int
    target_per_s: float | None = None
    late: int = 0
    late_max_ms: float = 0.0
    # CPU seconds the server's processes used per second of the run (1.0: one core busy), and the share of
    # the machine's cores busy (with anything: wrk, Redis, the database, other work) during it.
    server_cores: float | None = None
    machine_busy: float | None = None

    @property
    def per_s(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def failed(self) -> int:
        return sum(self.errors.values())

    @property
    def late_share(self) -> float:
        return self.late / self.requests if self.requests else 0.0

    @property
    def server_cpu_us(self) -> float | None:
        """The server's CPU time per answered request, in µs."""
        if self.server_cores is None or not self.requests:
            return None
        return self.server_cores * self.seconds / self.requests * 1e6

    def as_dict(self) -> dict:
        cpu_us = self.server_cpu_us
        return {**asdict(self), "per_s": round(self.per_s, 1), "failed": self.failed,
                "late_share": round(self.late_share, 5),
                "server_cpu_us": None if cpu_us is None else round(cpu_us),
                "latency_ms": {k: round(v / 1000, 2) for k, v in self.latency_us.items()}}


def available() -> str | None:
    """None when wrk can run here, else why not."""
    return None if shutil.which(WRK) else "wrk is not installed (apt-get install wrk)"


def version() -> str:
    done = subprocess.run([WRK, "-v"], capture_output=True, text=True, check=False)
    lines = (done.stdout + done.stderr).splitlines()
    return lines[0].strip() if lines else "?"


class Scripts:
    """The Lua files of one bench run, in its directory: reads closed-loop or paced, and one fixed GET."""

    def __init__(self, workdir: Path, articles: list[str]) -> None:
        self.workdir = workdir
        self.articles = articles
        self.peak = self._write("read-peak.lua", read_script(articles))
        self.get = self._write("get.lua", get_script())

    def paced(self, per_s: float) -> Path:
        return self._write(f"read-paced-{per_s:.0f}.lua", read_script(self.articles, per_s=per_s))

    def _write(self, name: str, text: str) -> Path:
        path = self.workdir / name
        path.write_text(text)
        return path


def read_script(articles: list[str], *, per_s: float | None = None) -> str:
    """Lua for POST /v1/read runs: closed-loop, or paced at `per_s` requests a second when given."""
    parts = [_CLOCK, _THREADS, _READ % {"articles": ", ".join(json.dumps(a) for a in articles),
                                        "user_agent": USER_AGENT}]
    if per_s:
        parts.append(_PACED % {"interval_us": 1e6 / per_s, "late_us": LATE_US})
    parts.append(_DONE % {"mark": _MARK})
    return "\n".join(parts)


def get_script() -> str:
    """Lua for a closed-loop run of one fixed GET (the URL says which): only the summary."""
    return "\n".join([_THREADS, _DONE % {"mark": _MARK}])


def wrk(url: str, script: Path, *, seconds: float, connections: int, base: int = 0,
        per_s: float | None = None, timeout_s: float = 10.0) -> Load:
    """One wrk run against `url` with `script`; one thread, so a paced run keeps one schedule. `base` is the
    first client address the run uses (reads)."""
    argv = [WRK, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", f"--timeout={timeout_s:g}s",
            "-s", str(script), url, "--", str(base), "1"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 120, check=False)
    found = re.search(rf"^{_MARK}(.*)$", done.stdout, re.MULTILINE)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()[-500:]} "
                           f"{done.stdout.strip()[-500:]}")
    out = json.loads(found.group(1))
    return Load(requests=out["requests"], seconds=out["duration_us"] / 1e6, latency_us=out["latency_us"],
                errors=out["errors"], connections=connections, target_per_s=per_s, late=out["late"],
                late_max_ms=round(out["late_max_us"] / 1000, 1))


# -- servers under test -------------------------------------------------------------------------------

@dataclass
class Server:
    """One server under test (a process of the run, in its own session with its worker processes)."""

    process: subprocess.Popen
    url: str
    workers: int

    def cpu_s(self) -> float:
        """CPU seconds used so far by the server and its worker processes."""
        try:
            parent = psutil.Process(self.process.pid)
            return sum(sum(p.cpu_times()[:2]) for p in [parent, *parent.children(recursive=True)])
        except psutil.Error:
            return 0.0

    def load(self, path: str, script: Path, *, seconds: float, connections: int, per_s: float | None = None,
             base: int = 0) -> Load:
        """One wrk run against `path`, with the CPU the server used during it."""
        cpu_before, machine_before = self.cpu_s(), psutil.cpu_times()
        result = wrk(self.url + path, script, seconds=seconds, connections=connections, base=base,
                     per_s=per_s)
        machine = psutil.cpu_times()
        idle = machine.idle + machine.iowait - machine_before.idle - machine_before.iowait
        total = sum(machine) - sum(machine_before)
        result.server_cores = round((self.cpu_s() - cpu_before) / result.seconds, 2)
        result.machine_busy = round(1 - idle / total, 2) if total > 0 else None
        return result


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(env: Env, argv: list[str], proc_env: dict[str, str], workers: int, log_name: str,
          timeout_s: float = 60) -> Server:
    """Start `argv --host 127.0.0.1 --port P --workers N` and wait until its /healthz answers 200."""
    port = free_port()
    process = env.spawn([*argv, "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
                        env=proc_env, log_name=log_name)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/healthz", timeout=2) as answer:
            if answer.status == 200:
                return Server(process, url, workers)
        if process.poll() is not None or time.monotonic() > deadline:
            env.stop(process)
            raise RuntimeError(f"{' '.join(argv)} did not come up on port {port}: "
                               f"{env.log_of(log_name)[-1500:]}")
        time.sleep(0.1)
