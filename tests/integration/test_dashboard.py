"""The operator dashboard's page, called as the app calls it, on data counted by the real pipeline: the top
lists, one article, status and dropped events show what the CLI's own functions say, and a Redis or a
database that is down, an unknown article or bad parameters never break the page nor show a password."""

from __future__ import annotations

import html
import re
from dataclasses import replace
from datetime import datetime, timedelta
from html.parser import HTMLParser

import pytest
from redis import Redis
from sqlalchemy.engine import make_url

from conftest import create_pg_database, drop_pg_database, pg_url
from helpers import Pipeline
from readrate.events.emitter import Emitter
from readrate.events.installation import read_record
from readrate.events.rules import drop_commands
from readrate.events.transport import send
from readrate.reports.localredis import free_port
from readrate.reports.queries import TopQuery, top
from readrate.reports.status import gather
from readrate.reports.web.dashboard import dashboard_page
from readrate.reports.windows import Window
from readrate.workers.articles import upsert_articles
from readrate.workers.db import make_engine
from readrate.workers.drain import Drainer

T0 = datetime(2024, 3, 1)
NOW = datetime(2024, 3, 11)
HOSTILE = '<script>alert("x")</script> & <img src=x onerror=alert(1)>'
TITLES = {"a1": "Alpha", "a2": "Beta", "a4": HOSTILE}
PASSWORD = "S3cretDashPw"
VOID = {"meta", "br", "img", "input", "link", "hr", "col", "source", "wbr"}


@pytest.fixture
def loaded(settings, engine, redis):
    """Ten days on four articles (a4 surges on the last one), counted by the real pipeline; the adopted
    settings, as the app hands them over."""
    pipeline = Pipeline(settings, engine, redis)
    for day in range(10):
        start = T0 + timedelta(days=day)
        for i, (article, n) in enumerate([("a1", 5), ("a2", 3), ("a3", 3), ("a4", 5 if day == 9 else 0)]):
            for k in range(n):
                pipeline.read(article, start + timedelta(hours=2 * k + i))
    for article, ratings, day in [("a1", [4, 4, 5, 3], 2), ("a2", [5, 5], 5), ("a3", [2], 8)]:
        for k, rating in enumerate(ratings):
            pipeline.vote(article, rating, f"v{k}", T0 + timedelta(days=day, hours=k))
    pipeline.flush()
    upsert_articles(engine, [{"article_id": a, "title": t, "url": f"https://example.org/{a}"}
                             for a, t in TITLES.items()])
    return settings.adopt(read_record(redis, settings.keys))


def page(settings, engine, redis, **params: str) -> str:
    return dashboard_page(engine, redis, settings, params, now=NOW)


def section(text: str, anchor: str) -> str:
    found = re.search(rf'<section id="{anchor}".*?</section>', text, re.S)
    assert found, f"no section {anchor!r}"
    return found.group(0)


def plain(markup: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", markup)).split()


def table_rows(markup: str) -> list[list[str]]:
    """The body rows of the first table in `markup`, each cell as its text."""
    body = re.search(r"<tbody>(.*?)</tbody>", markup, re.S).group(1)
    return [[" ".join(plain(cell)) for cell in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row, re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)]


class Balance(HTMLParser):
    """Fails on a closing tag that does not match the open one (the page is written, not templated)."""

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.tags: set[str] = set()
        self.attributes: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.attributes.update(name for name, _ in attrs)
        if tag not in VOID:
            self.open.append(tag)

    def handle_endtag(self, tag):
        assert self.open and self.open[-1] == tag, f"</{tag}> closes <{self.open[-1] if self.open else None}>"
        self.open.pop()


def assert_balanced(text: str) -> Balance:
    parser = Balance()
    parser.feed(text)
    parser.close()
    assert parser.open == []
    return parser


@pytest.mark.parametrize("by, expected", [
    ("reads", [("a1", 50, 4), ("a2", 30, 2), ("a3", 30, 1), ("a4", 5, 0)]),
    ("votes", [("a1", 50, 4), ("a2", 30, 2), ("a3", 30, 1)]),
    ("rating", [("a2", 30, 2), ("a1", 50, 4), ("a3", 30, 1)]),
    ("trending", [("a4", 5, 0), ("a1", 35, 0), ("a2", 21, 2), ("a3", 21, 1)]),
])
def test_each_top_list_shows_the_rows_the_cli_query_returns_with_their_counts(loaded, engine, redis, by,
                                                                              expected):
    shown = section(page(loaded, engine, redis, by=by, window="all"), "top")

    rows = table_rows(shown)
    body = shown.split("<tbody>")[1]
    ids = [re.search(r"[?;]article=(\w+)", row).group(1) for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)]
    assert [(i, int(r[2].replace(",", "")), int(r[3])) for i, r in zip(ids, rows)] == expected
    assert [r[0] for r in rows] == [str(n) for n in range(1, len(expected) + 1)]
    # The oracle: the CLI's own query, for the window the page names.
    with engine.connect() as conn:
        window = Window() if by != "trending" else Window(datetime(2024, 3, 4), NOW)
        oracle = top(conn, TopQuery(by=by, limit=20, window=window), NOW)
    assert [r.article_id for r in oracle] == ids
    scores = [float(r[-1].replace(",", "")) for r in rows]
    assert scores == [pytest.approx(r.score, abs=0.005) for r in oracle]
    assert shown.count('<svg class="readrate-chart"') == 1


