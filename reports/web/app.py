"""The collector's ASGI app, assembled from its routes (a composition root, like the CLI).

`build_app()` wires the page emitter (events), the database (workers) and the page
API, dashboard and example page (reports) into one Starlette app; `readrate serve`
runs it under uvicorn. Nothing below imports this module.
"""

from __future__ import annotations

import asyncio
import gzip
import hmac
import os
from contextlib import asynccontextmanager
from functools import partial
from importlib.resources import files
from urllib.parse import urlencode

from readrate.events.connections import CLI, PAGE, redis_client, stream_client
from readrate.events.emitter import Emitter
from readrate.events.settings import Settings
from readrate.workers.db import make_engine
from redis import Redis
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from .collector import get_counters, post_vote
from .config import CollectorSettings
from .counters import CounterCache
from .dashboard import dashboard_page
from .example import example_page, example_text
from .metrics import InstallationGauges, metrics_text
from .pipe import AsyncPipe
from .reads import ReadEndpoint
from .state import Collector

DASHBOARD_COOKIE = "readrate_dashboard"
# The dashboard is one self-contained page: no script, no request anywhere, styles inline.
DASHBOARD_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; "
                 "base-uri 'none'; form-action 'none'")
SCRIPT_MAX_AGE_S = 3600


def _script() -> tuple[bytes, bytes]:
    source = files("readrate.reports.web").joinpath("static/readrate.js").read_bytes()
    return source, gzip.compress(source, 9, mtime=0)


async def readrate_js(request: Request) -> Response:
    if request.app.state.script is None:
        request.app.state.script = _script()
    plain, packed = request.app.state.script
    headers = {"Cache-Control": f"public, max-age={SCRIPT_MAX_AGE_S}", "Vary": "Accept-Encoding",
               "Access-Control-Allow-Origin": "*"}
    if "gzip" in request.headers.get("accept-encoding", ""):
        return Response(packed, media_type="application/javascript",
                        headers={**headers, "Content-Encoding": "gzip"})
    return Response(plain, media_type="application/javascript", headers=headers)


