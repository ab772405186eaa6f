"""The machine a run measured: hardware, OS, servers and library versions (for RESULTS.md)."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import psutil
from redis import Redis
from sqlalchemy import create_engine, text

LIBRARIES = ("redis", "hiredis", "rq", "SQLAlchemy", "psycopg", "psycopg-binary", "alembic", "click",
             "psutil", "starlette", "uvicorn", "uvloop", "httptools")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return f"{line.split('=', 1)[1].strip(chr(34))} (kernel {platform.release()})"
    except OSError:
        pass
    return platform.platform()


def library_versions() -> dict[str, str]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def redis_details(redis: Redis) -> dict[str, str]:
    try:
        info = redis.info("server")
        config = redis.config_get("appendonly")
        config.update(redis.config_get("appendfsync"))
        return {"version": info.get("redis_version", "?"), "appendonly": config.get("appendonly", "?"),
                "appendfsync": config.get("appendfsync", "?")}
    except Exception as exc:  # a report detail must never fail the run
        return {"version": f"unknown ({exc})"}


def postgres_version(admin_url: str | None) -> str:
    if not admin_url:
        return "not reachable"
    try:
        engine = create_engine(admin_url, connect_args={"connect_timeout": 3})
        try:
            with engine.connect() as conn:
                return str(conn.scalar(text("SHOW server_version")))
        finally:
            engine.dispose()
    except Exception as exc:
        return f"not reachable ({type(exc).__name__})"


def git_revision(root: Path) -> str:
    """The commit measured, and whether the working tree had changes (read-only git commands)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return f"{head}{' with uncommitted changes' if dirty else ''}" if head else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def describe(redis: Redis, pg_admin_url: str | None, root: Path) -> dict:
    memory = psutil.virtual_memory()
    return {
        "cpu": cpu_model(),
        "cores_logical": os.cpu_count(),
        "cores_physical": psutil.cpu_count(logical=False),
        "ram_gb": round(memory.total / 2**30, 1),
        "os": os_name(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "redis_server": redis_details(redis),
        "postgresql_server": postgres_version(pg_admin_url),
        "libraries": library_versions(),
        "git": git_revision(root),
        "load_average_at_start": load_average(),
    }


def render(info: dict) -> str:
    redis = info["redis_server"]
    libraries = ", ".join(f"{name} {version}" for name, version in info["libraries"].items())
    lines = [
        f"- CPU: {info['cpu']}, {info['cores_logical']} logical cores ({info['cores_physical']} physical)",
        f"- RAM: {info['ram_gb']} GiB",
        f"- OS: {info['os']}",
        f"- Python: {info['python']}",
        f"- Redis server: {redis.get('version')} (appendonly {redis.get('appendonly', '?')}, "
        f"appendfsync {redis.get('appendfsync', '?')}); {info.get('redis_where', '')}",
        f"- PostgreSQL server: {info['postgresql_server']}",
        f"- Libraries: {libraries}",
        f"- Code: {info['git']}",
        f"- Load average (1/5/15 min) at start: {info['load_average_at_start']}; "
        f"at end: {info.get('load_average_at_end', '?')}",
    ]
    return "\n".join(lines)
