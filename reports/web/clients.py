"""Who is asking: the client's address (behind trusted proxies only) and a per-client vote rate limit.

Pure: the request's peer address and headers in, an address out; the limiter keeps
its counts in memory, so the limit holds per collector process.
"""

from __future__ import annotations

import ipaddress
import math
import socket
import time
from collections import OrderedDict
from collections.abc import Callable
from functools import lru_cache

from .config import Network

# A parsed address: (IP version, its value as an integer, its canonical text).
Parsed = tuple[int, int, str]
_MAPPED = b"\0" * 10 + b"\xff\xff"


@lru_cache(maxsize=65_536)
def _address(text: str) -> Parsed | None:
    """The address `text` spells (IPv4-mapped IPv6 as IPv4), None if it is not one. Parsed in C
    (inet_pton), and cached: this runs for every hop of every read, and clients and proxies repeat.
    Some load balancers add the client's port: `203.0.113.7:51234`, `[2001:db8::1]:51234`."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        packed = socket.inet_pton(socket.AF_INET, text)
        return 4, int.from_bytes(packed, "big"), socket.inet_ntop(socket.AF_INET, packed)
    except (OSError, ValueError):
        pass
    try:
        packed = socket.inet_pton(socket.AF_INET6, text.split("%", 1)[0])
    except (OSError, ValueError):
        return None
    if packed.startswith(_MAPPED):
        return 4, int.from_bytes(packed[12:], "big"), socket.inet_ntop(socket.AF_INET, packed[12:])
    return 6, int.from_bytes(packed, "big"), ipaddress.IPv6Address(packed).compressed


class Proxies:
    """READRATE_TRUSTED_PROXIES as integer ranges, compared without building address objects."""

    def __init__(self, networks: tuple[Network, ...]) -> None:
        self.ranges = tuple((net.version, int(net.network_address), int(net.netmask)) for net in networks)

    def __bool__(self) -> bool:
        return bool(self.ranges)

    def trust(self, address: Parsed | None) -> bool:
        if address is None:
            return False
        version, value, _ = address
        return any(v == version and value & mask == network for v, network, mask in self.ranges)


def client_address(peer: str | None, forwarded_for: str | None, proxies: Proxies | tuple[Network, ...]) -> str:
    """The client's address: the peer's, unless the peer is a trusted proxy; then the nearest address
    in X-Forwarded-For that is not a trusted proxy (addresses further left could be forged)."""
    if not isinstance(proxies, Proxies):
        proxies = Proxies(proxies)
    current = peer or ""
    if not forwarded_for or not proxies or not proxies.trust(_address(current)):
        return current
    for hop in reversed([part.strip() for part in forwarded_for.split(",") if part.strip()]):
        address = _address(hop)
        if address is None:
            return current  # garbage in the chain: stop at the last hop we can vouch for
        current = address[2]
        if not proxies.trust(address):
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
