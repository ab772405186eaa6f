"""Integration: the HTTP collector (`readrate serve`) as browsers and page scripts see it, over real HTTP.

Real `readrate serve` processes (tests/collector_server.py) on the shared Redis, each with a
key prefix and a database of its own (SQLite, and PostgreSQL too where counts are checked);
real `readrate worker --burst` processes count what they took. One server runs per
configuration for the whole module; every test uses articles, voters and client addresses
of its own, so tests on one server do not see each other. Client addresses come from
X-Forwarded-For, which the servers trust from 127.0.0.1 (READRATE_TRUSTED_PROXIES). Counts
are compared with tallies computed here from what was sent (DESIGN.md, "HTTP collector").
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import hmac
import importlib.util
import itertools
import json
import random
import re
import shutil
import socket
import subprocess
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pytest
from collector_server import PrivateRedis, Running, ServerPool, start_collector
from conftest import REDIS_URL
from helpers import READRATE, counters, env_for, run_cli, wait_until
from readrate.events.settings import Settings
from readrate.workers.schema import reads_daily, votes
from redis import Redis
from sqlalchemy import Engine, func, select

KINDS = ("sqlite", "postgresql")
SCALE = "0.5-5/0.5"
STARS = [n / 2 for n in range(1, 11)]
SECRET = "collector-tests-voter-secret-0123"
OTHER_SECRET = "some-other-site-voter-secret-4567"
DASHBOARD_TOKEN = "dashboard-token-of-the-tests"
GOOD_ORIGIN = "https://news.example"
EVIL_ORIGIN = "https://evil.example"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:126.0) Gecko/20100101 Firefox/126.0"
OTHER_BROWSER = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) "
                 "Version/17.4 Safari/605.1.15")
BOTS = {
    "googlebot": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "curl": "curl/8.5.0",
    "empty": "",
    "headless-chrome": ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                        "HeadlessChrome/124.0.0.0 Safari/537.36"),
}
PREFETCHES = {
    "sec-purpose-prefetch": {"Sec-Purpose": "prefetch"},
    "purpose-prefetch": {"Purpose": "prefetch"},
    "sec-purpose-prerender": {"Sec-Purpose": "prefetch;prerender"},
}
CONFIGS = {
    # Site-signed voter tokens only, one other origin, the default read interval, a tight vote limit.
    "signed": {"READRATE_VOTER_SECRET": SECRET, "READRATE_ALLOWED_ORIGINS": GOOD_ORIGIN,
               "READRATE_TRUSTED_PROXIES": "127.0.0.1", "READRATE_DASHBOARD_TOKEN": DASHBOARD_TOKEN,
               "READRATE_VOTES_PER_MINUTE": "3", "READRATE_READ_INTERVAL": "30m"},
    # Anonymous votes (cookie voters, no secret), every view counted, no dashboard token.
    "open": {"READRATE_ANONYMOUS_VOTES": "1", "READRATE_READ_INTERVAL": "0",
             "READRATE_TRUSTED_PROXIES": "127.0.0.1"},
}
QUEUED = (202, {"status": "queued"})


def ignored(reason: str) -> tuple[int, dict]:
    return 200, {"status": "ignored", "reason": reason}


def queued_vote(rating: float) -> tuple[int, dict]:
    return 202, {"status": "queued", "your_rating": rating}


def answer(response: httpx.Response) -> tuple[int, dict]:
    return response.status_code, response.json()


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


_addresses = itertools.count(1)


def new_address() -> str:
    """A client address no other request of this module uses (10.0.0.0/8, sent as X-Forwarded-For)."""
    n = next(_addresses)
    return f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"


def client(address: str | None = None, agent: str = BROWSER, **headers: str) -> dict[str, str]:
    """The headers of one browser behind the trusted proxy."""
    return {"User-Agent": agent, "X-Forwarded-For": address or new_address(), **headers}


def token(voter: str, secret: str = SECRET) -> str:
    """The voter token contract, written out: VOTER + "." + hex(HMAC-SHA256(secret, VOTER))."""
    return voter + "." + hmac.new(secret.encode(), voter.encode(), hashlib.sha256).hexdigest()


def a_vote(rating: float = 4, article: str | None = None) -> dict:
    """A valid vote by a voter of its own."""
    return {"article": article or unique("vote"), "rating": rating, "voter_token": token(unique("voter"))}


@pytest.fixture(scope="module")
def collectors(request, redis, tmp_path_factory):
    pool = ServerPool(redis, REDIS_URL, tmp_path_factory.mktemp("collectors"), CONFIGS,
                      lambda: request.getfixturevalue("pg_admin"), rating_scale=SCALE)
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture(scope="module")
def signed(collectors) -> Running:
    return collectors.get("signed")


def stats(engine: Engine, article: str) -> tuple[int, int, float]:
    """(reads, votes, rating_sum) of one article in article_stats; zeros when it has no row."""
    return counters(engine).get(article, (0, 0, 0.0))


def votes_of(engine: Engine, articles: list[str]) -> dict[tuple[str, str], float]:
    with engine.connect() as conn:
        rows = conn.execute(select(votes.c.article_id, votes.c.voter_id, votes.c.rating)
                            .where(votes.c.article_id.in_(articles)))
        return {(a, v): float(r) for a, v, r in rows}


def reads_per_day_summed(engine: Engine, articles: list[str]) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(select(reads_daily.c.article_id, func.sum(reads_daily.c.reads))
                            .where(reads_daily.c.article_id.in_(articles)).group_by(reads_daily.c.article_id))
        return {a: int(n) for a, n in rows}


# -- counting rules ----------------------------------------------------------------------------------


@pytest.mark.parametrize("agent", BOTS.values(), ids=BOTS.keys())
def test_a_read_from_a_bot_user_agent_is_ignored_as_a_bot(signed, agent):
    assert answer(signed.post("/v1/read", {"article": unique("bot")}, client(agent=agent))) == ignored("bot")


def test_a_read_without_any_user_agent_header_is_ignored_as_a_bot(signed):
    with httpx.Client(trust_env=False) as http:
        del http.headers["user-agent"]
        response = http.post(f"{signed.url}/v1/read", json={"article": unique("no-agent")},
                             headers={"X-Forwarded-For": new_address()})
    assert answer(response) == ignored("bot")


@pytest.mark.parametrize("purpose", PREFETCHES.values(), ids=PREFETCHES.keys())
def test_a_prefetch_or_prerender_is_ignored_as_a_prefetch(signed, purpose):
    response = signed.post("/v1/read", {"article": unique("prefetch")}, client(**purpose))
    assert answer(response) == ignored("prefetch")


def test_a_browser_with_the_exclude_cookie_is_ignored_as_excluded_and_one_without_it_counts(signed):
    article = unique("exclude")
    excluded = signed.post("/v1/read", {"article": article}, client(Cookie="readrate_exclude=1"))
    assert answer(excluded) == ignored("excluded")
    counted = signed.post("/v1/read", {"article": article}, client(Cookie="readrate_exclude=0; other=1"))
    assert answer(counted) == QUEUED


def test_a_second_read_of_the_same_article_by_the_same_client_within_the_interval_is_a_repeat(signed):
    article, headers = unique("repeat"), client()
    assert answer(signed.post("/v1/read", {"article": article}, headers)) == QUEUED
    assert answer(signed.post("/v1/read", {"article": article}, headers)) == ignored("repeat")


def test_the_same_client_reading_another_article_counts(signed):
    headers = client()
    assert answer(signed.post("/v1/read", {"article": unique("first")}, headers)) == QUEUED
    assert answer(signed.post("/v1/read", {"article": unique("second")}, headers)) == QUEUED


def test_the_same_address_with_another_user_agent_is_another_visitor_and_counts(signed):
    article, address = unique("agents"), new_address()
    assert answer(signed.post("/v1/read", {"article": article}, client(address, BROWSER))) == QUEUED
    assert answer(signed.post("/v1/read", {"article": article}, client(address, OTHER_BROWSER))) == QUEUED


def test_behind_a_trusted_proxy_another_x_forwarded_for_address_counts(signed):
    article, one, other = unique("proxied"), new_address(), new_address()
    # The client is the nearest untrusted hop; what it put further left could be forged.
    assert answer(signed.post("/v1/read", {"article": article}, client(f"1.1.1.1, {one}"))) == QUEUED
    assert answer(signed.post("/v1/read", {"article": article}, client(f"1.1.1.1, {other}"))) == QUEUED
    forged_left = signed.post("/v1/read", {"article": article}, client(f"9.9.9.9, {other}"))
    assert answer(forged_left) == ignored("repeat")


def test_x_forwarded_for_from_a_peer_that_is_not_a_trusted_proxy_is_ignored(signed):
    article, agent = unique("untrusted"), f"{BROWSER} {uuid.uuid4().hex}"
    # 127.0.0.2 is loopback too, but not in READRATE_TRUSTED_PROXIES: its X-Forwarded-For is not believed.
    with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2"), trust_env=False) as http:
        first, second = (http.post(f"{signed.url}/v1/read", json={"article": article},
                                   headers={"User-Agent": agent, "X-Forwarded-For": new_address()})
                         for _ in range(2))
        assert (answer(first), answer(second)) == (QUEUED, ignored("repeat"))


@pytest.mark.parametrize("kind", KINDS)
def test_with_a_read_interval_of_zero_every_view_counts(collectors, kind):
    running, article, headers = collectors.get("open", kind), unique("every-view"), client()
    assert [answer(running.post("/v1/read", {"article": article}, headers)) for _ in range(3)] == [QUEUED] * 3
    running.drain()
    assert stats(running.engine, article) == (3, 0, 0.0)


def dropped_metrics(running: Running) -> dict[tuple[str, str], int]:
    """readrate_dropped_events from GET /metrics: (reason, day) -> count."""
    found = {}
    for line in running.get("/metrics").text.splitlines():
        match = re.fullmatch(r"readrate_dropped_events\{(.*)\} (\S+)", line)
        if match:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
            found[(labels["reason"], labels["day"])] = int(float(match.group(2)))
    return found


def test_dropped_reads_are_counted_per_reason_in_report_dropped_and_in_metrics(signed):
    today = datetime.now(UTC).date().isoformat()
    before = dropped_metrics(signed)
    requests = [client(agent=agent) for agent in BOTS.values()]
    requests += [client(**purpose) for purpose in PREFETCHES.values()]
    requests += [client(Cookie="readrate_exclude=1")] * 2
    sent = Counter(signed.post("/v1/read", {"article": unique("dropped")}, headers).json()["reason"]
                   for headers in requests)
    article, headers = unique("dropped"), client()
    outcomes = [answer(signed.post("/v1/read", {"article": article}, headers)) for _ in range(4)]
    assert outcomes == [QUEUED] + [ignored("repeat")] * 3
    sent["repeat"] += 3
    assert sent == {"bot": len(BOTS), "prefetch": len(PREFETCHES), "excluded": 2, "repeat": 3}
    expected = {reason: before.get((reason, today), 0) + n for reason, n in sent.items()}

    def exported() -> dict[str, int]:
        return {reason: dropped_metrics(signed).get((reason, today)) for reason in sent}

    # Only repeats are counted before the answer; the other drops go with the collector's next round trip.
    wait_until(lambda: exported() == expected, timeout=10, message=f"/metrics to show the drops {expected}")
    result = run_cli(signed.settings, "report", "dropped", "--format", "json", "--since", "1d")
    assert result.returncode == 0, result.stderr
    row = {r["day"]: r for r in json.loads(result.stdout)}[today]
    assert {reason: row[reason] for reason in sent} == expected
    assert row["total"] == sum(expected.values())


@pytest.mark.parametrize("kind", KINDS)
def test_fifty_concurrent_identical_reads_from_one_client_are_queued_once_and_counted_once(collectors, kind):
    running, article, headers = collectors.get("signed", kind), unique("race"), client()

    async def burst(n: int) -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=running.url, timeout=30, trust_env=False,
                                     limits=httpx.Limits(max_connections=n)) as http:
            return await asyncio.gather(*(http.post("/v1/read", json={"article": article}, headers=headers)
                                          for _ in range(n)))

    responses = asyncio.run(burst(50))
    outcomes = Counter(r.json().get("reason", r.json()["status"]) for r in responses)
    assert outcomes == {"queued": 1, "repeat": 49}
    running.drain()
    assert stats(running.engine, article) == (1, 0, 0.0)


# -- bad input -----------------------------------------------------------------------------------------

VOTER = "reader-1"
GOOD_TOKEN = token(VOTER)
MAC = GOOD_TOKEN.rpartition(".")[2]
NESTED = b"[" * 2000 + b"]" * 2000  # 4,000 bytes, deeper than Python's JSON decoder recurses


@dataclass
class Chunked:
    """A body sent without Content-Length (chunked), so only the server's running count can refuse it."""

    data: bytes

    def parts(self):
        yield from (self.data[i:i + 1024] for i in range(0, len(self.data), 1024))


