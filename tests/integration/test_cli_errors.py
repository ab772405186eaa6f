"""No traceback reaches a user, ever: every `readrate` command, found by walking click's command tree
(so a new command is covered without editing this file), run as a real process under a matrix of
broken environments, exits 0 or with a short message and the documented exit code.

Exit codes: 1 failure, 2 bad usage, 3 Redis or the database unreachable. Read-only
commands must not create the SQLite file (or its folder) they were pointed at.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import click
import pytest

from helpers import READRATE
from readrate.reports.cli import cli
from readrate.reports.localredis import free_port

# Flags a command needs to do anything at all (it refuses to guess which rows to delete, say), and
# bounds that keep the long-running ones short. Any other command gets its required parameters only.
NEEDS = {
    "demo": ["--events", "100", "--articles", "5", "--workers", "1", "--days", "1"],
    "worker": ["--burst"],
    "dead replay": ["--all"],
    "dead purge": ["--all"],
    # Everything serving checks first (a port of its own included), then exit instead of serving.
    "serve": ["--check", "--port", str(free_port())],
    # Confirmations answered (no terminal to ask on), a date to prune before.
    "rebuild": ["--yes"],
    "archive prune": ["--before", "2000-01-01", "--yes"],
}
# Commands that create the database on purpose (they write: migrations, titles, a worker's tables).
CREATE = {"db upgrade", "worker", "articles import", "serve"}
# At most this many lines on stderr for a failure: a message, perhaps a usage line and a hint.
SHORT = 6


def leaf_commands(group: click.Group = cli, path: tuple[str, ...] = ()) -> list[tuple[str, click.Command]]:
    found = []
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            found += leaf_commands(command, (*path, name))
        else:
            found.append((" ".join((*path, name)), command))
    return found


COMMANDS = leaf_commands()


def arguments(name: str, command: click.Command, sample: Path) -> list[str]:
    """The command's words and a value for each required parameter."""
    args = name.split()
    for param in command.params:
        if not param.required:
            continue
        if isinstance(param, click.Argument):
            meta = (param.metavar or param.name or "").upper()
            args.append(str(sample) if "FILE" in meta else "4" if "RATING" in meta else "article-1")
        else:
            args += [param.opts[0], "someone"]
    return args + NEEDS.get(name, [])


def environments(tmp: Path) -> dict[str, dict[str, str]]:
    closed = free_port()
    empty = tmp / "empty.db"
    sqlite3.connect(empty).close()  # a database file without readrate tables
    return {
        "redis-down": {"REDIS_URL": f"redis://127.0.0.1:{closed}/0"},
        "redis-db-out-of-range": {"REDIS_URL": "redis://127.0.0.1:6379/999"},
        "redis-not-a-url": {"REDIS_URL": "http://127.0.0.1:6379/0"},
        "redis-wrong-password": {"REDIS_URL": "redis://:not-the-password@127.0.0.1:6379/0"},
        "postgresql-down": {"DATABASE_URL": f"postgresql://postgres:secret-pw@127.0.0.1:{closed}/readrate"},
        "sqlite-missing": {"DATABASE_URL": f"sqlite:///{tmp / 'nowhere' / 'readrate.db'}"},
        "sqlite-two-slashes": {"DATABASE_URL": "sqlite://rr.db"},
        "database-not-a-url": {"DATABASE_URL": "not a url"},
        "no-tables": {"DATABASE_URL": f"sqlite:///{empty}"},
        "bad-scale": {"READRATE_RATING_SCALE": "five stars"},
        "bad-shards": {"READRATE_SHARDS": "zero"},
    }


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*READRATE, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=180)


def test_the_walk_finds_every_command():
    names = {name for name, _ in COMMANDS}
    assert {"demo", "worker", "emit read", "emit vote", "import", "db upgrade", "articles import", "report top",
            "report article", "report summary", "status", "dead list", "dead replay", "dead purge"} <= names


@pytest.mark.parametrize("broken", ["redis-down", "redis-db-out-of-range", "redis-not-a-url", "redis-wrong-password",
                                    "postgresql-down", "sqlite-missing", "sqlite-two-slashes", "database-not-a-url",
                                    "no-tables", "bad-scale", "bad-shards"])
