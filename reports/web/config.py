"""The collector's own settings, read once at start-up (DESIGN.md, "Configuration").

The installation's settings (Redis, database, prefix, read interval) are `Settings`;
these are what only the HTTP side needs: who may vote and how, which origins and
proxies are trusted, the dashboard's token, the vote rate limit.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from readrate.events.errors import ConfigError
from readrate.events.settings import env_flag

# Votes one client may send per minute before it gets 429 (per collector process).
DEFAULT_VOTES_PER_MINUTE = 30
MIN_SECRET_BYTES = 16

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class CollectorSettings:
    """Everything `readrate serve` is configured by beyond the installation's `Settings`."""

    voter_secret: bytes | None = field(default=None, repr=False)
    anonymous_votes: bool = False
    # Origins (scheme://host[:port]) whose pages may send reads and votes; "*" allows any.
    allowed_origins: tuple[str, ...] = ()
    trusted_proxies: tuple[Network, ...] = ()
    dashboard_token: str | None = field(default=None, repr=False)
    votes_per_minute: int = DEFAULT_VOTES_PER_MINUTE
    example: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> CollectorSettings:
        env = os.environ if env is None else env
        secret = env.get("READRATE_VOTER_SECRET") or None
        if secret is not None and len(secret.encode()) < MIN_SECRET_BYTES:
            raise ConfigError(f"READRATE_VOTER_SECRET is {len(secret.encode())} bytes; accepted: at least "
                              f"{MIN_SECRET_BYTES} (e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`)")
        values: dict[str, object] = {
            "voter_secret": secret.encode() if secret else None,
            "anonymous_votes": env_flag(env, "READRATE_ANONYMOUS_VOTES"),
            "allowed_origins": parse_origins(env.get("READRATE_ALLOWED_ORIGINS", "")),
            "trusted_proxies": parse_networks(env.get("READRATE_TRUSTED_PROXIES", "")),
            "dashboard_token": env.get("READRATE_DASHBOARD_TOKEN") or None,
            "votes_per_minute": _count(env, "READRATE_VOTES_PER_MINUTE", DEFAULT_VOTES_PER_MINUTE),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]

    def origin_allowed(self, origin: str) -> bool:
        return "*" in self.allowed_origins or origin.rstrip("/").lower() in self.allowed_origins


def parse_origins(text: str) -> tuple[str, ...]:
    """READRATE_ALLOWED_ORIGINS: comma- or space-separated `scheme://host[:port]`, or `*`."""
    origins = []
    for item in text.replace(",", " ").split():
        origin = item.rstrip("/").lower()
        rest = origin.split("://", 1)[1] if "://" in origin else ""
        if origin != "*" and (not origin.startswith(("http://", "https://")) or not rest or "/" in rest):
            raise ConfigError(f"READRATE_ALLOWED_ORIGINS entry {item!r} is not an origin; accepted: "
                              "scheme://host[:port] such as https://www.example.com, or *")
        origins.append(origin)
    return tuple(origins)


def parse_networks(text: str) -> tuple[Network, ...]:
    """READRATE_TRUSTED_PROXIES: addresses or CIDR networks, comma- or space-separated."""
    networks = []
    for item in text.replace(",", " ").split():
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigError(f"READRATE_TRUSTED_PROXIES entry {item!r} is not an address or network; "
                              "accepted: 10.0.0.1, 10.0.0.0/8, ::1, fd00::/8") from None
    return tuple(networks)


def _count(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if not raw:
        return default
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= 1_000_000:
        raise ConfigError(f"{name}={raw!r} is not a count; accepted: 1-1000000")
    return int(raw)