def vote_body(**fields) -> dict:
    return {"article": "bad-input", "rating": 4, "voter_token": GOOD_TOKEN, **fields}


def case(id: str, path: str, body: object, status: int, fragment: str, headers: dict | None = None,
         method: str = "POST"):
    return pytest.param(method, path, body, headers or {}, status, fragment, id=id)


def get_case(id: str, path: str, status: int, fragment: str):
    return case(id, path, None, status, fragment, method="GET")


BAD_INPUT = [
    get_case("read-by-get", "/v1/read", 405, "POST"),
    case("read-body-over-4kb", "/v1/read", {"article": "x" * 5000}, 413, "at most 4,096"),
    case("vote-body-over-4kb", "/v1/vote", vote_body(article="x" * 5000), 413, "at most 4,096"),
    case("read-body-over-4kb-chunked", "/v1/read", Chunked(b" " * 5000 + b'{"article": "x"}'), 413,
         "exceeds 4,096"),
    case("vote-body-over-4kb-chunked", "/v1/vote", Chunked(b" " * 5000 + b"{}"), 413, "exceeds 4,096"),
    case("read-body-not-json", "/v1/read", b"article=x", 400, "not JSON"),
    case("vote-body-not-json", "/v1/vote", b"{article: x, rating: 4}", 400, "not JSON"),
    case("read-body-not-utf8", "/v1/read", b"\xff\xfe\x00{", 400, "not JSON"),
    case("read-body-empty", "/v1/read", b"", 400, "not JSON"),
    case("read-body-json-array", "/v1/read", [{"article": "x"}], 400, "JSON list, not an object"),
    case("vote-body-json-string", "/v1/vote", "x", 400, "JSON str, not an object"),
    case("read-body-nested-too-deep", "/v1/read", NESTED, 400, "not JSON"),
    case("vote-body-nested-too-deep", "/v1/vote", NESTED, 400, "not JSON"),
    case("read-article-missing", "/v1/read", {"title": "x"}, 400, '"article" is missing'),
    case("read-article-null", "/v1/read", {"article": None}, 400, '"article" is missing'),
    case("vote-article-missing", "/v1/vote", {"rating": 4, "voter_token": GOOD_TOKEN}, 400,
         '"article" is missing'),
    case("read-article-a-number", "/v1/read", {"article": 42}, 400, '"article" is int, not a string'),
    case("read-article-a-list", "/v1/read", {"article": ["x"]}, 400, "not a string"),
    case("read-article-empty", "/v1/read", {"article": ""}, 400, "article id is empty"),
    case("read-article-129-characters", "/v1/read", {"article": "a" * 129}, 400,
         "is 129 characters; accepted: 1-128"),
    case("vote-article-129-characters", "/v1/vote", vote_body(article="a" * 129), 400, "129 characters"),
    case("read-article-with-nul", "/v1/read", {"article": "news\x00today"}, 400, "control character"),
    case("read-article-with-escape", "/v1/read", {"article": "news\x1btoday"}, 400, "control character"),
    case("vote-article-with-newline", "/v1/vote", vote_body(article="news\ntoday"), 400, "control character"),
    case("read-article-with-bidi-override", "/v1/read", {"article": "news\u202etoday"}, 400, "bidi-override"),
    case("read-article-lone-surrogate", "/v1/read", b'{"article": "a\\ud800"}', 400, "surrogate"),
    case("vote-rating-missing", "/v1/vote", {"article": "x", "voter_token": GOOD_TOKEN}, 400,
         '"rating" is missing'),
    case("vote-rating-a-string", "/v1/vote", vote_body(rating="4"), 400, '"rating" is str, not a number'),
    case("vote-rating-a-bool", "/v1/vote", vote_body(rating=True), 400, '"rating" is bool, not a number'),
    case("vote-rating-above-the-scale", "/v1/vote", vote_body(rating=5.5), 400, "not on the scale 0.5-5/0.5"),
    case("vote-rating-zero", "/v1/vote", vote_body(rating=0), 400, "not on the scale 0.5-5/0.5"),
    case("vote-rating-negative", "/v1/vote", vote_body(rating=-1), 400, "rating '-1' is not"),
    case("vote-rating-off-the-half-star-step", "/v1/vote", vote_body(rating=4.25), 400,
         "rating '4.25' is not on the scale 0.5-5/0.5; accepted: 0.5, 1, 1.5"),
    case("vote-rating-nan", "/v1/vote", b'{"article": "x", "rating": NaN}', 400, "not JSON"),
    case("vote-rating-infinite", "/v1/vote", b'{"article": "x", "rating": 1e999}', 400, "infinity"),
    # A voter_token of the wrong JSON type is bad input (400); a string that is no valid token is refused (403).
    case("voter-token-a-number", "/v1/vote", vote_body(voter_token=7), 400, '"voter_token" is int, not a string'),
    case("voter-token-a-list", "/v1/vote", vote_body(voter_token=[GOOD_TOKEN]), 400, "not a string"),
    case("voter-token-an-object", "/v1/vote", vote_body(voter_token={"v": VOTER}), 400, "not a string"),
    case("voter-token-empty", "/v1/vote", vote_body(voter_token=""), 403, "must be a non-empty string"),
    case("voter-token-forged-for-another-voter", "/v1/vote", vote_body(voter_token=f"admin.{MAC}"), 403,
         "signature does not match"),
    case("voter-token-truncated", "/v1/vote", vote_body(voter_token=GOOD_TOKEN[:-9]), 403,
         "truncated or malformed"),
    case("voter-token-of-another-secret", "/v1/vote", vote_body(voter_token=token(VOTER, OTHER_SECRET)), 403,
         "not made with this collector's READRATE_VOTER_SECRET"),
    case("voter-token-non-hex-signature", "/v1/vote", vote_body(voter_token=f"{VOTER}.{'g' * 64}"), 403,
         "64 hex digits"),
    case("voter-token-without-a-dot", "/v1/vote", vote_body(voter_token=MAC), 403, "malformed"),
    case("voter-token-without-a-voter", "/v1/vote", vote_body(voter_token=f".{MAC}"), 403, "malformed"),
    case("voter-token-voter-with-a-control-character", "/v1/vote", vote_body(voter_token=token("a\x00b")),
         400, "control character"),
    case("voter-token-voter-of-129-characters", "/v1/vote", vote_body(voter_token=token("v" * 129)), 400,
         "129 characters; accepted: at most 128"),
    case("read-from-a-sandboxed-page-origin-null", "/v1/read", {"article": "x"}, 403, "origin 'null'",
         {"Origin": "null"}),
    case("vote-from-another-origin", "/v1/vote", vote_body(), 403, "READRATE_ALLOWED_ORIGINS",
         {"Origin": EVIL_ORIGIN}),
    get_case("counters-without-an-article", "/v1/counters", 400, "name at least one article"),
    get_case("counters-for-101-articles", "/v1/counters?" + "&".join(f"article=a{i}" for i in range(101)),
             400, "101 articles asked for; accepted: at most 100"),
    get_case("counters-for-an-article-of-129-characters", f"/v1/counters?article={'a' * 129}", 400,
             "129 characters"),
    get_case("counters-for-an-article-with-a-control-character", "/v1/counters?article=a%00b", 400,
             "control character"),
]


