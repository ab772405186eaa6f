"""Passwords in server URLs are never shown: `redact` hides them and leaves the rest as written."""

from __future__ import annotations

import pytest

from readrate.events.urls import redact


@pytest.mark.parametrize(("url", "shown"), [
    ("redis://:s3cret@cache:6379/0", "redis://:***@cache:6379/0"),
    ("redis://user:s3cret@cache:6379/0", "redis://user:***@cache:6379/0"),
    ("postgresql://app:p%40ss@db.example:5432/readrate", "postgresql://app:***@db.example:5432/readrate"),
    ("postgresql://app@db/readrate?password=hunter2&sslmode=require",
     "postgresql://app@db/readrate?password=***&sslmode=require"),
    ("sqlite:////var/lib/readrate/readrate.db", "sqlite:////var/lib/readrate/readrate.db"),
    ("sqlite:///readrate.db", "sqlite:///readrate.db"),
    ("redis://localhost:6379/0", "redis://localhost:6379/0"),
    ("unix:///run/redis.sock?db=0", "unix:///run/redis.sock?db=0"),
])
def test_a_password_is_replaced_and_everything_else_stays_as_written(url, shown):
    assert redact(url) == shown


def test_a_url_that_cannot_be_parsed_shows_nothing_of_itself():
    assert "s3cret" not in redact("redis://:s3cret@[::1:6379/0")
