"""`readrate articles import FILE`: titles and URLs that reports show next to article ids."""

from __future__ import annotations

import sys

import click

from readrate.events.records import open_source
from readrate.workers.articles import upsert_articles
from readrate.workers.db import reachable, upgrade

from ..catalog import CatalogError, CatalogSpec, parse_catalog
from ..render import plural
from .app import App, ExitCode, note, pass_app
from .imports import report_bad_lines


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
    are reported by number and skipped, and the exit code is then 1; a file that is
    not text, or holds no articles, exits 1 before the database is touched. MovieLens'
    movies.csv imports as it is: `readrate articles import movies.csv --id-column movieId`.
    """
    spec = CatalogSpec(id_column=id_column, title_column=title_column or "title", url_column=url_column or "url",
                       required=frozenset(k for k, given in (("title", title_column), ("url", url_column)) if given))
    raw = sys.stdin.buffer if file == "-" else open(file, "rb")
    rows: dict[str, dict] = {}
    bad: list[tuple[int, str]] = []
    with raw:
        source = open_source(raw, file, input_format)
        try:
            for line_no, parsed in parse_catalog(source.lines, source.format, spec):
                if isinstance(parsed, str):
                    bad.append((line_no, parsed))
                else:
                    rows[parsed["article_id"]] = parsed
        except CatalogError as exc:
            raise click.BadParameter(str(exc), param_hint="FILE") from None
    if not rows and not bad:
        raise source.nothing_found("articles")
    engine = app.engine(create=True)
    with reachable(app.settings.database_url):
        upgrade(engine)
        written = upsert_articles(engine, rows.values())
    report_bad_lines(bad)
    note(f"imported {plural(written, 'article')}; {plural(len(bad), 'bad line')} skipped")
    return ExitCode.FAILURE if bad else ExitCode.OK