@pytest.mark.parametrize("method, path, body, headers, status, fragment", BAD_INPUT)
def test_bad_input_gets_a_json_error_that_says_what_is_wrong_and_never_a_500(signed, method, path, body,
                                                                          headers, status, fragment):
    response = signed.request(method, path, body.parts() if isinstance(body, Chunked) else body,
                              client(**headers))
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.text
    assert fragment in response.json()["error"]


# -- voters -------------------------------------------------------------------------------------------


def test_a_voter_token_made_by_the_documented_formula_is_accepted(signed):
    article, voter = unique("token"), f"site.example/user-{uuid.uuid4().hex[:6]}"  # a dot in the voter id
    made = token(voter)
    response = signed.post("/v1/vote", {"article": article, "rating": 4.5, "voter_token": made}, client())
    assert answer(response) == queued_vote(4.5)
    # The voter sees their rating at once, before any worker has counted it, in an answer for them only.
    shown = signed.get("/v1/counters", article=article, voter_token=made)
    assert shown.json()["articles"][article]["your_rating"] == 4.5
    assert shown.headers["cache-control"].startswith("private")


def test_the_php_form_of_the_voter_token_is_the_same_string():
    php = shutil.which("php")
    if php is None:
        pytest.skip("php is not installed")
    voter = "user-1001.zoë"
    made = subprocess.run([php, "-r", "echo $argv[1] . '.' . hash_hmac('sha256', $argv[1], $argv[2]);", voter,
                           SECRET], capture_output=True, text=True, check=True).stdout
    assert made == token(voter)


