"""Article metadata (titles and URLs) that reports show next to ids."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Engine
from sqlalchemy.dialects import postgresql, sqlite

from .db import writing
from .schema import articles

# Rows per INSERT statement (and transaction): bounds memory and lock time on a big catalogue.
ROWS_PER_STATEMENT = 5_000


def upsert_articles(engine: Engine, rows: Iterable[dict]) -> int:
    """Insert or replace titles and URLs; returns how many rows were written."""
    written = 0
    batch: list[dict] = []
    with writing(engine.connect()) as conn:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        stmt = dialect.insert(articles)
        stmt = stmt.on_conflict_do_update(index_elements=["article_id"],
                                          set_={"title": stmt.excluded.title, "url": stmt.excluded.url})
        for row in rows:
            batch.append(row)
            if len(batch) == ROWS_PER_STATEMENT:
                with conn.begin():
                    conn.execute(stmt, batch)
                written += len(batch)
                batch = []
        if batch:
            with conn.begin():
                conn.execute(stmt, batch)
            written += len(batch)
    return written
