"""`CollectorSettings.from_env` (reports/web/config.py): the collector's part of the configuration."""

from __future__ import annotations

import ipaddress

import pytest

from readrate.events.errors import ConfigError, ReadrateError
from readrate.reports.web.config import (
    DEFAULT_VOTES_PER_MINUTE, CollectorSettings, parse_networks, parse_origins,
)

SECRET = "s3cret-0123456789abcdef"  # 23 bytes


def test_an_empty_environment_gives_a_closed_collector():
    settings = CollectorSettings.from_env({})

    assert settings.voter_secret is None
    assert settings.anonymous_votes is False
    assert settings.allowed_origins == ()
    assert settings.trusted_proxies == ()
    assert settings.dashboard_token is None
    assert settings.votes_per_minute == DEFAULT_VOTES_PER_MINUTE == 30


def test_every_collector_variable_is_read():
    settings = CollectorSettings.from_env({
        "READRATE_VOTER_SECRET": SECRET,
        "READRATE_ANONYMOUS_VOTES": "yes",
        "READRATE_ALLOWED_ORIGINS": "https://www.example.com",
        "READRATE_TRUSTED_PROXIES": "10.0.0.0/8",
        "READRATE_DASHBOARD_TOKEN": "dash-token",
        "READRATE_VOTES_PER_MINUTE": "60",
    })

    assert settings.voter_secret == SECRET.encode()
    assert settings.anonymous_votes is True
    assert settings.allowed_origins == ("https://www.example.com",)
    assert settings.trusted_proxies == (ipaddress.ip_network("10.0.0.0/8"),)
    assert settings.dashboard_token == "dash-token"
    assert settings.votes_per_minute == 60


def test_overrides_win_over_the_environment_and_none_overrides_are_ignored():
    settings = CollectorSettings.from_env({"READRATE_VOTES_PER_MINUTE": "60"}, votes_per_minute=5,
                                          dashboard_token=None, example=True)

    assert settings.votes_per_minute == 5
    assert settings.example is True


def test_the_environment_is_os_environ_by_default(monkeypatch):
    for name in ["READRATE_VOTER_SECRET", "READRATE_ANONYMOUS_VOTES", "READRATE_ALLOWED_ORIGINS",
                 "READRATE_TRUSTED_PROXIES", "READRATE_DASHBOARD_TOKEN"]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("READRATE_VOTES_PER_MINUTE", "7")

    assert CollectorSettings.from_env().votes_per_minute == 7


# -- the voter secret -------------------------------------------------------------------


@pytest.mark.parametrize("secret", ["short", "0123456789abcde"])
def test_a_voter_secret_shorter_than_sixteen_bytes_is_refused_without_showing_it(secret):
    with pytest.raises(ConfigError) as caught:
        CollectorSettings.from_env({"READRATE_VOTER_SECRET": secret})

    message = str(caught.value)
    assert f"READRATE_VOTER_SECRET is {len(secret)} bytes; accepted: at least 16" in message
    assert secret not in message
    assert isinstance(caught.value, ReadrateError)


def test_a_sixteen_byte_secret_is_enough_counting_bytes_not_characters():
    def secret(value: str) -> bytes | None:
        return CollectorSettings.from_env({"READRATE_VOTER_SECRET": value}).voter_secret

    assert secret("0123456789abcdef") == b"0123456789abcdef"
    assert secret("éééééééé") == "éééééééé".encode()  # 8 characters, 16 bytes


def test_an_empty_voter_secret_means_none():
    assert CollectorSettings.from_env({"READRATE_VOTER_SECRET": ""}).voter_secret is None


def test_the_secret_and_the_dashboard_token_never_appear_in_the_settings_repr():
    settings = CollectorSettings.from_env({"READRATE_VOTER_SECRET": SECRET,
                                           "READRATE_DASHBOARD_TOKEN": "dash-9f8e7d"})

    assert SECRET not in repr(settings)
    assert "dash-9f8e7d" not in repr(settings)


# -- origins ---------------------------------------------------------------------------------


def test_origins_are_comma_or_space_separated_and_normalised():
    origins = parse_origins("https://WWW.Example.com/, http://localhost:8080  https://b.example")

    assert origins == ("https://www.example.com", "http://localhost:8080", "https://b.example")


def test_a_star_allows_every_origin():
    settings = CollectorSettings.from_env({"READRATE_ALLOWED_ORIGINS": "*"})

    assert settings.allowed_origins == ("*",)
    assert settings.origin_allowed("https://anything.example")


