"""readrate installed the plain way, as users and the compose image install it, and the compose file.

A fresh venv gets `pip install SOURCE` (not editable) of a copy of this checkout, so nothing
can be imported from the work tree by accident: site-packages must hold `readrate` and its
dist-info only (no top-level `events`, `workers` or `reports` that would shadow a web app's
own), `readrate.events` must import from anywhere, and the `readrate` console script must
run, migrate a new SQLite database (the Alembic migrations are in the wheel) and drain events
through RQ by the job's installed name. The compose file is read as text: there is no Docker
engine to build it with (`docker compose config` checks it where the client exists).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REDIS_URL

from readrate.workers.db import head_revision

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
# What never goes into the copy pip builds from: environments, build output, caches, databases.
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".hypothesis",
                                    ".pytest_cache", "*.db", "*.db-*", "out", ".env")
INSTALL_TIMEOUT_S = 900


class PlainInstall:
    """A venv with readrate pip-installed (not editable) from a copy of the checkout."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.venv = root / "venv"
        self.bin = self.venv / "bin"
        self.elsewhere = root / "elsewhere"  # a working directory with no readrate source in reach
        self.elsewhere.mkdir()

    def build(self) -> None:
        source = self.root / "source"
        shutil.copytree(REPO, source, ignore=NOT_SOURCE)
        subprocess.run([sys.executable, "-m", "venv", str(self.venv)], check=True, timeout=120)
        log = self.root / "pip.log"
        with log.open("w") as out:
            result = subprocess.run([str(self.bin / "python"), "-m", "pip", "install", "--no-input", str(source)],
                                    stdout=out, stderr=subprocess.STDOUT, timeout=INSTALL_TIMEOUT_S, env=self.env())
        assert result.returncode == 0, f"pip install exited {result.returncode}:\n{log.read_text()[-4000:]}"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if k not in ("PYTHONPATH", "REDIS_URL", "DATABASE_URL", "VIRTUAL_ENV")
               and not (k.startswith("READRATE_") and not k.startswith("READRATE_TEST_"))}
        env["PATH"] = f"{self.bin}{os.pathsep}{env.get('PATH', '')}"
        return {**env, **extra}

    def run(self, *args: str, **extra_env: str) -> subprocess.CompletedProcess:
        result = subprocess.run(list(args), cwd=self.elsewhere, env=self.env(**extra_env), capture_output=True,
                                text=True, timeout=300)
        assert result.returncode == 0, f"{' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        return result

    def python(self, code: str) -> str:
        return self.run(str(self.bin / "python"), "-c", code).stdout


@pytest.fixture(scope="module")
def plain(tmp_path_factory) -> PlainInstall:
    install = PlainInstall(tmp_path_factory.mktemp("plain-install"))
    install.build()
    return install


@pytest.mark.slow
def test_a_plain_install_puts_only_the_readrate_package_into_site_packages(plain):
    listing = json.loads(plain.python(
        "import json, sysconfig; from importlib.metadata import files; "
        "purelib = sysconfig.get_paths()['purelib']; "
        "print(json.dumps({'top': sorted({str(f).split('/')[0] for f in files('readrate') if not str(f).startswith('..')}),"
        " 'purelib': purelib, 'names': sorted(__import__('os').listdir(purelib))}))"
    ))
    assert listing["top"][0] == "readrate" and len(listing["top"]) == 2, listing["top"]
    assert re.fullmatch(r"readrate-[\w.]+\.dist-info", listing["top"][1]), listing["top"]
    assert not {"events", "workers", "reports", "bench", "tests"} & set(listing["names"]), listing["names"]
    assert not any(n.endswith(".egg-link") or n.startswith("__editable__") for n in listing["names"])


@pytest.mark.slow
def test_readrate_events_imports_from_the_installed_package_outside_the_checkout(plain):
    where = plain.python("from readrate.events import Emitter, Settings; import readrate.events, readrate.reports.page; "
                         "print(readrate.events.__file__)").strip()
    assert where.startswith(str(plain.venv)), where
    found = plain.python("import importlib.util as u; print([u.find_spec(n) for n in ('events', 'workers', 'reports')])")
    assert found.strip() == "[None, None, None]", found


@pytest.mark.slow
def test_the_installed_console_script_runs_help_and_python_dash_m_runs_the_same_command(plain):
    assert plain.run(str(plain.bin / "readrate"), "--help").stdout.startswith("Usage: readrate [OPTIONS] COMMAND")
    assert plain.run(str(plain.bin / "python"), "-m", "readrate.reports", "db", "--help").stdout.startswith(
        "Usage: readrate db")


