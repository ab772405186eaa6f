"""`readrate serve`: the HTTP collector, readrate.js, the dashboard (and the example page) under uvicorn."""

from __future__ import annotations

import os
import socket

import click
from readrate.events.errors import ConfigError, ReadrateError
from readrate.events.urls import redact
from readrate.workers.db import reachable

from .app import App, note, pass_app


def _check_port(host: str, port: int) -> None:
    """Fail with a clear message before uvicorn would, with a traceback-free exit of its own."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ReadrateError(f"cannot listen on {host}:{port}: {exc.strerror}; choose another --port "
                                "or stop what holds it") from None


@click.command(short_help="Serve the HTTP collector, readrate.js and the dashboard.")
@click.option("--host", default="127.0.0.1", show_default=True, envvar="READRATE_HOST",
              help="Address to listen on (0.0.0.0 for every interface, behind your reverse proxy). [env READRATE_HOST]")
@click.option("--port", default=8787, show_default=True, type=click.IntRange(1, 65535), envvar="READRATE_PORT",
              help="Port to listen on. [env READRATE_PORT]")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64), envvar="READRATE_WEB_WORKERS",
              help="Server processes; one per core is about right. [env READRATE_WEB_WORKERS]")
@click.option("--example", is_flag=True,
              help="Also serve /example/ARTICLE, an article page with the widget on it, and allow anonymous votes.")
@click.option("--check", is_flag=True,
              help="Check the settings, Redis, the database and the port as serving would, say so, and exit.")
@pass_app
def serve(app: App, host: str, port: int, workers: int, example: bool, check: bool) -> None:
    """Serve POST /v1/read, POST /v1/vote, GET /v1/counters, /readrate.js, /healthz,
    /metrics and /dashboard, on one origin.

    Writes answer after Redis took the event; the workers count it as any other.
    Voting needs READRATE_VOTER_SECRET (site-signed voter tokens) or
    READRATE_ANONYMOUS_VOTES=1; pages on other origins need READRATE_ALLOWED_ORIGINS;
    the dashboard needs READRATE_DASHBOARD_TOKEN. Stop with Ctrl-C.
    """
    import uvicorn
    from readrate.reports.web.app import build_app
    from readrate.reports.web.config import CollectorSettings

    overrides = {"example": True, "anonymous_votes": True} if example else {}
    web = CollectorSettings.from_env(**overrides)
    settings = app.installed()  # creates the installation, or refuses one that disagrees with the settings
    _check_port(host, port)
    if check:
        with reachable(settings.database_url), app.engine().connect():
            pass
        note(f"ready to serve {settings.prefix!r} ({redact(settings.redis_url)}, {redact(settings.database_url)}) "
             f"on http://{host}:{port}/")
        return
    note(f"readrate collector for {settings.prefix!r} ({redact(settings.redis_url)}, "
         f"{redact(settings.database_url)}) on http://{host}:{port}/")
    if example:
        note(f"example article page: http://{host}:{port}/example/welcome")
    if web.dashboard_token:
        note(f"dashboard: http://{host}:{port}/dashboard?token=… (READRATE_DASHBOARD_TOKEN)")
    options = {"host": host, "port": port, "loop": "uvloop", "http": "httptools", "access_log": False,
               "log_level": "warning", "proxy_headers": False, "server_header": False, "lifespan": "on"}
    if workers == 1:
        uvicorn.run(build_app(settings, web), **options)
        return
    # Several processes: each builds its app from the environment, so hand the options down through it.
    os.environ.update({"REDIS_URL": app.settings.redis_url, "DATABASE_URL": app.settings.database_url,
                       "READRATE_PREFIX": app.settings.prefix})
    if example:
        os.environ.update({"READRATE_EXAMPLE": "1", "READRATE_ANONYMOUS_VOTES": "1"})
    if app.settings.queue_url:
        os.environ["READRATE_QUEUE_URL"] = app.settings.queue_url
    try:
        uvicorn.run("readrate.reports.web.app:factory", factory=True, workers=workers, **options)
    except SystemExit as exc:
        if exc.code:
            raise ConfigError(f"the server stopped with exit code {exc.code}") from None
