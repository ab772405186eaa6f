"""The widget end to end in a real browser: headless Chromium (Debian's `chromium` and `chromedriver`)
opens the example article page of a real `readrate serve --example`, reads, votes with the keyboard and
the mouse, and a real `readrate worker --burst` drains between the steps, as the README's "Put it on a
page" tells a site owner to try it.

One collector and one browser serve the whole module, once on SQLite and once on PostgreSQL; each test
uses an article of its own, so the tests do not see each other's counts. What the page shows is checked
against the database (the counters the workers committed), because GET /v1/counters may answer from a
cache for a couple of seconds (DESIGN.md: "cacheable for a few seconds") and a page alone could show an
old count that happens to look right.

Screenshots of the steps go to READRATE_TEST_ARTIFACTS (default tests/.artifacts/browser/). The module
skips when Chromium or ChromeDriver is missing, unless READRATE_REQUIRE_BROWSER=1 (CI) makes that a failure.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import shutil
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import REDIS_URL, create_pg_database, drop_pg_database, pg_url
from helpers import READRATE, counters, env_for, run_cli, stop, wait_until
from readrate.events.clock import utc_now
from readrate.events.installation import read_record
from readrate.events.rules import days_back, dropped_counts
from readrate.events.settings import Settings
from readrate.reports.localredis import free_port
from readrate.workers.db import make_engine
from redis import Redis
from sqlalchemy import Engine

TESTS = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
REQUIRED = os.environ.get("READRATE_REQUIRE_BROWSER") == "1"


def _missing() -> list[str]:
    missing = [name for name, path in (("chromium", CHROMIUM), ("chromedriver", CHROMEDRIVER)) if path is None]
    if importlib.util.find_spec("selenium") is None:
        missing.append("selenium (pip install -e '.[dev]')")
    return missing


if _missing():
    _reason = (f"the browser tests need {', '.join(_missing())}: `apt-get install chromium chromium-driver` "
               "(Debian) and the dev extras")
    if REQUIRED:
        pytest.fail(f"READRATE_REQUIRE_BROWSER=1 but {_reason}", pytrace=False)
    pytest.skip(_reason, allow_module_level=True)

# Imported after the skip: selenium is a dev extra.
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

# Headless Chrome says "HeadlessChrome" in its user agent, which the collector drops as a bot: the reader's
# browser says what a desktop Chrome says.
READER_UA = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
             "Chrome/156.0.0.0 Safari/537.36")
BOT_UA = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
WINDOW = (1000, 700)
DASHBOARD_TOKEN = "browser-test-dashboard-token"
WAIT_S = 10
# The counters may come from the collector's cache and the browser's for 2 s each (counters.py).
FRESH_WITHIN_S = 15
ARTIFACTS = Path(os.environ.get("READRATE_TEST_ARTIFACTS") or TESTS / ".artifacts" / "browser")
README_SCREENSHOT = TESTS.parent / "reports" / "web" / "screenshots" / "example-page.png"


# -- the collector --------------------------------------------------------------------------------

@dataclass
class Collector:
    """A running `readrate serve --example` and what a test needs to talk to it and check on it."""

    url: str
    database: str
    settings: Settings
    engine: Engine
    redis: Redis

    def drain(self) -> None:
        """Count what Redis holds: a real `readrate worker --burst`, as the README says to run a worker."""
        result = run_cli(self.settings, "worker", "--burst", timeout=120)
        assert result.returncode == 0, result.stderr

    def counted(self, article: str) -> tuple[int, int, float]:
        """(reads, votes, rating_sum) the workers committed for `article`; zeros before any."""
        return counters(self.engine).get(article, (0, 0, 0.0))

    def repeats(self) -> int:
        """Reads dropped as repeats today and yesterday (in-process: a CLI process costs a second or more)."""
        keys = self.settings.adopt(read_record(self.redis, self.settings.keys)).keys
        counts = dropped_counts(self.redis, keys, days_back(utc_now().date(), 2))
        return sum(day.get("repeat", 0) for day in counts.values())

    def dropped_report(self) -> dict[str, int]:
        """Dropped events per reason, summed over the days `readrate report dropped --format json` shows."""
        result = run_cli(self.settings, "report", "dropped", "--format", "json", timeout=60)
        assert result.returncode == 0, result.stderr
        totals: dict[str, int] = {}
        for day in json.loads(result.stdout or "[]"):
            for reason in ("bot", "prefetch", "repeat", "excluded"):
                totals[reason] = totals.get(reason, 0) + int(day.get(reason, 0))
        return totals


def _healthy(url: str, process: subprocess.Popen, log: Path) -> bool:
    if process.poll() is not None:
        raise AssertionError(f"readrate serve exited with {process.returncode}:\n{log.read_text()}")
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def collector(request, tmp_path_factory, redis):
    """`readrate serve --example` on a free port with the dashboard on, a key prefix and a database of its own."""
    folder = tmp_path_factory.mktemp("browser")
    pg_name = None
    if request.param == "sqlite":
        database_url = f"sqlite:///{folder / 'readrate.db'}"
    else:
        admin = request.getfixturevalue("pg_admin")
        pg_name = create_pg_database(admin)
        database_url = pg_url(pg_name)
    prefix = f"rrt-{os.urandom(5).hex()}"
    settings = Settings.from_env({}, redis_url=REDIS_URL, database_url=database_url, prefix=prefix)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = folder / "serve.log"
    env = env_for(settings, READRATE_DASHBOARD_TOKEN=DASHBOARD_TOKEN, READRATE_READ_INTERVAL="30m")
    with open(log, "wb") as out:
        process = subprocess.Popen([*READRATE, "serve", "--example", "--port", str(port)], env=env,
                                   stdout=subprocess.DEVNULL, stderr=out, start_new_session=True)
    engine = None
    try:
        wait_until(lambda: _healthy(url, process, log), timeout=60, interval=0.1, message=f"readrate serve on {url}")
        engine = make_engine(database_url)
        yield Collector(url, request.param, settings, engine, redis)
    finally:
        stop(process)
        if engine is not None:
            engine.dispose()
        keys = list(redis.scan_iter(f"*{prefix}*", count=1000))
        if keys:
            redis.delete(*keys)
        if pg_name is not None:
            drop_pg_database(request.getfixturevalue("pg_admin"), pg_name)


# -- the browser ----------------------------------------------------------------------------------

def chrome(user_agent: str) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--hide-scrollbars", "--lang=en-US", f"--window-size={WINDOW[0]},{WINDOW[1]}",
                     f"--user-agent={user_agent}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    # --window-size counts the window's frame too: make the page itself WINDOW big.
    frame_w, frame_h = driver.execute_script(
        "return [window.outerWidth - window.innerWidth, window.outerHeight - window.innerHeight]")
    driver.set_window_size(WINDOW[0] + frame_w, WINDOW[1] + frame_h)
    return driver


class Browser:
    """One Chromium window on the collector's pages, with the waits the tests share."""

    def __init__(self, driver: webdriver.Chrome, collector: Collector) -> None:
        self.driver = driver
        self.collector = collector

    def open(self, path: str) -> None:
        self.driver.get(self.collector.url + path)

    def widget(self) -> str:
        return self.driver.find_element(By.CSS_SELECTOR, "[data-readrate-article]").text

    def wait(self, condition, message: str, timeout: float = WAIT_S):
        return WebDriverWait(self.driver, timeout, poll_frequency=0.05).until(lambda _d: condition(), message)

    def shows(self, *texts: str) -> bool:
        shown = self.widget()
        return all(t in shown for t in texts)

    def wait_for_text(self, *texts: str, timeout: float = WAIT_S) -> None:
        try:
            self.wait(lambda: self.shows(*texts), "", timeout)
        except TimeoutException:
            raise AssertionError(f"the widget never showed {texts}; it shows {self.widget()!r}") from None

    def wait_for_read(self) -> None:
        """Until the page's read was answered (so Redis holds it or dropped it) and its counts are shown."""
        self.wait(lambda: self.driver.execute_script(
            "return performance.getEntriesByType('resource')"
            ".some((e) => e.name.endsWith('/v1/read') && e.responseEnd > 0)"), "the read was never answered")
        self.wait(lambda: "Read \u2013" not in self.widget() and "Read " in self.widget(),
                  "the widget never showed its counts")

    def view(self, article: str) -> None:
        self.open(f"/example/{article}")
        self.wait_for_read()

    def reload_until(self, *texts: str) -> None:
        """Reload until the widget shows `texts`: its counters may come from a cache a couple of seconds old."""
        deadline = time.monotonic() + FRESH_WITHIN_S
        while True:
            self.driver.refresh()
            self.wait_for_read()
            if self.shows(*texts):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"after {FRESH_WITHIN_S} s of reloads the widget shows {self.widget()!r}, "
                                     f"not {texts}")
            time.sleep(0.2)

    def star(self, value: int):
        return self.driver.find_element(By.CSS_SELECTOR, f'.readrate-star[data-value="{value}"]')

    def focused_star(self) -> str | None:
        return self.driver.execute_script(
            "const e = document.activeElement; return e && e.getAttribute('role') === 'radio' ? e.dataset.value : null")

    def keys(self, *keys: str) -> None:
        ActionChains(self.driver).send_keys(*keys).perform()

    def console_errors(self) -> list[dict]:
        """JavaScript errors logged since the last call (Chrome's own favicon request is no error of the page's)."""
        return [e for e in self.driver.get_log("browser")
                if e["level"] == "SEVERE" and "favicon.ico" not in e["message"]]

    def shot(self, name: str) -> Path:
        """A PNG of the whole page (not only what the window shows) among the test artifacts."""
        size = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        png = self.driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "clip": clip,
                                                                      "captureBeyondViewport": True})
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{self.collector.database}-{name}.png"
        path.write_bytes(base64.b64decode(png["data"]))
        return path


