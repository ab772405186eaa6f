"""What the collector's endpoints share for the life of one server process.

`Collector` holds the settings, the `Emitter` behind the round trips, the day's salt,
the vote limiter, the counters cache and the request counters `/metrics` exports, and
answers the per-request questions that need them: is this origin allowed, who is the
client, who is the voter.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import replace
from datetime import date

from prometheus_client import CollectorRegistry, Counter
from readrate.events.emitter import Emitter
from readrate.events.scale import RatingScale
from readrate.events.settings import Settings
from readrate.events.tokens import BadToken, sign, verify
from readrate.events.transport import send
from readrate.events.visitors import DailySalt
from readrate.events.wire import Keys, rating_text
from redis import Redis
from starlette.requests import Request
from starlette.responses import Response

from .clients import Proxies, RateLimit, client_address
from .config import CollectorSettings
from .counters import CounterCache, Listings
from .pipe import AsyncPipe
from .roundtrips import RoundTrips

VOTER_COOKIE = "readrate_voter"
COOKIE_MAX_AGE_S = 365 * 86_400
ANONYMOUS_PREFIX = "anon-"


class BadRequest(Exception):
    """An answer other than 2xx, decided while reading a request: its status, error text and headers."""

    def __init__(self, status: int, error: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.headers = headers or {}


class Collector:
    """The state one collector process serves every request from."""

    def __init__(self, settings: Settings, web: CollectorSettings, emitter: Emitter, counters: CounterCache,
                 pipe: AsyncPipe | None = None) -> None:
        self.settings = settings
        self.web = web
        self.round_trips = RoundTrips(emitter, pipe)
        self.counters = counters
        self.listings = Listings()
        self._salt = DailySalt(emitter.redis, settings.prefix)
        self.vote_limit = RateLimit(web.votes_per_minute)
        self.proxies = Proxies(web.trusted_proxies)
        self._cookie_secret: bytes | None = web.voter_secret
        self.registry = CollectorRegistry()
        self.requests = Counter("readrate_collector_requests", "Requests to the collector's write endpoints, "
                                "by endpoint and outcome (queued, a drop reason, or an HTTP status).",
                                ["endpoint", "outcome"], registry=self.registry)
        self._counted: dict[tuple[str, str], Counter] = {}

    @property
    def emitter(self) -> Emitter:
        return self.round_trips.emitter

    def keys(self) -> Keys:
        """The installation's current layout, as the emitter follows it."""
        return self.emitter.keys

    def scale(self) -> RatingScale:
        return self.emitter.scale

    def settings_now(self) -> Settings:
        """The settings with the installation's current shards and scale (the record may have changed)."""
        keys = self.keys()
        return replace(self.settings, shards=keys.shards, max_shards=keys.max_shards, rating_scale=self.scale())

    def count(self, endpoint: str, outcome: str) -> None:
        child = self._counted.get((endpoint, outcome))
        if child is None:  # labels() takes a lock and builds a key: once per pair, not per request
            child = self._counted[endpoint, outcome] = self.requests.labels(endpoint, outcome)
        child.inc()

    # -- who is asking -----------------------------------------------------------------------------

    def address(self, request: Request) -> str:
        peer = request.client.host if request.client else ""
        return client_address(peer, request.headers.get("x-forwarded-for"), self.proxies)

    def cross_origin(self, origin: str | None, scheme: str, host: str | None) -> str | None:
        """The origin to answer with CORS headers (None: same origin or no browser); BadRequest 403 when a
        page on another origin may not write here (READRATE_ALLOWED_ORIGINS)."""
        if not origin:
            return None
        if origin.lower() == f"{scheme}://{host or ''}".lower():
            return None
        if self.web.origin_allowed(origin):
            return origin
        raise BadRequest(403, f"origin {origin[:100]!r} may not send events here; allowed: "
                              f"{', '.join(self.web.allowed_origins) or 'this collector’s own origin only'} "
                              "(READRATE_ALLOWED_ORIGINS)")

    def check_origin(self, request: Request) -> None:
        self.cross_origin(request.headers.get("origin"), request.url.scheme, request.headers.get("host"))

    async def salt(self, day: date) -> bytes:
        if self._salt._day == day:
            return self._salt._salt
        return await self.round_trips.call(self._salt.for_day, day)

    # -- voters ---------------------------------------------------------------------------------------

    def voter(self, request: Request, token: object) -> tuple[str, str | None]:
        """(voter, a new cookie to set or None). Raises BadRequest 403 for a refused token."""
        if token is not None:
            if self.web.voter_secret is None:
                raise BadRequest(403, "this collector takes no voter tokens: READRATE_VOTER_SECRET is not set")
            try:
                return verify(token, self.web.voter_secret), None
            except BadToken as exc:
                raise BadRequest(403, str(exc)) from None
        if not self.web.anonymous_votes:
            raise BadRequest(403, "voter_token is required: anonymous votes are off (READRATE_ANONYMOUS_VOTES)")
        known = self._cookie_voter(request)
        if known is not None:
            return known, None
        cookie = sign(ANONYMOUS_PREFIX + secrets.token_hex(12), self.cookie_secret())
        return verify(cookie, self.cookie_secret()), cookie

    def _cookie_voter(self, request: Request) -> str | None:
        cookie = request.cookies.get(VOTER_COOKIE)
        if not cookie or self._cookie_secret is None:
            return None
        try:
            voter = verify(cookie, self.cookie_secret())
        except BadToken:
            return None  # a stale or forged cookie: the voter gets a new one
        return voter if voter.startswith(ANONYMOUS_PREFIX) else None

    def known_voter(self, request: Request) -> str | None:
        """The voter a counters request comes from (its token or anonymous cookie), if any."""
        token = request.query_params.get("voter_token")
        if token and self.web.voter_secret is not None:
            try:
                return verify(token, self.web.voter_secret)
            except BadToken:
                return None
        if self.web.anonymous_votes and request.cookies.get(VOTER_COOKIE):
            return self._cookie_voter(request)
        return None

    def cookie_secret(self) -> bytes:
        """The key anonymous voters' cookies are signed with (`load_cookie_secret` has run)."""
        assert self._cookie_secret is not None, "load_cookie_secret() first"
        return self._cookie_secret

    async def load_cookie_secret(self) -> None:
        """Know the cookie key: READRATE_VOTER_SECRET, or one kept in Redis for this installation (so
        every collector process knows it), made on first use. Raises BadRequest 503 while Redis is down."""
        if self._cookie_secret is not None:
            return

        def fetch() -> bytes:
            redis: Redis = self.emitter.redis
            key = f"{{{self.settings.prefix}}}:cookie-secret"
            redis.set(key, secrets.token_bytes(32), nx=True)
            return redis.get(key)

        try:
            self._cookie_secret = await self.round_trips.call(fetch)
        except Exception as exc:
            raise BadRequest(503, "Redis is not available; try again shortly", {"Retry-After": "5"}) from exc

    def set_voter_cookie(self, response: Response, request: Request, cookie: str) -> None:
        # Over HTTPS the cookie may go with requests from allowed pages of other sites (SameSite=None needs
        # Secure); browsers that block third-party cookies still drop it: serve the collector first-party.
        secure = request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"
        response.set_cookie(VOTER_COOKIE, cookie, max_age=COOKIE_MAX_AGE_S, httponly=True,
                            samesite="none" if secure else "lax", secure=secure)

    # -- the voter's own rating, before and after the drain -------------------------------------------

    def own_rating_key(self, voter: str, article: str) -> str:
        keys = self.keys()
        digest = hashlib.blake2b(f"{voter}\n{article}".encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()
        return f"{keys.tag(keys.shard_of(article))}:yours:{digest}"

    async def send_vote(self, event, ttl_s: int) -> object:
        mark = ("SET", self.own_rating_key(event.voter, event.article_id), rating_text(event.rating), "EX", ttl_s)
        return await self.round_trips.send(event, (mark,))

    async def own_ratings(self, voter: str, ids: list[str]) -> dict[str, float]:
        """The ratings `voter` gave: the latest one sent through a collector, else the counted one."""
        commands = [("GET", self.own_rating_key(voter, article)) for article in ids]
        try:
            replies = await self.round_trips.call(send, self.emitter.redis, commands)
        except Exception:  # noqa: BLE001 - the counted ratings still answer
            replies = [None] * len(ids)
        recent = {a: float(r) for a, r in zip(ids, replies) if r is not None and not isinstance(r, Exception)}
        rest = [a for a in ids if a not in recent]
        counted = await self.counters.votes_of(voter, rest) if rest else {}
        return {**counted, **recent}

    def close(self) -> None:
        self.round_trips.close()
        self.counters.close()
