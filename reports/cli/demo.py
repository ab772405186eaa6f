"""`readrate demo`: synthetic traffic through the real pipeline, then a report."""

from __future__ import annotations

import click

from ..demo import DemoPlan, run_demo
from .app import App, pass_app


@click.command(short_help="Synthetic traffic through the real pipeline, then a report.")
@click.option("--events", type=click.IntRange(100, 10_000_000), default=200_000, show_default=True,
              help="How many read and vote events to emit.")
@click.option("--articles", type=click.IntRange(1, 1_000_000), default=2_000, show_default=True,
              help="How many articles the traffic spreads over (Zipf-popular: a few get most reads).")
@click.option("--days", type=click.IntRange(1, 3650), default=30, show_default=True,
              help="Spread event times over this many past days.")
@click.option("--workers", "worker_count", type=click.IntRange(1, 16), default=2, show_default=True,
              help="How many `readrate worker` processes to run while emitting.")
@click.option("--seed", type=int, default=42, show_default=True, help="Random seed, for repeatable traffic.")
@click.option("--demo-database-url", envvar="READRATE_DEMO_DATABASE_URL", default="sqlite:///readrate-demo.db",
              show_default=True, metavar="URL",
              help="Database the demo writes to (emptied first), so it never mixes with real counters. "
                   "[env READRATE_DEMO_DATABASE_URL]")
@pass_app
def demo(app: App, events: int, articles: int, days: int, worker_count: int, seed: int,
         demo_database_url: str) -> None:
    """Run synthetic but realistic traffic through the whole pipeline and show the result.

    Emits reads and votes (Zipf-popular articles, a plausible star distribution,
    voters who come back and change their minds) into Redis, runs real
    `readrate worker` processes that aggregate them into the database, waits
    until every event is counted, checks the counters against what was emitted,
    and prints the most read and the top rated articles. Uses REDIS_URL if a
    Redis answers there, otherwise starts a private redis-server for the run.
    """
    plan = DemoPlan(events=events, articles=articles, days=days, workers=worker_count, seed=seed)
    run_demo(app.settings, plan, demo_database_url)