@pytest.mark.slow
def test_the_installed_migrations_create_a_new_sqlite_database(plain, prefix):
    database = plain.elsewhere / f"{prefix}.db"
    plain.run(str(plain.bin / "readrate"), "db", "upgrade", DATABASE_URL=f"sqlite:///{database}",
              REDIS_URL=REDIS_URL, READRATE_PREFIX=prefix)
    with sqlite3.connect(database) as conn:
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        (revision,) = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    assert {"article_stats", "votes", "articles", "stream_offsets", "rejected_events", "installation"} <= tables
    assert revision == head_revision()


@pytest.mark.slow
def test_an_installed_worker_runs_the_drain_job_by_its_installed_name(plain, prefix):
    env = {"REDIS_URL": REDIS_URL, "DATABASE_URL": f"sqlite:///{plain.elsewhere / f'{prefix}.db'}",
           "READRATE_PREFIX": prefix}
    readrate = str(plain.bin / "readrate")
    plain.run(readrate, "emit", "vote", "article-42", "4", "--voter", "user-1001", **env)
    plain.run(readrate, "emit", "read", "article-42", **env)
    drained = plain.run(readrate, "worker", "--burst", **env)
    assert "drained 2 events (0 rejected" in drained.stderr, drained.stderr
    top = plain.run(readrate, "report", "top", "--format", "csv", **env).stdout
    assert top.splitlines()[1].startswith("1,article-42,,1,1,4.0,"), top


# -- the compose file (read as text; no Docker engine here) -----------------------------------


def compose_text() -> str:
    return COMPOSE.read_text(encoding="utf-8")


def test_the_compose_file_publishes_ports_on_127_0_0_1_only():
    ports = re.findall(r"^\s*ports:\s*\[(.*)\]\s*$", compose_text(), re.M)
    assert ports, "docker-compose.yml lists its ports in flow style, ports: [\"127.0.0.1:HOST:CONTAINER\"]"
    assert not re.search(r"^\s*ports:\s*$", compose_text(), re.M), "write ports in flow style so they are checked"
    for entry in (p.strip().strip("\"'") for line in ports for p in line.split(",")):
        assert entry.startswith("127.0.0.1:"), f"port {entry!r} is published beyond this machine"


def test_the_compose_file_takes_every_password_from_the_environment_and_env_example_lists_them():
    text = compose_text()
    needed = set(re.findall(r"\$\{(\w+)", text))
    listed = set(re.findall(r"^(\w+)=", ENV_EXAMPLE.read_text(encoding="utf-8"), re.M))
    assert {"POSTGRES_PASSWORD", "REDIS_PASSWORD"} <= needed
    assert needed <= listed, f".env.example does not list {needed - listed}"
    for password in ("POSTGRES_PASSWORD", "REDIS_PASSWORD"):
        # Required, with a message: compose stops when it is unset or empty.
        assert re.search(r"\$\{" + password + r":\?", text), f"{password} must be required (${{{password}:?…}})"
    literal = re.findall(r"^\s*(\w*PASSWORD\w*):\s*(?!\$\{)(\S.*)$", text, re.M)
    assert not literal, f"a password is written into docker-compose.yml: {literal}"
    assert not re.search(r"://\w+:[^$@\s]+@", text), "a URL in docker-compose.yml carries a literal password"
    assert re.search(r"^\.env$", (REPO / ".dockerignore").read_text(), re.M), ".env must stay out of images"


def test_the_compose_image_installs_a_wheel_with_the_plot_and_archive_extras_not_the_source_tree():
    text = compose_text()
    assert "pip wheel" in text and "'.[plot,archive]'" in text
    assert "--no-index --find-links /wheels 'readrate[plot,archive]'" in text
    # The archive volume's mount point exists in the image, owned by the unprivileged user.
    assert "install -d -o readrate /home/readrate/archive" in text and "archive:/home/readrate/archive" in text
    assert not re.search(r"pip install[^\n]*(-e|--editable)\b", text)
    wheel_stage, install_stage = text.split("FROM python:3.11-slim\n", 1)
    assert "COPY . ." in wheel_stage and "COPY . ." not in install_stage, "only the wheel stage copies the source"


def test_docker_compose_config_accepts_the_file(tmp_path):
    try:
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=60)
    except FileNotFoundError:
        probe = None
    if probe is None or probe.returncode != 0:
        pytest.skip("no `docker compose` client here; .ci/run runs the same check where there is one")
    env_file = tmp_path / "compose.env"
    env_file.write_text(re.sub(r"^(\w*PASSWORD)=$", r"\1=test0placeholder", ENV_EXAMPLE.read_text(), flags=re.M))
    result = subprocess.run(["docker", "compose", "--env-file", str(env_file), "config", "-q"], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
