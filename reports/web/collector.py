"""The collector's vote and counters endpoints: POST /v1/vote, GET /v1/counters (a contract).

POST /v1/read, the hot path, is reads.py; the two share their validation and answers.
A vote answers only after Redis took or refused it. Bad input is a 4xx with an
`error` that quotes the value and says what is accepted; Redis down is a 503 with
Retry-After, within the page emitter's short timeouts, never a hang and never a 500.
"""

from __future__ import annotations

import time

import orjson
from readrate.events.clock import now_ms
from readrate.events.emitter import QUEUED
from readrate.events.errors import InvalidEvent
from readrate.events.model import Vote, check_article_id
from readrate.events.rules import is_bot
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .counters import CounterCache
from .reads import MAX_BODY_BYTES, RETRY_AFTER_S, article_of, parse_object, unavailable
from .state import VOTER_COOKIE, BadRequest, Collector

MAX_ARTICLES_PER_LISTING = 100
PUBLIC_CACHE = {"Cache-Control": f"public, max-age={CounterCache.MAX_AGE_S}"}
# How long a voter's own rating is remembered in Redis, to show it before the workers have counted it.
OWN_RATING_TTL_S = 3600


def error(status: int, text: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": text}, status_code=status, headers=headers)


async def json_body(request: Request) -> dict:
    """The request's JSON object (any content type: sendBeacon sends text/plain), at most 4 KB."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise BadRequest(413, f"the body is {int(declared):,} bytes; accepted: at most {MAX_BODY_BYTES:,}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise BadRequest(413, f"the body exceeds {MAX_BODY_BYTES:,} bytes")
    return parse_object(bytes(body))


def _rating(doc: dict) -> object:
    rating = doc.get("rating")
    if rating is None:
        raise BadRequest(400, 'field "rating" is missing; expected {"article": "ID", "rating": 4}')
    if isinstance(rating, bool) or not isinstance(rating, (int, float)):
        raise BadRequest(400, f'field "rating" is {type(rating).__name__}, not a number: {str(rating)[:40]!r}')
    return rating


async def post_vote(request: Request) -> Response:
    collector: Collector = request.app.state.collector
    try:
        collector.check_origin(request)
        doc = await json_body(request)
        article = article_of(doc)
        rating = collector.scale().check(_rating(doc))
        token = doc.get("voter_token")
        if token is not None and not isinstance(token, str):
            raise BadRequest(400, f'field "voter_token" is {type(token).__name__}, not a string')
        if token is None and collector.web.anonymous_votes:
            await collector.load_cookie_secret()
        voter, new_cookie = collector.voter(request, token)
        wait_s = collector.vote_limit.take(collector.address(request))
        if wait_s:
            raise BadRequest(429, f"too many votes from this client; at most {collector.web.votes_per_minute} "
                                  "a minute", {"Retry-After": collector.vote_limit.retry_after(wait_s)})
        event = Vote(article, now_ms(), voter, rating)
        if is_bot(request.headers.get("user-agent", "")):
            collector.count("vote", "bot")
            collector.round_trips.count_drop(event, "bot")
            return JSONResponse({"status": "ignored", "reason": "bot"})
        outcome = await collector.send_vote(event, OWN_RATING_TTL_S)
        if outcome != QUEUED:
            raise unavailable(outcome)  # type: ignore[arg-type]
    except InvalidEvent as exc:
        collector.count("vote", "400")
        return error(400, str(exc))
    except BadRequest as exc:
        collector.count("vote", "unavailable" if exc.status == 503 else str(exc.status))
        return error(exc.status, exc.error, exc.headers)
    collector.count("vote", "queued")
    response = JSONResponse({"status": "queued", "your_rating": rating}, status_code=202)
    if new_cookie is not None:
        collector.set_voter_cookie(response, request, new_cookie)
    return response


async def get_counters(request: Request) -> Response:
    collector: Collector = request.app.state.collector
    # Read from the raw query: parsing 20 `article=` pairs costs more than the whole cached answer.
    query = request.scope["query_string"]
    personal = b"voter_token=" in query or (
        collector.web.anonymous_votes and VOTER_COOKIE.encode() in (request.headers.get("cookie") or "").encode())
    if not personal:
        # A listing's answer is the same for every visitor for a moment: built once, sent as is.
        cached = collector.listings.get(query)
        if cached is not None and time.monotonic() - cached[0] < CounterCache.MAX_AGE_S:
            return Response(cached[1], media_type="application/json", headers=PUBLIC_CACHE)
    ids = request.query_params.getlist("article")
    if not ids:
        return error(400, "name at least one article: /v1/counters?article=ID&article=ID2")
    if len(ids) > MAX_ARTICLES_PER_LISTING:
        return error(400, f"{len(ids)} articles asked for; accepted: at most {MAX_ARTICLES_PER_LISTING} a request")
    for article in ids:
        try:
            check_article_id(article)
        except InvalidEvent as exc:
            return error(400, str(exc))
    try:
        found = await collector.counters.get(ids)
    except Exception as exc:  # noqa: BLE001 - a database that does not answer is a 503, not a 500
        return error(503, f"the counters are not available now ({type(exc).__name__}); try again shortly",
                     {"Retry-After": RETRY_AFTER_S})
    if collector.web.anonymous_votes:
        try:
            await collector.load_cookie_secret()
        except BadRequest:
            pass  # Redis is down: the counters answer without the voter's own rating
    voter = collector.known_voter(request) if personal else None
    yours = await collector.own_ratings(voter, ids) if voter else {}
    scale = collector.scale()
    body = orjson.dumps({
        "articles": {a: {**found[a], "your_rating": yours.get(a)} for a in ids},
        "scale": {"min": float(scale.low), "max": float(scale.high), "step": float(scale.step)},
    })
    if personal:
        return Response(body, media_type="application/json", headers={"Cache-Control": "private, max-age=0"})
    collector.listings.put(query, body)
    return Response(body, media_type="application/json", headers=PUBLIC_CACHE)
