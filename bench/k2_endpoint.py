"""The baseline the HTTP collector replaces: a K2-style hit counter, one UPDATE per page view.

K2 (Joomla's content component), like most CMS hit counters, counts a view with
`UPDATE articles SET hits = hits + 1 WHERE id = ?` while it serves the request, and
shows the hits it reads back from the row. This is that design served exactly like
`readrate serve` (a Starlette app under uvicorn with uvloop, httptools, no access log,
N worker processes), and made as competent as it gets:

- every article's row exists beforehand (`create()`), so a hit is one UPDATE by primary key;
- connections come from a pool (SQLAlchemy's QueuePool) and the statement is executed on the
  pooled driver connection, prepared once per connection by the driver (psycopg's
  `prepare=True`; sqlite3's statement cache), in autocommit: one round trip per hit, no
  BEGIN/COMMIT around it;
- the blocking call runs in Starlette's thread pool (`run_in_threadpool`, what Starlette does
  for a sync endpoint), so the event loop keeps accepting while the database works;
- durability matched to the collector's: readrate answers once Redis took the read, and Redis
  writes its AOF to disk once a second, so the baseline does not wait for an fsync per hit either:
  PostgreSQL sessions run with `synchronous_commit = off`, SQLite in WAL with `synchronous = NORMAL`.
  With the defaults (an fsync per commit) it is slower;
- PostgreSQL gets POOL_SIZE connections per process (4, 8, 16 and 32 measured within 15% of
  each other here, 32 the best by a little; 16 keeps two processes well inside the server's
  100 connections); SQLite gets one, as it takes one writer at a time: the threads then queue
  on the pool, in order, instead of on SQLite's busy handler, which sleeps in steps of up to 100 ms.

It does less than the collector: no bot, prefetch or repeat rules, no visitor id, and a view of
an unknown article is a 404 rather than a new row.

    python -m bench.k2_endpoint --port 8800 --workers 2     # serves DATABASE_URL
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from contextlib import asynccontextmanager

import click
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.pool import QueuePool
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

POOL_SIZE = 16
MAX_LISTING = 100
# What `readrate serve` passes to uvicorn (reports/cli/serve.py), so both servers differ only in the app.
UVICORN_OPTIONS = {"loop": "uvloop", "http": "httptools", "access_log": False, "log_level": "warning",
                   "proxy_headers": False, "server_header": False, "lifespan": "on"}

_CREATE = "CREATE TABLE articles (id VARCHAR(128) PRIMARY KEY, hits BIGINT NOT NULL DEFAULT 0)"
_HIT = {"postgresql": "UPDATE articles SET hits = hits + 1 WHERE id = %s",
        "sqlite": "UPDATE articles SET hits = hits + 1 WHERE id = ?"}


def make_engine(url: str) -> Engine:
    """A pooled engine whose connections autocommit, with the durability described above."""
    sqlite = url.startswith("sqlite")
    engine = create_engine(url, poolclass=QueuePool, pool_size=1 if sqlite else POOL_SIZE, max_overflow=0,
                           pool_timeout=60, pool_reset_on_return=None,
                           connect_args={"check_same_thread": False, "timeout": 30} if sqlite else {})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        if sqlite:
            dbapi_connection.isolation_level = None  # autocommit: each UPDATE is its own transaction
            for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=30000"):
                dbapi_connection.execute(f"PRAGMA {pragma}")
        else:
            dbapi_connection.autocommit = True
            dbapi_connection.execute("SET synchronous_commit = off")

    return engine


class Hits:
    """The two statements K2 runs, at driver level on pooled connections."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.backend = engine.dialect.name
        self._hit = _HIT[self.backend]

    def _execute(self, sql: str, params: tuple) -> list | int:
        connection = self.engine.raw_connection()  # from the pool; close() gives it back
        try:
            cursor = connection.cursor()
            if self.backend == "postgresql":
                cursor.execute(sql, params, prepare=True)
            else:
                cursor.execute(sql, params)
            return cursor.fetchall() if cursor.description else cursor.rowcount
        finally:
            connection.close()

    def hit(self, article: str) -> bool:
        """Count one view; False when there is no such article."""
        return self._execute(self._hit, (article,)) == 1

    def listing(self, ids: list[str]) -> dict[str, int]:
        if self.backend == "postgresql":
            rows = self._execute("SELECT id, hits FROM articles WHERE id = ANY(%s)", (ids,))
        else:
            rows = self._execute(f"SELECT id, hits FROM articles WHERE id IN ({', '.join('?' * len(ids))})",
                                 tuple(ids))
        return dict(rows)


async def read(request: Request) -> Response:
    try:
        article = json.loads(await request.body())["article"]
    except (ValueError, KeyError, TypeError):
        return JSONResponse({"error": 'expected {"article": "ID"}'}, status_code=400)
    if not await run_in_threadpool(request.app.state.hits.hit, str(article)):
        return JSONResponse({"error": f"no article {str(article)[:100]!r}"}, status_code=404)
    return JSONResponse({"status": "counted"})


async def counters(request: Request) -> Response:
    ids = request.query_params.getlist("article")
    if not ids or len(ids) > MAX_LISTING:
        return JSONResponse({"error": f"name 1 to {MAX_LISTING} articles"}, status_code=400)
    hits = await run_in_threadpool(request.app.state.hits.listing, ids)
    return JSONResponse({"articles": {a: {"hits": hits.get(a, 0)} for a in ids}})


async def healthz(request: Request) -> Response:
    await run_in_threadpool(request.app.state.hits.listing, ["healthz"])
    return JSONResponse({"status": "ok"})


def build_app(database_url: str) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette):
        engine = make_engine(database_url)
        app.state.hits = Hits(engine)
        try:
            yield
        finally:
            engine.dispose()

    return Starlette(routes=[Route("/v1/read", read, methods=["POST"]),
                             Route("/v1/counters", counters, methods=["GET"]),
                             Route("/healthz", healthz, methods=["GET"])], lifespan=lifespan)


def factory() -> Starlette:
    """For uvicorn's worker processes: each builds its app from DATABASE_URL at its start-up."""
    return build_app(os.environ["DATABASE_URL"])


# -- setup and checks, run by the bench ------------------------------------------------------------

def create(url: str, article_ids: Iterable[str]) -> None:
    """Make the articles table with a row (0 hits) for every article, in one transaction."""
    engine = create_engine(url)
    marker = "%s" if engine.dialect.name == "postgresql" else "?"
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(_CREATE)
            conn.exec_driver_sql(f"INSERT INTO articles (id) VALUES ({marker})", [(a,) for a in article_ids])
    finally:
        engine.dispose()


def total_hits(url: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.exec_driver_sql("SELECT COALESCE(SUM(hits), 0) FROM articles").scalar())
    finally:
        engine.dispose()


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), required=True, help="Port to listen on.")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True, help="Server processes.")
def main(host: str, port: int, workers: int) -> None:
    """Serve the K2-style hit counter on DATABASE_URL (its articles table made by `create()`)."""
    import uvicorn

    uvicorn.run("bench.k2_endpoint:factory", factory=True, host=host, port=port, workers=workers,
                **UVICORN_OPTIONS)


if __name__ == "__main__":
    main(prog_name="python -m bench.k2_endpoint")
