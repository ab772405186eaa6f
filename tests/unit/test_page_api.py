"""The page API: an article page's counters and widget text, and a listing's in one round trip."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import event

from readrate.events.errors import DatabaseUnavailable
from readrate.reports.page import Counters, PageCounters
from helpers import Pipeline

T0 = datetime(2024, 3, 1)


@pytest.fixture
def page(settings, engine, redis):
    pipeline = Pipeline(settings, engine, redis)
    for i in range(563):
        pipeline.read("popular", T0 + timedelta(minutes=i))
    pipeline.read("once", T0)
    for voter, rating in enumerate([5, 4, 4, 3, 5, 5, 4, 2, 5, 4, 5, 5]):
        pipeline.vote("popular", rating, f"voter-{voter}", T0 + timedelta(hours=voter))
    pipeline.vote("once", 3, "voter-0", T0)
    pipeline.vote("once", 5, "voter-0", T0 + timedelta(days=1))  # a re-vote replaces the first one
    pipeline.flush()
    return PageCounters(engine)


def selects(engine) -> list[str]:
    """Every statement the engine sends that reads the counters (recorded as they go out)."""
    seen: list[str] = []
    event.listen(engine, "before_cursor_execute",
                 lambda conn, cursor, statement, *rest: seen.append(statement) if "article_stats" in statement
                 else None)
    return seen


def test_an_article_page_gets_its_reads_votes_average_and_widget_text(page):
    counters = page.get("popular")
    assert (counters.reads, counters.votes, counters.rating_avg) == (563, 12, 51 / 12)
    assert counters.reads_text == "Read 563 times"
    assert counters.votes_text == "Rate this item (12 votes)"


def test_one_read_and_one_vote_are_said_in_the_singular(page):
    counters = page.get("once")
    assert (counters.reads, counters.votes, counters.rating_avg) == (1, 1, 5.0)
    assert (counters.reads_text, counters.votes_text) == ("Read 1 time", "Rate this item (1 vote)")


def test_an_article_nobody_has_read_yet_gets_zeros_not_an_error(page):
    counters = page.get("brand-new")
    assert counters == Counters("brand-new", 0, 0, None)
    assert (counters.reads_text, counters.votes_text) == ("Read 0 times", "Rate this item (0 votes)")


def test_a_listing_gets_every_article_in_the_order_asked_with_one_query(page, engine):
    seen = selects(engine)
    listing = page.get_many(["once", "brand-new", "popular", "once"])
    assert list(listing) == ["once", "brand-new", "popular"]
    assert [(c.reads, c.votes) for c in listing.values()] == [(1, 1), (0, 0), (563, 12)]
    assert len(seen) == 1


def test_a_listing_of_thousands_costs_one_query_per_thousand_articles(page, engine):
    seen = selects(engine)
    ids = [f"missing-{i}" for i in range(2400)] + ["popular"]
    listing = page.get_many(ids)
    assert len(listing) == 2401 and listing["popular"].reads == 563
    assert len(seen) == 3


def test_large_counts_are_written_with_thousands_separators():
    assert Counters("a", reads=1_234_567, votes=1_000).reads_text == "Read 1,234,567 times"
    assert Counters("a", reads=0, votes=1_000).votes_text == "Rate this item (1,000 votes)"


def test_an_unreachable_database_raises_the_readrate_error_for_it():
    page = PageCounters.from_url("postgresql://postgres@127.0.0.1:1/none")
    with pytest.raises(DatabaseUnavailable, match="unreachable"):
        page.get("popular")
    page.close()