def test_a_vote_without_a_token_is_refused_when_anonymous_votes_are_off(signed):
    response = signed.post("/v1/vote", {"article": unique("anonymous"), "rating": 3}, client())
    assert response.status_code == 403
    assert "READRATE_ANONYMOUS_VOTES" in response.json()["error"]


def test_a_voter_token_is_refused_by_a_collector_without_a_voter_secret(collectors):
    response = collectors.get("open").post("/v1/vote", a_vote(), client())
    assert response.status_code == 403
    assert "READRATE_VOTER_SECRET" in response.json()["error"]


def test_a_vote_from_a_bot_is_ignored(signed):
    assert answer(signed.post("/v1/vote", a_vote(), client(agent=BOTS["googlebot"]))) == ignored("bot")


@pytest.mark.parametrize("kind", KINDS)
def test_an_anonymous_voter_gets_a_cookie_and_a_re_vote_with_it_replaces_the_first_vote(collectors, kind):
    running, article = collectors.get("open", kind), unique("anonymous")
    with httpx.Client(base_url=running.url, trust_env=False, headers=client()) as browser:
        first = browser.post("/v1/vote", json={"article": article, "rating": 2})
        assert answer(first) == queued_vote(2.0)
        cookie = first.cookies["readrate_voter"]
        assert re.fullmatch(r"anon-[0-9a-f]+\.[0-9a-f]{64}", cookie), cookie
        assert "httponly" in first.headers["set-cookie"].lower()
        shown = browser.get("/v1/counters", params={"article": article}).json()["articles"][article]
        assert (shown["your_rating"], shown["votes"]) == (2.0, 0)  # before any drain
        second = browser.post("/v1/vote", json={"article": article, "rating": 4.5})
        assert answer(second) == queued_vote(4.5)
        assert "set-cookie" not in second.headers  # the same voter: the cookie it sent is kept
        shown = browser.get("/v1/counters", params={"article": article}).json()["articles"][article]
        assert shown["your_rating"] == 4.5
    running.drain()
    assert stats(running.engine, article) == (0, 1, 4.5)
    assert votes_of(running.engine, [article]) == {(article, cookie.rpartition(".")[0]): 4.5}


