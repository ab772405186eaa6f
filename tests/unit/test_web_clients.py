"""Who is asking (reports/web/clients.py): the client address behind trusted proxies; the vote rate limit."""

from __future__ import annotations

import ipaddress

import pytest

from readrate.reports.web.clients import RateLimit, client_address
from readrate.reports.web.config import parse_networks

PROXIES = parse_networks("10.0.0.0/8, fd00::/8")


# -- client_address ------------------------------------------------------------------


def test_without_trusted_proxies_the_peer_is_the_client_whatever_x_forwarded_for_says():
    assert client_address("198.51.100.4", "203.0.113.7", ()) == "198.51.100.4"
    assert client_address("10.0.0.1", "203.0.113.7", ()) == "10.0.0.1"


def test_a_peer_that_is_not_a_trusted_proxy_cannot_set_the_client_address():
    assert client_address("198.51.100.4", "203.0.113.7", PROXIES) == "198.51.100.4"


def test_behind_a_trusted_proxy_the_forwarded_address_is_the_client():
    assert client_address("10.0.0.1", "203.0.113.7", PROXIES) == "203.0.113.7"


def test_a_trusted_proxy_without_x_forwarded_for_is_itself_the_client():
    assert client_address("10.0.0.1", None, PROXIES) == "10.0.0.1"
    assert client_address("10.0.0.1", "", PROXIES) == "10.0.0.1"


def test_in_a_multi_hop_chain_the_rightmost_untrusted_address_wins():
    chain = "192.0.2.99, 203.0.113.7, 10.0.0.3, 10.0.0.2"

    assert client_address("10.0.0.1", chain, PROXIES) == "203.0.113.7"


def test_forged_leftmost_entries_are_ignored():
    # The client sent "X-Forwarded-For: 1.1.1.1, 8.8.8.8" itself; the proxy appended its address.
    assert client_address("10.0.0.1", "1.1.1.1, 8.8.8.8, 198.51.100.4", PROXIES) == "198.51.100.4"


def test_a_chain_of_only_trusted_proxies_gives_the_leftmost_one():
    assert client_address("10.0.0.1", "10.0.0.3, 10.0.0.2", PROXIES) == "10.0.0.3"


def test_garbage_in_the_chain_stops_at_the_last_address_that_can_be_vouched_for():
    assert client_address("10.0.0.1", "203.0.113.7, unknown, 10.0.0.2", PROXIES) == "10.0.0.2"
    assert client_address("10.0.0.1", "203.0.113.7, not-an-ip", PROXIES) == "10.0.0.1"
    assert client_address("10.0.0.1", "<script>", PROXIES) == "10.0.0.1"


def test_garbage_left_of_the_client_does_not_matter():
    assert client_address("10.0.0.1", "unknown, 203.0.113.7", PROXIES) == "203.0.113.7"


def test_empty_entries_and_spaces_in_the_chain_are_skipped():
    assert client_address("10.0.0.1", " 203.0.113.7 ,, 10.0.0.2 , ", PROXIES) == "203.0.113.7"


def test_ipv6_clients_and_proxies_are_handled():
    assert client_address("fd00::1", "2001:db8::5", PROXIES) == "2001:db8::5"
    assert client_address("fd00::1", "[2001:db8::5]", PROXIES) == "2001:db8::5"
    assert client_address("fd00::1", "2001:db8::5, fd00::2", PROXIES) == "2001:db8::5"
    assert client_address("2001:db8::9", "203.0.113.7", PROXIES) == "2001:db8::9"


def test_an_ipv4_mapped_peer_is_recognised_as_its_trusted_ipv4_proxy():
    assert client_address("::ffff:10.0.0.1", "203.0.113.7", PROXIES) == "203.0.113.7"


def test_an_ipv4_mapped_forwarded_address_comes_out_as_ipv4():
    assert client_address("10.0.0.1", "::ffff:203.0.113.7", PROXIES) == "203.0.113.7"


def test_a_single_trusted_address_is_a_network_of_one():
    only = parse_networks("127.0.0.1")

    assert client_address("127.0.0.1", "203.0.113.7", only) == "203.0.113.7"
    assert client_address("127.0.0.2", "203.0.113.7", only) == "127.0.0.2"


def test_a_missing_peer_gives_an_empty_address():
    assert client_address(None, "203.0.113.7", PROXIES) == ""


# -- RateLimit -------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


@pytest.fixture
def clock():
    return Clock()


def test_per_minute_actions_are_allowed_then_the_next_is_refused_with_a_positive_wait(clock):
    limit = RateLimit(3, clock_s=clock)

    assert [limit.take("c") for _ in range(3)] == [0, 0, 0]
    wait_s = limit.take("c")

    assert wait_s == pytest.approx(20.0)  # one action's worth of a 3-a-minute bucket
    assert RateLimit.retry_after(wait_s) == "20"


def test_a_refused_action_is_not_counted(clock):
    limit = RateLimit(3, clock_s=clock)
    for _ in range(3):
        limit.take("c")

    assert [limit.take("c") for _ in range(5)] == [pytest.approx(20.0)] * 5


def test_the_bucket_refills_over_time(clock):
    limit = RateLimit(3, clock_s=clock)
    for _ in range(3):
        limit.take("c")

    clock.now_s += 10
    assert limit.take("c") == pytest.approx(10.0)
    clock.now_s += 10
    assert limit.take("c") == 0
    assert limit.take("c") > 0


def test_a_client_idle_for_a_minute_has_its_whole_allowance_back_and_no_more(clock):
    limit = RateLimit(3, clock_s=clock)
    for _ in range(3):
        limit.take("c")

    clock.now_s += 3600
    assert [limit.take("c") for _ in range(3)] == [0, 0, 0]
    assert limit.take("c") > 0


def test_separate_clients_have_separate_allowances(clock):
    limit = RateLimit(2, clock_s=clock)
    for _ in range(2):
        limit.take("a")

    assert limit.take("a") > 0
    assert limit.take("b") == 0
    assert limit.take("b") == 0
    assert limit.take("b") > 0


def test_memory_is_bounded_by_forgetting_the_longest_idle_clients(clock):
    limit = RateLimit(1, clock_s=clock, clients=2)
    limit.take("a")
    limit.take("b")
    limit.take("a")  # refused, but "a" is now the most recent
    limit.take("c")  # pushes out "b", the longest idle

    assert len(limit._buckets) == 2
    assert limit.take("a") > 0  # still remembered
    assert limit.take("b") == 0  # forgotten, so a fresh allowance


def test_many_clients_never_hold_more_than_the_bound(clock):
    limit = RateLimit(5, clock_s=clock, clients=100)
    for i in range(1000):
        limit.take(f"203.0.{i // 256}.{i % 256}")

    assert len(limit._buckets) == 100


@pytest.mark.parametrize("wait_s, header", [(0.01, "1"), (1.0, "1"), (1.2, "2"), (20.0, "20"), (0.0, "1")])
def test_retry_after_is_whole_seconds_rounded_up_and_at_least_one(wait_s, header):
    assert RateLimit.retry_after(wait_s) == header


def test_a_forwarded_address_with_a_port_is_the_client_not_garbage():
    proxies = (ipaddress.ip_network("10.0.0.0/8"),)
    assert client_address("10.0.0.1", "203.0.113.7:51234", proxies) == "203.0.113.7"
    assert client_address("10.0.0.1", "[2001:db8::1]:51234", proxies) == "2001:db8::1"
