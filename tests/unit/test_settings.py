"""`Settings.from_env`: the configuration contract (DESIGN.md), its defaults, and refusals of bad values."""

from __future__ import annotations

from dataclasses import replace

import pytest

from readrate.events.errors import ConfigError, ReadrateError
from readrate.events.scale import RatingScale
from readrate.events.settings import Settings
from readrate.events.wire import Keys


def test_an_empty_environment_gives_the_documented_defaults():
    settings = Settings.from_env({})

    assert settings.redis_url == "redis://localhost:6379/0"
    assert settings.database_url == "sqlite:///readrate.db"
    assert settings.shards == 4
    assert settings.prefix == "readrate"
    assert settings.rating_scale == RatingScale.parse("1-5")
    assert settings.batch_size == 20_000
    assert settings.lease_ms == 10_000
    assert settings.keys == Keys("readrate", 4)


def test_every_documented_variable_is_read():
    settings = Settings.from_env({
        "REDIS_URL": "redis://cache.internal:6380/2",
        "DATABASE_URL": "postgresql://readrate@db.internal/readrate",
        "READRATE_SHARDS": "16",
        "READRATE_PREFIX": "site-b",
        "READRATE_RATING_SCALE": "0.5-5/0.5",
        "READRATE_BATCH_SIZE": "250",
        "READRATE_LEASE_MS": "2500",
    })

    assert settings.redis_url == "redis://cache.internal:6380/2"
    assert settings.database_url == "postgresql://readrate@db.internal/readrate"
    assert settings.shards == 16
    assert settings.prefix == "site-b"
    assert str(settings.rating_scale) == "0.5-5/0.5"
    assert settings.batch_size == 250
    assert settings.lease_ms == 2500
    assert settings.keys.stream(15) == "{site-b:15}:events"
    assert settings.explicit == {"shards", "rating_scale"}


def test_the_queue_url_and_the_cluster_flag_are_read():
    settings = Settings.from_env({"REDIS_URL": "redis://node-1:7000/0", "READRATE_REDIS_CLUSTER": "1",
                                  "READRATE_QUEUE_URL": "redis://queue:6379/1"})

    assert settings.cluster is True
    assert settings.queue_redis_url == "redis://queue:6379/1"
    assert Settings.from_env({}).queue_redis_url == "redis://localhost:6379/0"


def test_a_cluster_without_a_queue_redis_is_refused_naming_the_variable():
    with pytest.raises(ConfigError, match="READRATE_QUEUE_URL"):
        Settings.from_env({"READRATE_REDIS_CLUSTER": "yes"})


def test_seeds_that_were_not_set_follow_the_installation_record():
    from readrate.events.installation import Installation

    record = Installation("inst-1", 8, 16, RatingScale.parse("0.5-5/0.5"))
    adopted = Settings.from_env({}).adopt(record)

    assert (adopted.shards, adopted.max_shards, str(adopted.rating_scale)) == (8, 16, "0.5-5/0.5")
    assert adopted.installation_id == "inst-1"
    assert adopted.keys.drained == range(16)


@pytest.mark.parametrize(("env", "named"), [
    ({"READRATE_SHARDS": "4"}, "READRATE_SHARDS (or --shards) is 4 but the installation has 8 shards"),
    ({"READRATE_RATING_SCALE": "1-5"}, "READRATE_RATING_SCALE (or --rating-scale) is 1-5 but the installation's "
                                        "rating scale is 0.5-5/0.5"),
])
def test_an_explicit_setting_that_differs_from_the_record_is_refused_naming_both_values(env, named):
    from readrate.events.installation import Installation, InstallationMismatch

    record = Installation("inst-1", 8, 8, RatingScale.parse("0.5-5/0.5"))
    with pytest.raises(InstallationMismatch) as refused:
        Settings.from_env(env).adopt(record)
    assert named in str(refused.value)
    assert "inst-1" in str(refused.value)


def test_unrelated_variables_are_ignored():
    assert Settings.from_env({"PATH": "/bin", "READRATE_UNKNOWN": "x"}) == Settings.from_env({})


@pytest.mark.parametrize(
    "name",
    ["REDIS_URL", "DATABASE_URL", "READRATE_SHARDS", "READRATE_PREFIX", "READRATE_RATING_SCALE",
     "READRATE_BATCH_SIZE", "READRATE_LEASE_MS"],
)
def test_a_variable_set_but_empty_means_the_default(name):
    # As click treats an empty envvar, and as `VAR=` lines in compose and env files mean it.
    assert Settings.from_env({name: ""}) == Settings.from_env({})