def test_the_fourth_vote_in_a_minute_from_one_client_gets_429_with_retry_after(signed):
    headers = client()
    assert [signed.post("/v1/vote", a_vote(), headers).status_code for _ in range(3)] == [202] * 3
    refused = signed.post("/v1/vote", a_vote(), headers)
    assert refused.status_code == 429
    assert "at most 3 a minute" in refused.json()["error"]
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert signed.post("/v1/vote", a_vote(), client()).status_code == 202  # another client is not held up


# -- origins ------------------------------------------------------------------------------------------

WRITES = ("/v1/read", "/v1/vote")


def a_write(path: str) -> dict:
    """A valid body for `path` (votes by a voter of their own)."""
    return a_vote() if path == "/v1/vote" else {"article": unique("cors")}


@pytest.mark.parametrize("path", WRITES)
def test_a_write_from_an_allowed_origin_gets_its_origin_echoed_with_credentials(signed, path):
    response = signed.post(path, a_write(path), client(Origin=GOOD_ORIGIN))
    assert response.status_code == 202, response.text
    assert response.headers["access-control-allow-origin"] == GOOD_ORIGIN
    assert response.headers["access-control-allow-credentials"] == "true"
    assert "origin" in response.headers["vary"].lower()


@pytest.mark.parametrize("path", WRITES)
def test_a_write_from_an_origin_that_is_not_allowed_is_refused_with_403(signed, path):
    response = signed.post(path, a_write(path), client(Origin=EVIL_ORIGIN))
    assert response.status_code == 403
    assert EVIL_ORIGIN in response.json()["error"]
    assert "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize("path", WRITES)