def test_every_command_in_a_broken_environment_exits_with_a_short_message_and_no_traceback(
        broken, prefix, tmp_path):
    sample = tmp_path / "sample.csv"
    sample.write_text("kind,article,at,visitor,rating\nread,article-1,1700000000000,v-1,\n")
    base = {**os.environ, "READRATE_PREFIX": prefix, "REDIS_URL": "redis://127.0.0.1:6379/0",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'readrate.db'}",
            "READRATE_DEMO_DATABASE_URL": f"sqlite:///{tmp_path / 'demo.db'}"}
    env = {**base, **environments(tmp_path)[broken]}
    jobs = []
    for number, (name, command) in enumerate(COMMANDS):
        own = dict(env)
        if broken == "sqlite-missing":  # a folder per command, to see which one made its file
            own["DATABASE_URL"] = f"sqlite:///{tmp_path / f'nowhere-{number}' / 'readrate.db'}"
        jobs.append((name, arguments(name, command, sample), own, tmp_path / f"nowhere-{number}"))
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda job: (job[0], run(job[1], job[2], tmp_path)), jobs))

    problems = []
    for name, done in results:
        said = done.stderr.strip().splitlines()
        if "Traceback" in done.stderr or "Traceback" in done.stdout:
            problems.append(f"{name}: a traceback: {done.stderr[-600:]}")
        elif done.returncode not in (0, 1, 2, 3):
            problems.append(f"{name}: exit code {done.returncode}: {done.stderr[-300:]}")
        elif done.returncode and (not said or len(said) > SHORT):
            problems.append(f"{name}: exit {done.returncode} with {len(said)} lines on stderr: {said[:8]}")
        elif done.returncode and not any(line.startswith(("Error", "Usage")) for line in said):
            problems.append(f"{name}: exit {done.returncode} without an 'Error:' line: {said}")
        for secret in ("secret-pw", "not-the-password"):
            if secret in done.stderr + done.stdout:
                problems.append(f"{name}: shows the password from the URL")
    if broken == "sqlite-missing":
        problems += [f"{name}: created {folder.name}/readrate.db" for name, _args, _env, folder in jobs
                     if name not in CREATE and folder.exists()]
    assert problems == []


@pytest.mark.parametrize("broken", ["redis-down", "postgresql-down", "sqlite-missing", "sqlite-two-slashes",
                                    "redis-db-out-of-range", "bad-scale"])
def test_the_exit_code_says_what_is_wrong(broken, prefix, tmp_path):
    env = {**os.environ, "READRATE_PREFIX": prefix, "REDIS_URL": "redis://127.0.0.1:6379/0",
           "DATABASE_URL": f"sqlite:///{tmp_path / 'readrate.db'}", **environments(tmp_path)[broken]}
    command = ["status"] if broken.startswith(("redis", "bad")) else ["report", "top"]
    expected = {"redis-down": 3, "postgresql-down": 3, "sqlite-missing": 3, "sqlite-two-slashes": 2,
                "redis-db-out-of-range": 2, "bad-scale": 2}[broken]
    if broken.startswith("redis"):
        sqlite3.connect(tmp_path / "readrate.db").close()
        # The installation is made with the good Redis; only the command under test meets the broken one.
        subprocess.run([*READRATE, "db", "upgrade"], env={**env, "REDIS_URL": "redis://127.0.0.1:6379/0"},
                       cwd=tmp_path, capture_output=True, check=True)

    done = run(command, env, tmp_path)

    assert done.returncode == expected, done.stderr
    assert done.stderr.startswith("Error:") or "Error:" in done.stderr.splitlines()[-1], done.stderr


OUTPUT_COMMANDS = [(name, command) for name, command in COMMANDS if any(p.name == "output" for p in command.params)]


@pytest.mark.parametrize("name", [name for name, _ in OUTPUT_COMMANDS])
@pytest.mark.parametrize("target", ["missing-folder", "a-folder", "exists", "dev-full"])
def test_output_to_a_bad_place_is_a_short_error_and_an_existing_file_is_never_overwritten_silently(
        name, target, settings, engine, tmp_path):
    command = dict(OUTPUT_COMMANDS)[name]
    existing = tmp_path / "kept.csv"
    existing.write_text("keep me\n")
    path = {"missing-folder": tmp_path / "no" / "such" / "dir" / "out.csv", "a-folder": tmp_path,
            "exists": existing, "dev-full": Path("/dev/full")}[target]
    env = {**os.environ, "READRATE_PREFIX": settings.prefix, "REDIS_URL": settings.redis_url,
           "DATABASE_URL": settings.database_url}
    args = arguments(name, command, tmp_path / "unused.csv")
    if name == "report article":
        subprocess.run([*READRATE, "emit", "read", "article-1"], env=env, capture_output=True, check=True)
        subprocess.run([*READRATE, "worker", "--burst"], env=env, capture_output=True, check=True)

    done = run([*args, "--format", "csv", "--output", str(path)], env, tmp_path)

    assert "Traceback" not in done.stderr
    assert done.returncode in (1, 2), done.stderr
    assert len(done.stderr.strip().splitlines()) <= SHORT, done.stderr
    assert existing.read_text() == "keep me\n"
    if target == "exists":
        assert "--force" in done.stderr
        forced = run([*args, "--format", "csv", "--output", str(path), "--force"], env, tmp_path)
        assert forced.returncode == 0, forced.stderr
        assert existing.read_text() != "keep me\n"