@pytest.fixture(scope="module")
def driver():
    driver = chrome(READER_UA)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def crawler():
    """A second browser that says it is Googlebot."""
    driver = chrome(BOT_UA)
    yield driver
    driver.quit()


@pytest.fixture
def browser(driver, collector):
    """The module's reader browser, its console emptied of what earlier tests logged."""
    page = Browser(driver, collector)
    driver.get_log("browser")
    return page


# -- the tests ------------------------------------------------------------------------------------

# What does not depend on the database runs once (the dashboard's queries run on both in test_dashboard.py).
SQLITE_ONLY = pytest.mark.parametrize("collector", ["sqlite"], indirect=True)


def test_a_page_view_counts_one_read_and_a_reload_within_the_interval_counts_none(browser, collector):
    article = "browser-reads"

    browser.view(article)
    collector.drain()
    assert collector.counted(article)[0] == 1
    browser.reload_until("Read 1 time")
    browser.shot("reads-after-drain")

    repeats = collector.repeats()
    browser.driver.refresh()
    browser.wait_for_read()
    assert collector.repeats() == repeats + 1
    collector.drain()
    assert collector.counted(article)[0] == 1
    browser.reload_until("Read 1 time")
    assert browser.console_errors() == []


def test_a_keyboard_vote_shows_at_once_and_counts_after_the_drain(browser, collector):
    article = "browser-keyboard"
    browser.view(article)

    browser.keys(Keys.TAB)
    assert browser.focused_star() == "1", "Tab does not reach the star group"
    browser.keys(Keys.ARROW_RIGHT, Keys.ARROW_RIGHT, Keys.ARROW_RIGHT)
    assert browser.focused_star() == "4"
    assert not browser.shows("Your rating"), "walking the stars with the arrows sent a vote"
    browser.keys(Keys.ENTER)

    browser.wait_for_text("Your rating: 4", "Rate this item (0 votes)")
    assert browser.star(4).get_attribute("aria-checked") == "true"
    browser.shot("keyboard-after-vote")
    collector.drain()
    assert collector.counted(article)[1:] == (1, 4.0)
    browser.reload_until("Rate this item (1 vote)", "Average 4.0 of 5", "Your rating: 4")
    browser.shot("keyboard-after-drain")
    assert browser.console_errors() == []


