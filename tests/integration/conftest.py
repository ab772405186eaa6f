"""Fixtures of the integration suite beside those of tests/conftest.py: a known day to place events at,
an archive folder, an Emitter into the test's streams, and an empty database to rebuild into.

Helpers that the fault suite needs too (drains, `readrate` commands, the moderation model) are
in tests/helpers.py.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from helpers import MS_PER_DAY
from readrate.events import Emitter


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
