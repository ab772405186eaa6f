"""Helpers for tests that run real `readrate` processes and read real counters."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

from sqlalchemy import Engine, select

from events.settings import Settings
from workers.schema import article_stats

READRATE = [sys.executable, "-m", "reports"]


def env_for(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment a `readrate` process needs to use `settings`."""
    return {
        **os.environ,
        "REDIS_URL": settings.redis_url,
        "DATABASE_URL": settings.database_url,
        "READRATE_PREFIX": settings.prefix,
        "READRATE_SHARDS": str(settings.shards),
        "READRATE_RATING_SCALE": str(settings.rating_scale),
        "READRATE_LEASE_MS": str(settings.lease_ms),
        "READRATE_BATCH_SIZE": str(settings.batch_size),
        **extra,
    }


def run_cli(settings: Settings, *args: str, input: str | None = None, timeout: float = 300,
            **extra_env: str) -> subprocess.CompletedProcess:
    """Run `readrate ARGS` as a real process; returns the completed process (text stdout/stderr)."""
    return subprocess.run([*READRATE, *args], env=env_for(settings, **extra_env), input=input,
                          capture_output=True, text=True, timeout=timeout)


def start_worker(settings: Settings, *args: str, **extra_env: str) -> subprocess.Popen:
    """Start `readrate worker` in the background (its own process group)."""
    return subprocess.Popen([*READRATE, "worker", *args], env=env_for(settings, **extra_env),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
    if process.poll() is None:
        process.send_signal(sig)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def wait_until(condition: Callable[[], object], timeout: float = 60, interval: float = 0.05,
               message: str = "condition") -> object:
    """Poll `condition` until it returns something truthy; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        time.sleep(interval)


def counters(engine: Engine) -> dict[str, tuple[int, int, float]]:
    """article_id -> (reads, votes, rating_sum) as the database holds them."""
    with engine.connect() as conn:
        rows = conn.execute(select(article_stats.c.article_id, article_stats.c.reads, article_stats.c.votes,
                                   article_stats.c.rating_sum))
        return {r.article_id: (int(r.reads), int(r.votes), float(r.rating_sum)) for r in rows}