def test_the_page_is_self_contained_with_no_script_and_nothing_fetched_from_elsewhere(loaded, engine, redis):
    shown = page(loaded, engine, redis, article="a1", window="all")

    parsed = assert_balanced(shown)
    assert parsed.tags & {"script", "iframe", "img", "object", "embed", "image", "use"} == set()
    # The one link is an empty icon, so that browsers do not ask for /favicon.ico.
    assert shown.count("<link") == 1 and '<link rel="icon" href="data:,">' in shown
    assert parsed.attributes & {"src", "srcset", "style"} == set()
    css = re.search(r"<style>(.*?)</style>", shown, re.S).group(1)
    assert "url(" not in css and "@import" not in css
    assert shown.startswith("<!DOCTYPE html>") and shown.count('<svg class="readrate-chart"') == 4


def test_the_totals_and_the_window_links_follow_the_window_asked_for(loaded, engine, redis):
    shown = page(loaded, engine, redis, window="7d", by="votes")

    facts = " ".join(plain(section(shown, "top")))
    # From 2024-03-04: a1, a2, a3 read 5, 3, 3 a day for 7 days, a4 5 times; 2 votes of a2 (day 5), 1 of a3.
    assert "reads 82 votes 3 active articles 4" in facts
    for window in ("24h", "30d", "all"):
        assert f'href="?by=votes&amp;window={window}"' in shown
    assert 'href="?window=7d"' in shown  # reads is the default ranking
    assert '<a href="?by=votes&amp;window=7d" aria-current="page">' in shown


def test_an_article_shows_its_counters_daily_charts_and_star_histogram(loaded, engine, redis):
    shown = section(page(loaded, engine, redis, article="a2", window="all"), "article")

    facts = " ".join(plain(shown))
    assert "rank by reads 2 reads 30 votes 2 average 5.00" in facts
    assert shown.count('<svg class="readrate-chart"') == 3
    assert "Reads per day" in shown and "Votes per day" in shown and "Votes by rating (scale 1-5)" in shown
    for rating in range(1, 6):  # every rating of the installation's scale is a bar, voted or not
        assert f"<title>{rating} ★: {2 if rating == 5 else 0}</title>" in shown
    daily = table_rows(shown)
    assert daily == [[(T0 + timedelta(days=d)).date().isoformat(), "3", "2" if d == 5 else "0"]
                     for d in range(10)]
    assert '<a href="https://example.org/a2" rel="noopener noreferrer">' in shown


def test_an_unknown_article_is_named_in_a_message_and_the_rest_of_the_page_is_shown(loaded, engine, redis):
    shown = page(loaded, engine, redis, article="no-such-article")

    assert "article &#x27;no-such-article&#x27; is unknown" in section(shown, "article")
    assert "<table" in section(shown, "top") and "<table" in section(shown, "dropped")
    assert_balanced(shown)


def test_hostile_titles_and_parameters_are_shown_as_text_never_as_markup(loaded, engine, redis):
    shown = page(loaded, engine, redis, window="all", article='"><script>alert(2)</script>', by="<b>x</b>")

    assert "<script" not in shown and "<img" not in shown and "<b>x" not in shown
    assert html.escape(HOSTILE) in shown  # a4's title, in the table and the chart
    assert "by=&#x27;&lt;b&gt;x&lt;/b&gt;&#x27; is not a ranking" in shown
    assert_balanced(shown)


def test_bad_parameters_fall_back_to_the_defaults_and_say_what_is_accepted(loaded, engine, redis):
    shown = page(loaded, engine, redis, by="popular", window="lately", limit="0")

    assert "by=&#x27;popular&#x27; is not a ranking; accepted: reads, votes, rating, trending" in shown
    assert "&#x27;lately&#x27; is not a time; accepted:" in shown
    assert "limit=&#x27;0&#x27; is not a number of articles; accepted: 1-500" in shown
    assert "Top 20 by reads, the last 7d" in shown