def test_a_mouse_vote_counts_and_a_revote_replaces_it(browser, collector):
    article = "browser-mouse"
    browser.view(article)

    browser.star(4).click()
    browser.wait_for_text("Your rating: 4", "Rate this item (0 votes)")
    browser.shot("mouse-after-vote")
    collector.drain()
    assert collector.counted(article)[1:] == (1, 4.0)
    browser.reload_until("Rate this item (1 vote)", "Average 4.0 of 5", "Your rating: 4")
    browser.shot("mouse-after-drain")

    # The re-vote with the keyboard's other key: Tab lands on the reader's own star (a roving tabindex).
    browser.keys(Keys.TAB)
    assert browser.focused_star() == "4"
    browser.keys(Keys.ARROW_LEFT, Keys.ARROW_LEFT, Keys.SPACE)
    browser.wait_for_text("Your rating: 2")
    collector.drain()
    assert collector.counted(article)[1:] == (1, 2.0)
    browser.reload_until("Rate this item (1 vote)", "Average 2.0 of 5", "Your rating: 2")
    browser.shot("revote-after-drain")
    assert browser.console_errors() == []


def test_a_crawler_reading_the_page_is_dropped_as_a_bot_and_not_counted(browser, crawler, collector):
    article = "browser-bot"
    browser.view(article)
    # Another user agent is another visitor: only the bot rule keeps this read from counting.
    bot = Browser(crawler, collector)
    bot.view(article)
    bot.shot("bot-page")
    collector.drain()

    assert collector.counted(article)[0] == 1
    browser.reload_until("Read 1 time")
    assert collector.dropped_report()["bot"] == 1, "the crawler's read is this installation's only bot drop"
    assert browser.console_errors() == []


