"""Scenario 5, Memory: a real worker's peak RSS while it drains a large backlog.

A backlog of the workload (2,000,000 events; fewer in --quick) is filled into a
fresh prefix (untimed), then a real `readrate worker --burst` process drains it
into a fresh SQLite database. Its resident set size (plus any children's) is
sampled with psutil every 20 ms, together with the kernel's high-water mark for
the process (VmHWM, which also catches a peak between samples); the peak is the
larger of the two, in MB (10^6 bytes). The baseline is the same command on an empty backlog:
what the process costs before any event, so the ratio is what the backlog adds.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import psutil

from . import workload
from .harness import Outcome, Row, below
from .resources import Env

NAME = "memory"
TITLE = "5. Memory"
SAMPLE_S = 0.02
MB = 1_000_000


def sizes(quick: bool) -> dict:
    return {"events": 50_000} if quick else {"events": 2_000_000}


def run(env: Env, quick: bool) -> Outcome:
    n = sizes(quick)
    idle = burst(env, 0)
    busy = burst(env, n["events"])
    raw = {"sizes": n, "workload": workload.DESCRIPTION, "idle_worker": idle, "draining_worker": busy}
    row = Row(f"{TITLE} · worker peak RSS, {n['events']:,}-event backlog", busy["peak_mb"], idle["peak_mb"],
              "MB", "same worker, empty backlog", (below(200),))
    problems = [f"{name}: {d['problem']}" for name, d in (("idle", idle), ("draining", busy)) if d["problem"]]
    if problems:
        row.invalid = True
        row.note = "; ".join(problems)
    return Outcome([row], raw, __doc__)


def burst(env: Env, count: int) -> dict:
    """Run `readrate worker --burst` on a backlog of `count` events, sampling its memory."""
    settings = env.settings("mem", env.sqlite_url("mem"))
    engine = workload.prepared_engine(settings)
    try:
        backlog = workload.fill(env.redis, settings, count) if count else workload.Backlog()
        process = env.spawn_worker(settings, "--burst", name="w")
        started = time.perf_counter()
        sampled_peak, samples, hwm, code = watch(env, process, timeout_s=1800)
        seconds = time.perf_counter() - started
        check = workload.verify(engine, backlog)
        left = workload.pending(env.redis, settings)
        log = env.log_of(f"{settings.prefix}-w")
    finally:
        engine.dispose()
        env.clear(settings.prefix)
        env.drop_database(settings.database_url)
    reported = re.search(r"drained [\d,]+ events .* in ([\d.]+) s", log)
    problem = ""
    if code != 0:
        problem = f"worker exited with {code}: {log.strip()[-300:]}"
    elif left or not check["ok"]:
        problem = f"{left:,} entries left in Redis or counts wrong: {check}"
    return {
        "events": count, "peak_mb": round(max(sampled_peak, hwm) / MB, 1),
        "sampled_peak_mb": round(sampled_peak / MB, 1), "vm_hwm_mb": round(hwm / MB, 1), "samples": samples,
        "wall_s": round(seconds, 3),
        "worker_reported_drain_s": float(reported.group(1)) if reported else None,
        "exit_code": code, "problem": problem,
    }


def watch(env: Env, process: subprocess.Popen, *, timeout_s: float) -> tuple[int, int, int, int]:
    """Sample `process` (and its children) until it exits: (sampled peak RSS, samples, VmHWM, exit code).

    VmHWM is the kernel's high-water mark of the process's own address space, so it
    also catches a peak between two samples. (wait4's ru_maxrss would not do: it keeps
    the size of the bench process the worker was forked from, from before its exec.)
    """
    deadline = time.monotonic() + timeout_s
    handle = psutil.Process(process.pid)
    peak = samples = hwm = 0
    while process.poll() is None:
        try:
            rss = handle.memory_info().rss + sum(
                child.memory_info().rss for child in handle.children(recursive=True))
            peak = max(peak, rss)
            hwm = max(hwm, high_water_mark(process.pid))
            samples += 1
        except (psutil.NoSuchProcess, OSError):
            pass
        if time.monotonic() > deadline:
            env.stop(process)
            raise TimeoutError(f"worker did not finish within {timeout_s:.0f} s")
        time.sleep(SAMPLE_S)
    env.forget(process)
    return peak, samples, hwm, process.returncode


def high_water_mark(pid: int) -> int:
    """Peak resident set size of `pid` so far, in bytes (VmHWM in /proc/PID/status; 0 where there is none)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0
