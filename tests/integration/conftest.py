"""Fixtures of the integration suite beside those of tests/conftest.py: a known day to place events at,
an archive folder, an Emitter into the test's streams, an empty database to rebuild into, and `readrate`
run in-process (`inproc`).

Helpers that the fault suite needs too (drains, `readrate` commands, the moderation model) are
in tests/helpers.py.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from helpers import MS_PER_DAY
from readrate.events import Emitter
from readrate.reports.cli import main


@pytest.fixture
def day0() -> int:
    """Midnight UTC three days ago, in epoch ms."""
    return (time.time_ns() // 1_000_000 // MS_PER_DAY - 3) * MS_PER_DAY


@pytest.fixture
def archive_dir(tmp_path) -> Path:
    return tmp_path / "archive"


@pytest.fixture
def emitter(request, settings, redis, engine) -> Emitter:
    """A strict Emitter into the test's installation (the database prepared first).

    It enqueues no drain jobs: the tests drain with `readrate worker --burst`. A test module that
    runs a `readrate worker` instead sets `EMITTER_ENQUEUES = True`, so the emitter enqueues drain
    jobs for it as pages do.
    """
    enqueue = getattr(request.module, "EMITTER_ENQUEUES", False)
    return Emitter(redis, keys=settings.keys, scale=settings.rating_scale, strict=True, enqueue=enqueue)


@pytest.fixture
def empty_target(request, settings, tmp_path):
    """The URL of an empty database of the test's kind, for `rebuild --into` (a fresh PostgreSQL one is
    dropped after)."""
    if settings.database_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'rebuilt.db'}"
    return request.getfixturevalue("pg_database_url")


@pytest.fixture
def inproc(capsys, monkeypatch):
    """`readrate ARGS` through its real entry point in this process (quicker than a process per report or
    audit); (stdout, stderr). Drains and rebuilds run as real processes."""
    def run(settings, *args: str, archive: Path | None = None, expect: int = 0) -> tuple[str, str]:
        monkeypatch.setenv("READRATE_ARCHIVE", "" if archive is None else str(archive))
        capsys.readouterr()
        with pytest.raises(SystemExit) as exited:
            main(["--database-url", settings.database_url, "--prefix", settings.prefix, *args])
        out, err = capsys.readouterr()
        assert "Traceback" not in err, err
        assert (exited.value.code or 0) == expect, (exited.value.code, out[-2000:], err[-3000:])
        return out, err
    return run
