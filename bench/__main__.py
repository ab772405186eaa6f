"""`python -m bench`: run the benchmark scenarios, print the table, write RESULTS.md."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import click

from readrate.events.urls import redact

from . import suite
from .resources import Env, Unavailable


def _names(_ctx, _param, value: tuple[str, ...]) -> list[str]:
    names = [n.strip() for item in value for n in item.split(",") if n.strip()]
    unknown = [n for n in names if n not in suite.NAMES]
    if unknown:
        raise click.BadParameter(f"{', '.join(map(repr, unknown))} is not a scenario; accepted: "
                                 f"{', '.join(suite.NAMES)}")
    return names or list(suite.NAMES)


def _terminate(signum, _frame):
    # Turn SIGTERM into an exception so every process, database and key the run made is cleaned up.
    raise KeyboardInterrupt(f"signal {signum}")


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--quick", is_flag=True,
              help="Every scenario at a small size (about a minute); writes bench/out/RESULTS-quick.md.")
@click.option("--only", "names", multiple=True, callback=_names, metavar="NAME[,NAME]",
              help=f"Run only these scenarios (repeatable): {', '.join(suite.NAMES)}.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the results (default: bench/RESULTS.md for a full run of every scenario, "
                   "otherwise under bench/out/).")
@click.option("--redis-url", envvar="READRATE_BENCH_REDIS_URL", metavar="URL",
              help="Use this Redis (keys prefixed with the run id, deleted after) instead of starting a "
                   "private redis-server. [env READRATE_BENCH_REDIS_URL]")
@click.option("--pg-url", envvar="READRATE_BENCH_PG_URL", metavar="URL",
              help="PostgreSQL admin URL the run creates (and drops) its databases through. [env "
                   "READRATE_BENCH_PG_URL; default postgresql+psycopg://postgres@127.0.0.1:5432/postgres]")
@click.option("--repeat", type=click.IntRange(1, 20), default=1, show_default=True, metavar="N",
              help="Run each scenario N times and report the median of every figure (the spread goes in the "
                   "notes, every run's raw data in the JSON).")
@click.option("--list", "list_only", is_flag=True, help="List the scenarios and exit.")
def main(quick: bool, names: list[str], out: Path | None, redis_url: str | None, pg_url: str | None,
         repeat: int, list_only: bool) -> None:
    """Benchmark readrate against its baselines, side by side, and write a results table."""
    if list_only:
        for scenario in suite.SCENARIOS:
            click.echo(f"{scenario.NAME:10} {scenario.TITLE}")
        return
    signal.signal(signal.SIGTERM, _terminate)
    try:
        env = Env(redis_url=redis_url, pg_admin_url=pg_url)
    except Unavailable as exc:
        raise click.ClickException(str(exc)) from None
    path = out or suite.default_out(quick, names)
    argv = sys.argv[1:]
    with env:
        suite.echo_err(f"bench run {env.run_id}: {'quick' if quick else 'full'}, scenarios "
                       f"{', '.join(names)}; Redis: {env.redis_where}; "
                       f"PostgreSQL: {env.pg_problem or redact(env.pg_admin_url)}")
        the_run = suite.run(env, names, quick, repeat, log=suite.echo_err)
    suite.write(the_run, path, argv)
    click.echo(suite.table(the_run.rows))
    suite.echo_err(f"\nwrote {path} ({the_run.seconds:.0f} s)")
    if the_run.failed:
        suite.echo_err(f"scenarios that failed: {', '.join(the_run.failed)}")
        sys.exit(1)


if __name__ == "__main__":
    main(prog_name="python -m bench")
