"""Who is asking: the client's address (behind trusted proxies only) and a per-client vote rate limit.

Pure: the request's peer address and headers in, an address out; the limiter keeps
its counts in memory, so the limit holds per collector process.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from functools import lru_cache

from .config import Network


@lru_cache(maxsize=65_536)
def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address `text` spells (IPv4-mapped IPv6 as IPv4), None if it is not one; cached: parsing
    in pure Python costs more than the rest of a read, and busy clients and proxies repeat.
    Some load balancers add the client's port: `203.0.113.7:51234`, `[2001:db8::1]:51234`."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address, proxies: tuple[Network, ...]) -> bool:
    return address is not None and any(address in network for network in proxies)


def client_address(peer: str | None, forwarded_for: str | None, proxies: tuple[Network, ...]) -> str:
    """The client's address: the peer's, unless the peer is a trusted proxy; then the nearest address
    in X-Forwarded-For that is not a trusted proxy (addresses further left could be forged)."""
    current = peer or ""
    if not forwarded_for or not proxies or not _trusted(_address(current), proxies):
        return current
    for hop in reversed([part.strip() for part in forwarded_for.split(",") if part.strip()]):
        address = _address(hop)
        if address is None:
            return current  # garbage in the chain: stop at the last hop we can vouch for
        current = str(address)
        if not _trusted(address, proxies):
            return current
    return current


class RateLimit:
    """At most `per_minute` actions per client in any minute (a token bucket per client), in memory."""

    def __init__(self, per_minute: int, *, clock_s: Callable[[], float] = time.monotonic,
                 clients: int = 100_000) -> None:
        self.per_minute = per_minute
        self._clock_s = clock_s
        self._clients = clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, client: str) -> float:
        """0 when `client` may act now (and counts the action); otherwise seconds until it may."""
        now = self._clock_s()
        rate_s = self.per_minute / 60.0
        tokens, at = self._buckets.pop(client, (float(self.per_minute), now))
        tokens = min(float(self.per_minute), tokens + (now - at) * rate_s)
        wait_s = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait_s = (1 - tokens) / rate_s
        self._buckets[client] = (tokens, now)
        while len(self._buckets) > self._clients:  # forget the longest-idle clients first
            self._buckets.popitem(last=False)
        return wait_s

    @staticmethod
    def retry_after(wait_s: float) -> str:
        return str(max(1, math.ceil(wait_s)))
