"""POST /v1/read as a bare ASGI endpoint: the collector's hot path.

Every page view of every article comes through here, so it skips what a read does
not need of Starlette's request and response objects and middleware (about two
thirds of a request's cost in a profile, bench/RESULTS.md): it reads the few headers
it uses from the ASGI scope, answers with prepared bytes, and adds the CORS headers
itself. The rules, validation and answers are the ones the other endpoints use.
"""

from __future__ import annotations

import json
import logging
from http.cookies import SimpleCookie

import orjson
from readrate.events.clock import MS_PER_DAY, day_date, now_ms
from readrate.events.emitter import QUEUED, REPEAT
from readrate.events.errors import ConfigError, InvalidEvent
from readrate.events.model import Read, check_article_id
from readrate.events.rules import PREFETCH, PURPOSE_HEADERS, screen
from readrate.events.visitors import visitor_id

from .clients import client_address
from .state import BadRequest, Collector

log = logging.getLogger("readrate.collector")

MAX_BODY_BYTES = 4096
RETRY_AFTER_S = "5"
EXCLUDE_COOKIE = "readrate_exclude"
_JSON = (b"content-type", b"application/json")
_QUEUED = b'{"status":"queued"}'
_IGNORED = {reason: json.dumps({"status": "ignored", "reason": reason}).encode()
            for reason in ("bot", "prefetch", "repeat", "excluded")}
_PURPOSE = tuple(name.encode() for name in PURPOSE_HEADERS)


def parse_object(body: bytes) -> dict:
    """A request body's JSON object; BadRequest 400 saying what is wrong otherwise."""
    try:
        doc = orjson.loads(body)  # strict JSON (no NaN), at most 1,024 levels deep, several times json's speed
    except orjson.JSONDecodeError as exc:
        raise BadRequest(400, f'the body is not JSON ({exc}); expected an object such as {{"article": "ID"}}') from None
    if not isinstance(doc, dict):
        raise BadRequest(400, f'the body is JSON {type(doc).__name__}, not an object such as {{"article": "ID"}}')
    return doc


def article_of(doc: dict) -> str:
    article = doc.get("article")
    if article is None:
        raise BadRequest(400, 'field "article" is missing; expected {"article": "ID"}')
    if not isinstance(article, str):
        raise BadRequest(400, f'field "article" is {type(article).__name__}, not a string: {str(article)[:40]!r}')
    return article


def unavailable(exc: BaseException) -> BadRequest:
    """The 503 for an event Redis did not take (or an installation that cannot take events)."""
    if isinstance(exc, ConfigError):
        return BadRequest(503, f"the collector cannot store events: {exc}", {"Retry-After": RETRY_AFTER_S})
    return BadRequest(503, "Redis did not take the event; try again shortly", {"Retry-After": RETRY_AFTER_S})


class ReadEndpoint:
    """An ASGI app answering POST /v1/read for the collector kept in `state.collector`."""

    def __init__(self, state) -> None:
        self.state = state

    async def __call__(self, scope, receive, send) -> None:
        collector: Collector = self.state.collector
        headers = dict(scope["headers"])
        origin = headers.get(b"origin")
        try:
            allowed = collector.cross_origin(origin.decode("latin-1") if origin else None, scope["scheme"],
                                             (headers.get(b"host") or b"").decode("latin-1"))
        except BadRequest as exc:
            await self._answer(send, collector, exc.status, exc, None)
            return
        try:
            status, body = await self._read(scope, receive, headers, collector)
        except BadRequest as exc:
            status, body = exc.status, exc
        await self._answer(send, collector, status, body, allowed)

    async def _read(self, scope, receive, headers: dict, collector: Collector) -> tuple[int, bytes]:
        if scope["method"] == "HEAD":  # a link checker or a prefetch: nobody read anything
            collector.count("read", PREFETCH)
            return 200, _IGNORED[PREFETCH]
        if scope["method"] != "POST":
            raise BadRequest(405, f"{scope['method']} is not accepted here: POST {{\"article\": \"ID\"}}",
                             {"Allow": "POST"})
        body = await _body(receive, headers)
        now = now_ms()
        try:
            article = check_article_id(article_of(parse_object(body)))
        except InvalidEvent as exc:
            raise BadRequest(400, str(exc)) from None
        user_agent = headers.get(b"user-agent", b"").decode("latin-1")
        purpose = None
        for name in _PURPOSE:
            if name in headers:  # rare: only speculative loads carry these
                purpose = ",".join(headers[n].decode("latin-1") for n in _PURPOSE if n in headers)
                break
        reason = screen(user_agent, purpose=purpose, method=scope["method"], excluded=_excluded(headers))
        if reason is not None:
            collector.count("read", reason)
            collector.round_trips.count_drop(Read(article, now), reason)
            return 200, _IGNORED[reason]
        try:
            salt = await collector.salt(day_date(now // MS_PER_DAY))
        except Exception as exc:  # noqa: BLE001 - Redis down: the same answer as when the XADD fails
            raise unavailable(exc) from None
        peer = scope["client"][0] if scope.get("client") else ""
        forwarded = headers.get(b"x-forwarded-for")
        address = client_address(peer, forwarded.decode("latin-1") if forwarded else None,
                                 collector.proxies)
        outcome = await collector.round_trips.send(Read(article, now, visitor_id(salt, address, user_agent)))
        if outcome == QUEUED:
            collector.count("read", "queued")
            return 202, _QUEUED
        if outcome == REPEAT:
            collector.count("read", REPEAT)
            return 200, _IGNORED[REPEAT]
        raise unavailable(outcome)  # type: ignore[arg-type]

    @staticmethod
    async def _answer(send, collector: Collector, status: int, body, allowed: str | None) -> None:
        extra = []
        if isinstance(body, BadRequest):
            collector.count("read", "unavailable" if body.status == 503 else str(body.status))
            extra = [(k.lower().encode(), v.encode()) for k, v in body.headers.items()]
            body = json.dumps({"error": body.error}).encode()
        if allowed is not None:
            extra += [(b"access-control-allow-origin", allowed.encode("latin-1")),
                      (b"access-control-allow-credentials", b"true"), (b"vary", b"Origin")]
        await send({"type": "http.response.start", "status": status,
                    "headers": [_JSON, (b"content-length", str(len(body)).encode()), *extra]})
        await send({"type": "http.response.body", "body": body})


async def _body(receive, headers: dict) -> bytes:
    declared = headers.get(b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise BadRequest(413, f"the body is {int(declared):,} bytes; accepted: at most {MAX_BODY_BYTES:,}")
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if len(body) > MAX_BODY_BYTES:
            raise BadRequest(413, f"the body exceeds {MAX_BODY_BYTES:,} bytes")
        if not message.get("more_body"):
            return body


def _excluded(headers: dict) -> bool:
    cookie = headers.get(b"cookie")
    if not cookie or EXCLUDE_COOKIE.encode() not in cookie:
        return False
    jar = SimpleCookie()
    jar.load(cookie.decode("latin-1"))
    return EXCLUDE_COOKIE in jar and jar[EXCLUDE_COOKIE].value == "1"