def test_a_preflight_from_an_allowed_origin_gets_the_cors_headers(signed, path):
    response = signed.request("OPTIONS", path, headers={"Origin": GOOD_ORIGIN,
                                                        "Access-Control-Request-Method": "POST",
                                                        "Access-Control-Request-Headers": "content-type"})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == GOOD_ORIGIN
    assert response.headers["access-control-allow-credentials"] == "true"
    assert "POST" in response.headers["access-control-allow-methods"]
    assert "content-type" in response.headers["access-control-allow-headers"].lower()


def test_a_preflight_from_an_origin_that_is_not_allowed_gets_no_cors_headers(signed):
    response = signed.request("OPTIONS", "/v1/read", headers={"Origin": EVIL_ORIGIN,
                                                              "Access-Control-Request-Method": "POST"})
    assert response.status_code != 200
    assert "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize("path", WRITES)
def test_a_write_from_the_collectors_own_origin_passes(signed, path):
    assert signed.post(path, a_write(path), client(Origin=signed.url)).status_code == 202


# -- exactly once ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_a_mix_of_reads_repeats_bots_votes_and_re_votes_is_counted_exactly_once(collectors, kind):
    running, rng = collectors.get("signed", kind), random.Random(20240601)
    articles = [unique(f"mix{i}") for i in range(4)]
    shared = new_address()  # one address, two browsers: two visitors
    readers = [(new_address(), rng.choice([BROWSER, OTHER_BROWSER])) for _ in range(10)]
    readers += [(shared, BROWSER), (shared, OTHER_BROWSER)]
    seen: set[tuple[str, str, str]] = set()
    reads: Counter = Counter()
    for _ in range(80):
        (address, agent), article = rng.choice(readers), rng.choice(articles)
        first = (address, agent, article) not in seen
        seen.add((address, agent, article))
        reads[article] += first
        response = running.post("/v1/read", {"article": article}, client(address, agent))
        assert answer(response) == (QUEUED if first else ignored("repeat"))
    for agent, article in itertools.product([BOTS["googlebot"], BOTS["curl"]], articles):
        assert answer(running.post("/v1/read", {"article": article}, client(agent=agent))) == ignored("bot")
    prefetch = running.post("/v1/read", {"article": articles[0]}, client(**PREFETCHES["purpose-prefetch"]))
    assert answer(prefetch) == ignored("prefetch")

    final: dict[tuple[str, str], float] = {}
    for i in range(6):  # at most 3 votes a voter: the collector's limit a client and minute
        voter, address = unique(f"voter{i}"), new_address()
        plan = [(articles[i % 4], rng.choice(STARS))]
        if i % 2 == 0:
            plan.append((articles[i % 4], rng.choice(STARS)))  # a re-vote: the later one wins
        if i % 3 == 0:
            plan.append((articles[(i + 1) % 4], rng.choice(STARS)))
        for article, rating in plan:
            body = {"article": article, "rating": rating, "voter_token": token(voter)}
            assert answer(running.post("/v1/vote", body, client(address))) == queued_vote(rating)
            final[(article, voter)] = rating
    forged = {"article": articles[0], "rating": 5, "voter_token": f"{unique('intruder')}.{MAC}"}
    assert running.post("/v1/vote", forged, client()).status_code == 403
    bot_vote = running.post("/v1/vote", a_vote(5, articles[1]), client(agent=BOTS["googlebot"]))
    assert answer(bot_vote) == ignored("bot")

    running.drain()
    expected = {}
    for article in articles:
        ratings = [rating for (a, _), rating in final.items() if a == article]
        expected[article] = (reads[article], len(ratings), sum(ratings))
    assert {a: stats(running.engine, a) for a in articles} == expected
    assert votes_of(running.engine, articles) == final
    assert reads_per_day_summed(running.engine, articles) == {a: n for a, n in reads.items() if n}
    shown = running.get("/v1/counters", article=articles).json()["articles"]
    for article, (n_reads, n_votes, rating_sum) in expected.items():
        assert shown[article] == {
            "reads": n_reads, "votes": n_votes,
            "rating_avg": pytest.approx(rating_sum / n_votes) if n_votes else None,
            "reads_text": f"Read {n_reads} {'time' if n_reads == 1 else 'times'}",
            "votes_text": f"Rate this item ({n_votes} {'vote' if n_votes == 1 else 'votes'})",
            "your_rating": None,
        }, article


