"""readrate.js and the example page, read as files: size, requests, syntax, escaping (no browser, no servers)."""

from __future__ import annotations

import gzip
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from readrate.reports.web.example import SNIPPET, example_page, example_text

WIDGET = Path(__file__).resolve().parents[2] / "reports" / "web" / "static" / "readrate.js"
HOSTILE = '"><script>alert(1)</script><div x="'


def test_the_widget_is_under_8_kb_gzipped():
    assert len(gzip.compress(WIDGET.read_bytes(), 9)) < 8192


def test_the_widget_names_no_url_so_it_talks_only_to_its_collector():
    assert re.findall(r"https?://", WIDGET.read_text()) == []


def test_the_widget_parses_as_javascript():
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    checked = subprocess.run([node, "--check", str(WIDGET)], capture_output=True, text=True, timeout=30, check=False)
    assert checked.returncode == 0, checked.stderr


def test_the_example_page_escapes_a_hostile_article_id_title_and_paragraph():
    page = example_page(HOSTILE, title=HOSTILE, paragraphs=[HOSTILE], voter_token=HOSTILE,
                        script_url=HOSTILE)
    assert "<script>alert(1)" not in page
    assert page.count("&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;") == 6  # <title>, h1, p, src, id, token


def test_the_example_page_carries_the_two_lines_a_site_owner_pastes():
    title, paragraphs = example_text("article-42")
    page = example_page("article-42", title=title, paragraphs=paragraphs, script_url="/readrate.js")
    assert page.startswith("<!DOCTYPE html>")
    assert SNIPPET.format(script_url="/readrate.js", article_id="article-42") in page
    assert page.index("</h1>") < page.index(paragraphs[-1]) < page.index('data-readrate-article="article-42"')


def test_a_voter_token_goes_on_the_article_element():
    page = example_page("a-1", title="T", paragraphs=[], voter_token="v1.0f3a")
    assert '<div data-readrate-article="a-1" data-readrate-voter-token="v1.0f3a"></div>' in page


def test_the_example_text_is_the_same_every_time_and_names_its_article():
    title, paragraphs = example_text("article-7")
    assert (title, paragraphs) == example_text("article-7")
    assert "article-7" in title and len(paragraphs) >= 2
