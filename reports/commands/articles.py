"""`readrate articles import FILE`: titles and URLs that reports show next to article ids."""

from __future__ import annotations

import sys

import click

from events.importer import detect_format
from workers.articles import upsert_articles
from workers.db import reachable, upgrade

from ..catalog import CatalogError, CatalogSpec, parse_catalog
from ..cli import App, ExitCode, note, pass_app

# Bad lines listed one by one on stderr before the rest are only counted.
BAD_LINES_SHOWN = 20


@click.group(short_help="Import titles and URLs that reports show.")
def articles() -> None:
    """Article metadata: the titles and URLs reports show next to article ids."""


@articles.command("import", short_help="Titles and URLs from CSV or JSON Lines.")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=str))
@click.option("--input-format", type=click.Choice(["auto", "csv", "jsonl"]), default="auto", show_default=True,
              help="CSV with a header row, or JSON Lines; auto goes by the file name, then the first line.")
@click.option("--id-column", metavar="NAME", default="article_id", show_default=True,
              help="The column (CSV) or key (JSON Lines) holding the article id, e.g. movieId.")
@click.option("--title-column", metavar="NAME",
              help="The column or key holding the title. [default: title, if the file has one]")
@click.option("--url-column", metavar="NAME",
              help="The column or key holding the URL. [default: url, if the file has one]")
@pass_app
def import_articles(app: App, file: str, input_format: str, id_column: str, title_column: str | None,
                    url_column: str | None) -> int:
    """Store titles and URLs from FILE (CSV with a header, or JSON Lines), keyed by article id.

    An article named again gets the title and URL of its last line (a missing URL
    column clears the URL). Bad lines (no id, a bad id, a wrong number of columns)
    are reported by number and skipped, and the exit code is then 1. MovieLens'
    movies.csv imports as it is: `readrate articles import movies.csv --id-column movieId`.
    """
    spec = CatalogSpec(id_column=id_column, title_column=title_column or "title", url_column=url_column or "url",
                       required=frozenset(k for k, given in (("title", title_column), ("url", url_column)) if given))
    raw = sys.stdin.buffer if file == "-" else open(file, "rb")
    rows: dict[str, dict] = {}
    bad: list[tuple[int, str]] = []
    with raw:
        lines = (line.decode("utf-8", "surrogateescape") for line in raw)
        first = next(lines, "")
        fmt = detect_format(file, first) if input_format == "auto" else input_format
        try:
            for line_no, parsed in parse_catalog(_chain(first, lines), fmt, spec):
                if isinstance(parsed, str):
                    bad.append((line_no, parsed))
                else:
                    rows[parsed["article_id"]] = parsed
        except CatalogError as exc:
            raise click.BadParameter(str(exc), param_hint="FILE") from None
    with reachable(app.settings.database_url):
        upgrade(app.engine)
        written = upsert_articles(app.engine, rows.values())
    for line_no, reason in bad[:BAD_LINES_SHOWN]:
        note(f"line {line_no}: {reason}")
    if len(bad) > BAD_LINES_SHOWN:
        note(f"... and {len(bad) - BAD_LINES_SHOWN:,} more bad lines")
    note(f"imported {written:,} articles; {len(bad):,} bad lines skipped")
    return ExitCode.FAILURE if bad else ExitCode.OK


def _chain(first: str, rest):
    if first:
        yield first
    yield from rest


def register(group: click.Group) -> None:
    group.add_command(articles)
