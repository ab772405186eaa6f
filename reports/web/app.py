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
from importlib.resources import files

from readrate.events.emitter import Emitter
from readrate.events.settings import Settings
from readrate.workers.db import make_engine
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from .collector import get_counters, post_vote
from .config import CollectorSettings
from .counters import CounterCache
from .example import example_page, example_text
from .metrics import InstallationGauges, metrics_text
from .reads import ReadEndpoint
from .state import Collector

DASHBOARD_COOKIE = "readrate_dashboard"
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
        rest = "&".join(f"{k}={v}" for k, v in request.query_params.multi_items() if k != "token")
        response = RedirectResponse(f"{request.url.path}{'?' + rest if rest else ''}", status_code=303)
        response.set_cookie(DASHBOARD_COOKIE, token, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https")
        return response
    bearer = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    held = request.cookies.get(DASHBOARD_COOKIE) or bearer
    if not held or not hmac.compare_digest(held.encode(), token.encode()):
        return HTMLResponse("<h1>Dashboard</h1><p>Open /dashboard?token=READRATE_DASHBOARD_TOKEN once; a cookie "
                            "keeps you signed in.</p>", status_code=401)
    from .dashboard import dashboard_page

    page = await asyncio.get_running_loop().run_in_executor(
        collector.counters.thread, lambda: dashboard_page(collector.counters.engine, collector.emitter.redis,
                                                          collector.settings_now(), dict(request.query_params)))
    return HTMLResponse(page, headers={"Cache-Control": "no-store"})


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


def build_app(settings: Settings, web: CollectorSettings) -> Dispatch:
    """The collector for an installation whose record exists (`readrate serve` has checked)."""

    @asynccontextmanager
    async def lifespan(app: Starlette):
        emitter = Emitter.from_settings(settings)
        engine = make_engine(settings.database_url)
        collector = Collector(settings, web, emitter, CounterCache(engine))
        collector.registry.register(InstallationGauges(collector))
        app.state.collector = collector
        app.state.script = None  # read on first request
        try:
            yield
        finally:
            collector.close()
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
        if scope["type"] == "http" and scope["path"] == "/v1/read" and scope["method"] in ("POST", "HEAD"):
            await self.read(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def factory() -> Dispatch:
    """For `uvicorn --factory` with several worker processes: each reads the settings at its start-up."""
    return build_app(Settings.from_env(), CollectorSettings.from_env(example=os.environ.get("READRATE_EXAMPLE") == "1"))