async def healthz(request: Request) -> Response:
    collector: Collector = request.app.state.collector
    checks = {}
    try:
        await asyncio.wait_for(collector.round_trips.call(collector.emitter.redis.ping), 1.0)
        checks["redis"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["redis"] = f"unavailable ({type(exc).__name__})"
    try:
        await asyncio.wait_for(collector.counters.get(["readrate-healthz"]), 2.0)
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["database"] = f"unavailable ({type(exc).__name__})"
    healthy = all(v == "ok" for v in checks.values())
    return JSONResponse({"status": "ok" if healthy else "degraded", **checks}, status_code=200 if healthy else 503)


async def metrics(request: Request) -> Response:
    collector: Collector = request.app.state.collector
    body = await collector.round_trips.call(metrics_text, collector)
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")


async def dashboard(request: Request) -> Response:
    collector: Collector = request.app.state.collector
    token = collector.web.dashboard_token
    if token is None:
        return HTMLResponse("<h1>Dashboard off</h1><p>Set READRATE_DASHBOARD_TOKEN to turn the dashboard on.</p>",
                            status_code=403)
    given = request.query_params.get("token")
    if given is not None:
        if not hmac.compare_digest(given.encode(), token.encode()):
            return HTMLResponse("<h1>Wrong token</h1>", status_code=403)
        # The token goes into a cookie and out of the address bar (and out of logs and history).
        rest = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "token"])
        response = RedirectResponse(f"{request.url.path}{'?' + rest if rest else ''}", status_code=303)
        response.set_cookie(DASHBOARD_COOKIE, token, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https")
        return response
    bearer = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    held = request.cookies.get(DASHBOARD_COOKIE) or bearer
    if not held or not hmac.compare_digest(held.encode(), token.encode()):
        return HTMLResponse("<h1>Dashboard</h1><p>Open /dashboard?token=READRATE_DASHBOARD_TOKEN once; a cookie "
                            "keeps you signed in.</p>", status_code=401)
    operator = request.app.state.operator
    page = await asyncio.get_running_loop().run_in_executor(
        collector.counters.thread, partial(dashboard_page, collector.counters.engine, operator.redis,
                                           collector.settings_now(), dict(request.query_params),
                                           queue_redis=operator.queue_redis))
    return HTMLResponse(page, headers={"Cache-Control": "no-store", "Content-Security-Policy": DASHBOARD_CSP})


async def example(request: Request) -> Response:
    """An article page with the widget under it; a title from `readrate articles import` where there is one."""
    collector: Collector = request.app.state.collector
    article = request.path_params["article"]
    title, paragraphs = example_text(article)
    try:
        known = await collector.counters.title(article)
    except Exception:  # noqa: BLE001 - the page renders without its title; the widget says what it can
        known = None
    return HTMLResponse(example_page(article, title=known or title, paragraphs=paragraphs))


class Operator:
    """The dashboard's Redis clients, with the CLI's timeouts, made on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._redis: Redis | None = None
        self._queue: Redis | None = None

    @property
    def redis(self) -> Redis:
        if self._redis is None:
            self._redis = stream_client(self.settings.redis_url, CLI, cluster=self.settings.cluster)
        return self._redis

    @property
    def queue_redis(self) -> Redis | None:
        if self.settings.queue_url is None and not self.settings.cluster:
            return None
        if self._queue is None:
            self._queue = redis_client(self.settings.queue_redis_url, CLI)
        return self._queue

    def close(self) -> None:
        for client in (self._redis, self._queue):
            if client is not None:
                client.close()


def build_app(settings: Settings, web: CollectorSettings) -> Dispatch:
    """The collector for an installation whose record exists (`readrate serve` has checked)."""

    @asynccontextmanager
    async def lifespan(app: Starlette):
        emitter = Emitter.from_settings(settings)
        engine = make_engine(settings.database_url)
        pipe = None if settings.cluster else AsyncPipe(settings.redis_url, PAGE)
        collector = Collector(settings, web, emitter, CounterCache(engine), pipe)
        collector.registry.register(InstallationGauges(collector))
        app.state.collector = collector
        # The dashboard's status queries wait for a busy Redis as the CLI does, not the page's 0.25 s.
        app.state.operator = Operator(settings)
        app.state.script = None  # read on first request
        try:
            yield
        finally:
            if pipe is not None:
                await pipe.close()
            collector.close()
            app.state.operator.close()
            engine.dispose()

    routes = [
        Route("/v1/vote", post_vote, methods=["POST"]),
        Route("/v1/counters", get_counters, methods=["GET"]),
        Route("/readrate.js", readrate_js, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/dashboard", dashboard, methods=["GET"]),
    ]
    if web.example:
        routes.append(Route("/example/{article:path}", example, methods=["GET"]))
    origins = [o for o in web.allowed_origins if o != "*"]
    middleware = [Middleware(CORSMiddleware, allow_origins=origins, allow_origin_regex=".*" if "*" in
                             web.allowed_origins else None, allow_credentials=True, allow_methods=["GET", "POST"],
                             allow_headers=["Content-Type"], max_age=86_400)]
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    return Dispatch(app, ReadEndpoint(app.state))


class Dispatch:
    """Hands POST /v1/read to its bare endpoint and everything else (preflights too) to Starlette."""

    def __init__(self, app: Starlette, read: ReadEndpoint) -> None:
        self.app = app
        self.read = read

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"] == "/v1/read" and scope["method"] != "OPTIONS":
            await self.read(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def factory() -> Dispatch:
    """For `uvicorn --factory` with several worker processes: each reads the settings at its start-up."""
    return build_app(Settings.from_env(), CollectorSettings.from_env(example=os.environ.get("READRATE_EXAMPLE") == "1"))