@pytest.mark.parametrize("url", ["localhost:6379", "http://localhost:6379", "127.0.0.1", "redis:/x"])
def test_a_redis_url_without_a_redis_scheme_is_refused_quoting_it(url):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"REDIS_URL": url})

    assert repr(url) in str(caught.value)
    assert "redis://" in str(caught.value)


@pytest.mark.parametrize("url", ["redis://localhost", "rediss://user:pw@cache:6380/3", "unix:///run/redis.sock"])
def test_a_redis_url_of_each_redis_scheme_is_accepted(url):
    assert Settings.from_env({"REDIS_URL": url}).redis_url == url


def test_the_process_environment_is_read_when_no_mapping_is_given(monkeypatch):
    monkeypatch.setenv("READRATE_PREFIX", "from-env")
    monkeypatch.setenv("READRATE_SHARDS", "8")

    settings = Settings.from_env()

    assert (settings.prefix, settings.shards) == ("from-env", 8)


def test_the_environment_is_read_when_asked_not_when_imported(monkeypatch):
    monkeypatch.setenv("READRATE_SHARDS", "3")
    first = Settings.from_env()
    monkeypatch.setenv("READRATE_SHARDS", "5")

    assert (first.shards, Settings.from_env().shards) == (3, 5)


def test_options_given_on_the_command_line_win_over_the_environment():
    settings = Settings.from_env(
        {"READRATE_SHARDS": "16", "READRATE_PREFIX": "env", "READRATE_RATING_SCALE": "1-10"},
        shards=2, prefix="cli", rating_scale="0.5-5/0.5",
    )

    assert (settings.shards, settings.prefix, str(settings.rating_scale)) == (2, "cli", "0.5-5/0.5")


def test_an_option_left_unset_falls_back_to_the_environment():
    settings = Settings.from_env({"READRATE_SHARDS": "16"}, shards=None, prefix=None)

    assert (settings.shards, settings.prefix) == (16, "readrate")


@pytest.mark.parametrize(
    ("name", "value", "accepted"),
    [
        ("READRATE_SHARDS", "abc", "1-1024"),
        ("READRATE_SHARDS", "0", "1-1024"),
        ("READRATE_SHARDS", "-4", "1-1024"),
        ("READRATE_SHARDS", "1025", "1-1024"),
        ("READRATE_SHARDS", "4.0", "1-1024"),
        ("READRATE_SHARDS", "four", "1-1024"),
        ("READRATE_BATCH_SIZE", "0", "1-1000000"),
        ("READRATE_BATCH_SIZE", "lots", "1-1000000"),
        ("READRATE_LEASE_MS", "99", "100-3600000"),
        ("READRATE_LEASE_MS", "10s", "100-3600000"),
    ],
)
def test_a_bad_number_is_refused_quoting_the_variable_the_value_and_the_accepted_range(name, value, accepted):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({name: value})

    message = str(caught.value)
    assert f"{name}={value!r}" in message
    assert f"accepted: {accepted}" in message


@pytest.mark.parametrize("value", ["stars", "5-1", "1-5/0", " ", "1-", "0-10000/0.5"])
def test_a_bad_rating_scale_is_refused_quoting_it(value):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"READRATE_RATING_SCALE": value})

    assert repr(value) in str(caught.value)


@pytest.mark.parametrize("value", ["has space", "{braces}", "new\nline", " "])
def test_a_prefix_that_cannot_name_redis_keys_is_refused_quoting_it(value):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"READRATE_PREFIX": value})

    assert repr(value) in str(caught.value)


@pytest.mark.parametrize("value", ["a b", ""])
def test_a_bad_prefix_given_as_an_option_is_refused_too(value):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({}, prefix=value)

    assert repr(value) in str(caught.value)


def test_a_bad_rating_scale_given_as_an_option_is_refused_too():
    with pytest.raises(ConfigError, match="'1-5/7'"):
        Settings.from_env({}, rating_scale="1-5/7")


def test_config_errors_are_readrate_errors():
    with pytest.raises(ReadrateError):
        Settings.from_env({"READRATE_SHARDS": "x"})


def test_settings_are_frozen_and_but_makes_a_changed_copy():
    settings = Settings.from_env({})
    other = replace(settings, prefix="other", shards=8)

    assert (settings.prefix, settings.shards) == ("readrate", 4)
    assert (other.prefix, other.shards, other.keys) == ("other", 8, Keys("other", 8))
    with pytest.raises(AttributeError):
        settings.prefix = "x"  # type: ignore[misc]