@SQLITE_ONLY
@pytest.mark.skipif(importlib.util.find_spec("readrate.reports.web.dashboard") is None,
                    reason="reports/web/dashboard.py is not written yet")
def test_the_dashboard_shows_its_tables_with_the_article_rows_and_svg_charts(browser, collector):
    article = "browser-dashboard"
    browser.view(article)
    browser.star(5).click()
    browser.wait_for_text("Your rating: 5")
    collector.drain()
    assert collector.counted(article) == (1, 1, 5.0)

    browser.open(f"/dashboard?token={DASHBOARD_TOKEN}")
    browser.wait(lambda: browser.driver.find_elements(By.CSS_SELECTOR, "table tbody tr"), "no table rows")
    assert "token=" not in browser.driver.current_url, "the token stays in the address bar"
    rows = [r.text for r in browser.driver.find_elements(By.CSS_SELECTOR, "#top table tbody tr")]
    assert any(article in row for row in rows), rows
    assert browser.driver.find_elements(By.CSS_SELECTOR, "svg"), "the dashboard draws no chart"

    browser.open(f"/dashboard?article={article}")
    browser.wait(lambda: browser.driver.find_elements(By.CSS_SELECTOR, "#article svg"), "no chart of the article")
    assert article in browser.driver.find_element(By.ID, "article").text
    browser.shot("dashboard-article")
    browser.open("/dashboard")
    browser.shot("dashboard")
    assert browser.console_errors() == []


@SQLITE_ONLY
def test_the_console_shows_a_page_error_so_a_quiet_console_means_no_error(browser, collector):
    # Every test above ends with an empty console; this one shows that an error would be seen there.
    browser.view("browser-console")
    assert browser.console_errors() == []
    browser.driver.execute_script("setTimeout(() => { throw new Error('readrate-probe'); })")
    browser.wait(lambda: any("readrate-probe" in e["message"] for e in browser.console_errors()),
                 "a thrown error never reached the console log")


@SQLITE_ONLY
@pytest.mark.skipif(os.environ.get("READRATE_README_SCREENSHOT") != "1",
                    reason="READRATE_README_SCREENSHOT=1 remakes reports/web/screenshots/example-page.png")
def test_the_readme_screenshot_shows_a_read_and_a_counted_vote(browser, collector):
    article = "article-42"
    browser.view(article)
    browser.star(4).click()
    browser.wait_for_text("Your rating: 4")
    collector.drain()
    browser.reload_until("Read 1 time", "Rate this item (1 vote)", "Average 4.0 of 5")
    browser.driver.execute_script(
        "document.querySelector('[data-readrate-article]').scrollIntoView({block: 'end'}); window.scrollBy(0, 40)")
    README_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    assert browser.driver.save_screenshot(str(README_SCREENSHOT))