# -- Redis down ---------------------------------------------------------------------------------------------


@pytest.fixture
def outage(tmp_path):
    """(a private Redis, start(config) -> Running): a collector on a Redis the test may stop or pause."""
    private = PrivateRedis()
    started: list[Running] = []

    def start(config: str) -> Running:
        settings = Settings.from_env({}, redis_url=private.url, database_url=f"sqlite:///{tmp_path / 'r.db'}",
                                     prefix=unique("rrt"), rating_scale=SCALE)
        redis = Redis.from_url(private.url)
        try:
            started.append(start_collector(settings, redis, CONFIGS[config], tmp_path / "serve.log"))
        finally:
            redis.close()
        return started[-1]

    try:
        yield private, start
    finally:
        for running in started:
            running.close()
        private.remove()


def timed(call) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def assert_unavailable(response: httpx.Response, elapsed_s: float) -> None:
    assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) > 0
    assert "error" in response.json()
    assert elapsed_s < 2.0, f"the answer took {elapsed_s:.2f} s"


def test_with_redis_stopped_writes_answer_503_at_once_and_reads_are_queued_again_after_its_restart(outage):
    private, start = outage
    running = start("signed")
    assert answer(running.post("/v1/read", {"article": unique("before")}, client())) == QUEUED
    private.stop()
    for _ in range(2):  # the first failure, and one after it
        assert_unavailable(*timed(lambda: running.post("/v1/read", {"article": unique("down")}, client())))
        assert_unavailable(*timed(lambda: running.post("/v1/vote", a_vote(), client())))
    health, elapsed_s = timed(lambda: running.get("/healthz"))
    assert (health.status_code, health.json()["status"], health.json()["database"]) == (503, "degraded", "ok")
    assert health.json()["redis"].startswith("unavailable") and elapsed_s < 2.0
    assert "readrate_redis_up 0.0" in running.get("/metrics").text
    assert running.get("/v1/counters", article="x").status_code == 200  # the database still answers

    private.restart()
    # This Redis keeps nothing across a restart, so the installation record is gone too. The collector keeps
    # the record it last read and queues at once; the worker publishes the record again from the database.
    after = unique("after")
    wait_until(lambda: running.post("/v1/read", {"article": after}, client()).status_code == 202, timeout=10,
               message="a read to be queued after Redis came back")
    assert answer(running.post("/v1/vote", a_vote(4, after), client())) == queued_vote(4.0)
    restarted = Redis.from_url(private.url)
    try:
        assert restarted.hgetall(running.settings.keys.installation) == {}
        running.drain()
        assert restarted.hget(running.settings.keys.installation, "shards") is not None
    finally:
        restarted.close()
    assert stats(running.engine, after) == (1, 1, 4.0)
    assert running.get("/healthz").status_code == 200


