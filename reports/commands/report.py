"""`readrate report …`: popularity reports from the aggregated tables."""

from __future__ import annotations

import click

from workers.db import reachable

from ..cli import App, note, pass_app
from ..options import format_option
from ..queries import TopQuery, top
from ..ranking import DEFAULT_PRIOR_VOTES
from ..render import Column, count, fixed, render

TOP_COLUMNS = [
    Column("rank", "#", str, numeric=True),
    Column("article_id", "article"),
    Column("title", "title"),
    Column("reads", "reads", count, numeric=True),
    Column("votes", "votes", count, numeric=True),
    Column("rating_avg", "avg", fixed(2), numeric=True),
    Column("score", "score", lambda v: f"{v:,.0f}" if float(v).is_integer() else f"{v:.3f}", numeric=True),
]


@click.group()
def report() -> None:
    """Popularity reports: what is read, what readers like."""


@report.command("top")
@click.option("--by", type=click.Choice(["reads", "votes", "rating"]), default="reads", show_default=True,
              help="Rank by read count, vote count, or Bayesian rating.")
@click.option("--limit", type=click.IntRange(1, 100_000), default=10, show_default=True, help="How many articles to list.")
@click.option("--min-votes", type=click.IntRange(0), default=0, show_default=True,
              help="Leave out articles with fewer votes than this.")
@click.option("--prior-votes", type=click.FloatRange(0), default=DEFAULT_PRIOR_VOTES, show_default=True,
              help="m in the Bayesian average (C·m + rating_sum) / (m + votes): how many votes at the "
                   "mean of all votes C each article starts with.")
@format_option
@pass_app
def report_top(app: App, by: str, limit: int, min_votes: int, prior_votes: float, fmt: str) -> None:
    """The top articles by reads, votes or rating.

    Ties break by votes, then reads, then article id (for reads and votes: by
    the count, then article id).
    """
    query = TopQuery(by=by, limit=limit, min_votes=min_votes, prior_votes=prior_votes)
    with reachable(app.settings.database_url), app.engine.connect() as conn:
        rows = top(conn, query)
    if not rows and fmt == "table":
        note("no articles yet: emit some events and run `readrate worker`")
        return
    click.echo(render(rows, TOP_COLUMNS, fmt, title=f"Top {limit} by {by}"), nl=False)


def register(group: click.Group) -> None:
    group.add_command(report)
