"""GET /v1/counters' data: the page API's counters, cached for a moment per article in this process.

A listing of 20 articles asked for by every visitor must not cost a query per
request: each article's counters are kept MAX_AGE_S seconds (what the answer's
Cache-Control allows browsers and proxies too), and the ids missing from the
cache are fetched together, once even when many requests want them at the same moment.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

from readrate.reports.page import fetch
from readrate.reports.queries import titles
from readrate.workers.schema import votes
from sqlalchemy import Engine, select


class CounterCache:
    """Counters by article id as the page API gives them, as dicts ready for JSON."""

    MAX_AGE_S = 2

    def __init__(self, engine: Engine, *, threads: int = 4) -> None:
        self.engine = engine
        self.thread = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="readrate-db")
        self._cached: dict[str, tuple[float, dict]] = {}
        self._fetching: dict[tuple[str, ...], asyncio.Future] = {}

    async def get(self, ids: list[str]) -> dict[str, dict]:
        now = time.monotonic()
        found: dict[str, dict] = {}
        missing = []
        for article in dict.fromkeys(ids):
            cached = self._cached.get(article)
            if cached is not None and now - cached[0] < self.MAX_AGE_S:
                found[article] = cached[1]
            else:
                missing.append(article)
        if missing:
            found.update(await self._fetch(tuple(missing)))
        return found

    async def _fetch(self, ids: tuple[str, ...]) -> dict[str, dict]:
        pending = self._fetching.get(ids)
        if pending is None:
            pending = asyncio.get_running_loop().run_in_executor(self.thread, self._query, ids)
            self._fetching[ids] = pending
            pending.add_done_callback(lambda _f: self._fetching.pop(ids, None))
        rows = await asyncio.shield(pending)
        at = time.monotonic()
        if len(self._cached) > 100_000:
            self._cached.clear()
        for article, doc in rows.items():
            self._cached[article] = (at, doc)
        return rows

    def _query(self, ids: tuple[str, ...]) -> dict[str, dict]:
        with self.engine.connect() as conn:
            counters = fetch(conn, ids)
        return {a: {"reads": c.reads, "votes": c.votes, "rating_avg": c.rating_avg,
                    "reads_text": c.reads_text, "votes_text": c.votes_text} for a, c in counters.items()}

    async def votes_of(self, voter: str, ids: list[str]) -> dict[str, float]:
        """The ratings `voter` gave to `ids` as the workers counted them."""
        def query() -> dict[str, float]:
            with self.engine.connect() as conn:
                rows = conn.execute(select(votes.c.article_id, votes.c.rating)
                                    .where(votes.c.voter_id == voter, votes.c.article_id.in_(ids)))
                return {a: float(r) for a, r in rows}
        return await asyncio.get_running_loop().run_in_executor(self.thread, query)

    async def title(self, article: str) -> str | None:
        """The article's title from the catalog (`readrate articles import`), if it has one."""
        def query() -> str | None:
            with self.engine.connect() as conn:
                return titles(conn, [article]).get(article)
        return await asyncio.get_running_loop().run_in_executor(self.thread, query)

    def close(self) -> None:
        self.thread.shutdown(wait=False)


class Listings:
    """Whole /v1/counters answers by query string, for pages that ask the same listing again and again."""

    MAX_ENTRIES = 10_000

    def __init__(self) -> None:
        self._answers: dict[bytes, tuple[float, bytes]] = {}

    def get(self, query: bytes) -> tuple[float, bytes] | None:
        return self._answers.get(query)

    def put(self, query: bytes, body: bytes) -> None:
        if len(self._answers) >= self.MAX_ENTRIES:
            self._answers.clear()  # cheaper than tracking age: entries are worth two seconds anyway
        self._answers[query] = (time.monotonic(), body)