def test_only_listed_origins_are_allowed_in_any_case_and_with_a_trailing_slash():
    settings = CollectorSettings.from_env({"READRATE_ALLOWED_ORIGINS": "https://www.example.com"})

    assert settings.origin_allowed("https://www.example.com")
    assert settings.origin_allowed("HTTPS://WWW.EXAMPLE.COM/")
    assert not settings.origin_allowed("http://www.example.com")
    assert not settings.origin_allowed("https://www.example.com.evil.test")
    assert not settings.origin_allowed("null")


@pytest.mark.parametrize("entry", ["www.example.com", "ftp://files.example.com", "//www.example.com",
                                   "https://www.example.com/page", "https://a.example/b/"])
def test_an_entry_that_is_not_an_origin_is_refused_quoting_it(entry):
    with pytest.raises(ConfigError) as caught:
        CollectorSettings.from_env({"READRATE_ALLOWED_ORIGINS": f"https://ok.example, {entry}"})

    message = str(caught.value)
    assert f"READRATE_ALLOWED_ORIGINS entry {entry!r} is not an origin" in message
    assert "scheme://host[:port]" in message and "*" in message


# -- trusted proxies ---------------------------------------------------------------------


def test_proxies_are_addresses_or_networks_of_either_family():
    networks = parse_networks("10.0.0.1, 172.16.0.0/12 ::1  fd00::/8")

    expected = ["10.0.0.1/32", "172.16.0.0/12", "::1/128", "fd00::/8"]
    assert networks == tuple(ipaddress.ip_network(n) for n in expected)


def test_a_network_with_host_bits_set_is_taken_as_its_network():
    assert parse_networks("10.1.2.3/8") == (ipaddress.ip_network("10.0.0.0/8"),)


def test_no_proxies_is_an_empty_tuple():
    assert parse_networks("") == () == parse_networks("  ,  ")


@pytest.mark.parametrize("entry", ["10.0.0.0/33", "proxy.internal", "10.0.0", "fd00::/129", "*"])
def test_an_entry_that_is_not_an_address_or_network_is_refused_quoting_it(entry):
    with pytest.raises(ConfigError) as caught:
        CollectorSettings.from_env({"READRATE_TRUSTED_PROXIES": f"10.0.0.1 {entry}"})

    message = str(caught.value)
    assert f"READRATE_TRUSTED_PROXIES entry {entry!r} is not an address or network" in message
    assert "10.0.0.0/8" in message


# -- flags and counts ----------------------------------------------------------------------


@pytest.mark.parametrize("raw, value", [
    ("1", True), ("true", True), ("YES", True), ("on", True), (" yes ", True),
    ("", False), ("0", False), ("false", False), ("no", False), ("off", False),
])
def test_the_anonymous_votes_flag_reads_yes_and_no(raw, value):
    assert CollectorSettings.from_env({"READRATE_ANONYMOUS_VOTES": raw}).anonymous_votes is value


def test_a_flag_that_is_not_yes_or_no_is_refused_quoting_it():
    with pytest.raises(ConfigError) as caught:
        CollectorSettings.from_env({"READRATE_ANONYMOUS_VOTES": "maybe"})

    assert "READRATE_ANONYMOUS_VOTES='maybe' is not a yes/no value; accepted: 1, 0, true" in str(caught.value)


@pytest.mark.parametrize("raw", ["0", "-1", "abc", "1.5", "1000001", " 30"])
def test_a_votes_per_minute_that_is_not_a_count_is_refused_quoting_it(raw):
    with pytest.raises(ConfigError) as caught:
        CollectorSettings.from_env({"READRATE_VOTES_PER_MINUTE": raw})

    assert f"READRATE_VOTES_PER_MINUTE={raw!r} is not a count; accepted: 1-1000000" in str(caught.value)


@pytest.mark.parametrize("raw, value", [("1", 1), ("1000000", 1_000_000), ("", DEFAULT_VOTES_PER_MINUTE)])
def test_votes_per_minute_takes_counts_from_one_to_a_million(raw, value):
    assert CollectorSettings.from_env({"READRATE_VOTES_PER_MINUTE": raw}).votes_per_minute == value


def test_a_votes_per_minute_of_non_ascii_digits_is_refused_as_a_config_error():
    with pytest.raises(ConfigError, match="READRATE_VOTES_PER_MINUTE"):
        CollectorSettings.from_env({"READRATE_VOTES_PER_MINUTE": "²"})


def test_an_origin_without_a_host_is_refused():
    with pytest.raises(ConfigError, match="https://"):
        CollectorSettings.from_env({"READRATE_ALLOWED_ORIGINS": "https://"})