def test_the_status_section_shows_backlog_dead_letters_and_the_warnings_of_readrate_status(loaded, engine,
                                                                                          redis):
    emitter = Emitter(redis, keys=loaded.keys, scale=loaded.rating_scale, strict=True, enqueue=False)
    assert emitter.emit_many([emitter.make_read("a1", None, NOW - timedelta(hours=1)) for _ in range(3)]) == 3
    other = (loaded.keys.shard_of("a1") + 1) % loaded.shards
    redis.xadd(loaded.keys.stream(other), {"k": "vote", "a": "a9", "t": "1", "v": "u", "r": "9"})
    with Drainer(loaded, engine=engine, redis=Redis.from_url(loaded.redis_url)) as drainer:
        drainer.drain(other)  # the bad vote becomes a dead letter; the reads of a1 wait on their shard
    status = gather(loaded, redis, engine)

    shown = section(page(loaded, engine, redis), "status")

    facts = " ".join(plain(shown))
    assert status.backlog == 3 and "events not yet counted 3" in facts
    assert "dead letters 1" in facts and "workers alive 0" in facts
    for warning in status.warnings:
        assert html.escape(warning) in shown
    assert "Checks that fail" in shown and "0 workers alive" in shown
    assert "rating &#x27;…&#x27; is not on the scale 1-5" in shown


def test_dropped_events_are_shown_per_day_and_reason_for_the_last_seven_days(loaded, engine, redis):
    emitter = Emitter(redis, keys=loaded.keys, scale=loaded.rating_scale, strict=True, enqueue=False)
    assert emitter.read("a1", at=NOW - timedelta(hours=2), user_agent="Googlebot/2.1") is False
    day = (NOW - timedelta(days=1)).date()
    send(redis, drop_commands(loaded.keys, 1, "prefetch", day, 2)
         + drop_commands(loaded.keys, 3, "repeat", day, 3))

    rows = table_rows(section(page(loaded, engine, redis), "dropped"))

    assert [r[0] for r in rows] == [(NOW.date() - timedelta(days=back)).isoformat()
                                    for back in range(6, -1, -1)]
    assert rows[-2] == [day.isoformat(), "1", "2", "3", "0", "6"]
    assert all(r[1:] == ["0"] * 5 for r in rows[:-2] + rows[-1:])


def test_a_redis_that_is_down_leaves_the_database_sections_and_shows_no_password(loaded, engine):
    down_url = f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/0"
    down = Redis.from_url(down_url, socket_connect_timeout=0.5)
    settings = replace(loaded, redis_url=down_url)

    shown = page(settings, engine, down, window="all")

    for anchor in ("status", "dropped"):
        assert "Redis unavailable" in section(shown, anchor)
    assert len(table_rows(section(shown, "top"))) == 4
    assert PASSWORD not in shown and ":***@127.0.0.1" in shown
    assert_balanced(shown)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_database_that_is_down_leaves_the_redis_sections_and_shows_no_password(loaded, redis, pg_admin):
    name = create_pg_database(pg_admin)
    drop_pg_database(pg_admin, name)  # a server that answers, for a database that is not there
    gone = make_url(pg_url(name)).set(drivername="postgresql", password=PASSWORD)
    gone = gone.render_as_string(hide_password=False)
    refused = f"postgresql://u:{PASSWORD}@127.0.0.1:{free_port()}/db?password={PASSWORD}"
    for url in (gone, refused):
        engine = make_engine(url)
        settings = replace(loaded, database_url=url)
        try:
            shown = page(settings, engine, redis, article="a1")
        finally:
            engine.dispose()
        for anchor in ("article", "top", "status"):
            assert "Database unavailable" in section(shown, anchor)
        assert "<table>" in section(shown, "dropped")
        assert PASSWORD not in shown
        assert_balanced(shown)


def test_a_password_in_redis_url_and_database_url_never_appears_on_a_working_page(loaded, engine, redis):
    settings = replace(loaded, database_url=loaded.database_url.replace("postgres@", f"postgres:{PASSWORD}@"),
                       queue_url=f"redis://user:{PASSWORD}@127.0.0.1:6379/0")

    shown = page(settings, engine, redis, article="a1", window="all")

    assert PASSWORD not in shown
    assert "queue redis://user:***@127.0.0.1:6379/0" in shown