def test_with_redis_not_answering_writes_answer_503_within_two_seconds_and_recover_when_it_answers(outage):
    private, start = outage
    running = start("signed")
    private.pause()
    try:
        assert_unavailable(*timed(lambda: running.post("/v1/read", {"article": unique("paused")}, client())))
        assert_unavailable(*timed(lambda: running.post("/v1/vote", a_vote(), client())))
        health, elapsed_s = timed(lambda: running.get("/healthz"))
        assert health.status_code == 503 and elapsed_s < 2.0
    finally:
        private.resume()
    wait_until(lambda: running.post("/v1/read", {"article": unique("resumed")}, client()).status_code == 202,
               timeout=10, message="a read to be queued after Redis answered again")


def test_with_redis_stopped_an_anonymous_vote_answers_503_and_not_500(outage):
    private, start = outage
    running = start("open")
    private.stop()
    anonymous = {"article": unique("anonymous"), "rating": 3}
    assert_unavailable(*timed(lambda: running.post("/v1/vote", anonymous, client())))


# -- script, health, dashboard, start-up ----------------------------------------------------------------


def test_readrate_js_is_served_as_javascript_and_gzipped_when_asked(signed):
    plain = signed.get("/readrate.js", headers={"Accept-Encoding": "identity"})
    assert plain.status_code == 200
    assert plain.headers["content-type"] in ("application/javascript", "text/javascript")
    assert "content-encoding" not in plain.headers
    with signed.http.stream("GET", f"{signed.url}/readrate.js",
                            headers={"Accept-Encoding": "gzip"}) as packed:
        raw = b"".join(packed.iter_raw())
        assert packed.headers["content-encoding"] == "gzip"
        assert packed.headers["content-type"] == plain.headers["content-type"]
        assert "accept-encoding" in packed.headers["vary"].lower()
    assert len(raw) < len(plain.content)
    assert gzip.decompress(raw) == plain.content


def test_healthz_says_ok_when_redis_and_the_database_answer(signed):
    assert answer(signed.get("/healthz")) == (200, {"status": "ok", "redis": "ok", "database": "ok"})


def test_the_dashboard_is_off_without_a_dashboard_token(collectors):
    assert collectors.get("open").get("/dashboard", token="anything").status_code == 403


def test_the_dashboard_refuses_a_missing_or_wrong_token(signed):
    assert signed.get("/dashboard").status_code in (401, 403)
    assert signed.get("/dashboard", token="wrong").status_code in (401, 403)
    assert signed.get("/dashboard", headers={"Cookie": "readrate_dashboard=wrong"}).status_code in (401, 403)


def test_the_dashboard_token_in_the_address_becomes_a_cookie_and_leaves_the_address(signed):
    response = signed.get("/dashboard", token=DASHBOARD_TOKEN, by="reads")
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard?by=reads"
    assert response.cookies["readrate_dashboard"] == DASHBOARD_TOKEN
    flags = {part.strip().lower() for part in response.headers["set-cookie"].split(";")}
    assert {"httponly", "samesite=strict"} <= flags


@pytest.mark.skipif(importlib.util.find_spec("readrate.reports.web.dashboard") is None,
                    reason="reports/web/dashboard.py is not written yet")
def test_the_dashboard_cookie_opens_the_dashboard_page(signed):
    response = signed.get("/dashboard", headers={"Cookie": f"readrate_dashboard={DASHBOARD_TOKEN}"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "<html" in response.text.lower()
    assert DASHBOARD_TOKEN not in response.text


def test_serve_on_a_port_in_use_exits_non_zero_with_one_line_and_no_traceback(signed):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = subprocess.run([*READRATE, "serve", "--host", "127.0.0.1", "--port", str(port)],
                                env=env_for(signed.settings, **CONFIGS["signed"]), capture_output=True,
                                text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [(
        f"Error: cannot listen on 127.0.0.1:{port}: Address already in use; "
        "choose another --port or stop what holds it")]


def test_a_head_request_to_the_read_endpoint_counts_nothing(signed):
    response = signed.request("HEAD", "/v1/read", None, client())
    assert response.status_code == 200
