"""`readrate report …`: popularity reports from the aggregated tables — `top`, `article`, `summary`."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import click
from sqlalchemy import Connection, inspect

from readrate.events.clock import utc_now
from readrate.events.rules import DROPPED_KEEP_DAYS, REASONS, dropped_counts
from readrate.workers.db import reachable
from readrate.workers.installation import load as load_installation
from readrate.workers.moderation import article_resets

from ..detail import UnknownArticle, article_report
from ..queries import TopQuery, has_data, summary, top
from ..ranking import DEFAULT_PRIOR_VOTES, RANKINGS
from ..readers import archive_on, readers
from ..render import Column, count, plural, render
from ..trending import DEFAULT_PRIOR_READS, trend_windows
from ..views import article_text, summary_text, top_text
from ..windows import Window, check_window
from .app import App, Duration, When, check_target, force_option, format_option, note, pass_app, write_output

WINDOW_HELP = (
    "Windows are by event time, in UTC: --since is inclusive, --until exclusive, each "
    "a duration before now (24h, 7d, 2w) or an ISO date or date/time (UTC unless a zone is given); "
    "default all time. Reads are counted by the hour they happened in (both ends are taken down to "
    "the whole hour for reads); votes are the current votes cast in the window, to the millisecond, "
    "a changed vote counting at its new time."
)


def window_options(func):
    for option in reversed([
        click.option("--since", type=When(), help="Start of the window (inclusive). [default: all time]"),
        click.option("--until", type=When(), help="End of the window (exclusive). [default: now]"),
    ]):
        func = option(func)
    return func


def output_options(func):
    for option in reversed([
        format_option,
        click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True, path_type=Path),
                     metavar="FILE", help="Write the report to FILE instead of standard output."),
        click.option("--plot", type=click.Path(dir_okay=False, writable=True, path_type=Path), metavar="FILE.png",
                     help="Also draw the report as a PNG chart (needs: pip install 'readrate[plot]')."),
        force_option,
    ]):
        func = option(func)
    return func


prior_votes_option = click.option(
    "--prior-votes", type=click.FloatRange(0), default=DEFAULT_PRIOR_VOTES, show_default=True,
    help="m in the Bayesian average (C·m + rating_sum) / (m + votes): how many votes at C, the mean of "
         "the votes in the window, each article starts with.")


def _window(since: datetime | None, until: datetime | None) -> Window:
    try:
        return check_window(Window(since, until))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since/--until") from None


def _targets(output: Path | None, plot: Path | None, force: bool) -> None:
    check_target(output, force, "--output")
    check_target(plot, force, "--plot")


EMPTY_DATABASE = "no articles counted yet: emit some events and run `readrate worker`"


def _has_tables(conn: Connection) -> bool:
    # A database nobody has migrated is a new installation, not an error: the lists are empty.
    return inspect(conn).has_table("article_stats")


def _is_empty(conn: Connection) -> bool:
    """True when the database has no readrate tables or nothing counted in them."""
    return not _has_tables(conn) or not has_data(conn)


@click.group(short_help="Popularity reports: top lists, one article, a summary.")
def report() -> None:
    """Popularity reports: what is read, what readers like, what is rising."""


@report.command("top", epilog=WINDOW_HELP, short_help="Top articles by reads, votes, rating or trending.")
@click.option("--by", type=click.Choice(RANKINGS), default="reads", show_default=True,
              help="Rank by reads, votes, Bayesian rating, trending (recent pace against the earlier pace), or "
                   "readers (distinct visitors; needs the archive, READRATE_ARCHIVE).")
@window_options
@click.option("--limit", type=click.IntRange(0), default=10, show_default=True,
              help="How many articles to list; 0 lists every article (a full export, e.g. with --format csv).")
@click.option("--min-votes", type=click.IntRange(0), default=0, show_default=True,
              help="Leave out articles with fewer votes than this in the window.")
@prior_votes_option
@click.option("--recent", type=Duration(), default="24h", show_default=True,
              help="trending: the recent part of the window, compared with the rest of it.")
@click.option("--prior-reads", type=click.FloatRange(0, min_open=True), default=DEFAULT_PRIOR_READS,
              show_default=True, help="trending: k, reads added to both sides of the ratio so that a handful "
                                      "of reads cannot make an article trend.")
@output_options
@pass_app
def report_top(app: App, by: str, since, until, limit: int, min_votes: int, prior_votes: float,
               recent: timedelta, prior_reads: float, fmt: str, output: Path | None, plot: Path | None,
               force: bool) -> None:
    """The top articles in a window by reads, votes, rating or trending.

    \b
    reads, votes   the counts in the window; ties by article id.
    readers        distinct visitors who read it in the window, from the archive (a `readers`
                   column is in every list once the archive is on); ties by reads, article id.
    rating         the Bayesian average (C·m + rating_sum) / (m + votes), C the mean of the
                   votes in the window, m = --prior-votes; ties by votes, reads, article id.
    trending       the window (default: the 7 days before --until, which defaults to now) is
                   cut at --recent (default 24h) before its end:
                     expected = reads before × recent hours / hours before
                     score    = (recent reads + k) / (expected + k),  k = --prior-reads
                   2 means read twice as fast as before; only articles read recently are
                   listed; ties by recent reads, then article id.
    """
    _targets(output, plot, force)
    window = _window(since, until)
    now = utc_now()
    if by == "trending":
        try:
            periods = trend_windows(window, recent, now)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--recent") from None
        window = Window(periods.before.since, periods.recent.until)
    query = TopQuery(by=by, limit=limit or None, min_votes=min_votes, prior_votes=prior_votes, window=window,
                     recent=recent, prior_reads=prior_reads)
    with reachable(app.settings.database_url), app.engine().connect() as conn:
        has_tables = _has_tables(conn)
        readers_of = _readers_of(app) if has_tables else None
        if by == "readers" and readers_of is None:
            raise click.UsageError("--by readers needs the archive: set READRATE_ARCHIVE=DIR for the workers; "
                                   "readers are counted from the reads archived from then on")
        rows = top(conn, query, now, readers_of) if has_tables else []
        empty_database = not rows and _is_empty(conn)
    if not rows:
        note(_nothing(by, min_votes, window, empty_database))
        if plot is not None:
            note(f"nothing to draw: {plot} not written")
        if fmt == "table":
            return
    heading = f"{f'Top {limit:,}' if limit else 'Every article'} by {by}, {window.describe()}"
    write_output(top_text(rows, by, fmt, heading), output, force)
    if plot is not None and rows:
        from ..plot import MAX_BARS, plot_top

        plot_top(rows, by, heading, plot)
        note(f"drew {plot}" + (f" (the first {MAX_BARS:,} of {len(rows):,} articles)" if len(rows) > MAX_BARS
                               else ""))


def _readers_of(app: App):
    """Readers per article from the archive, for top lists and article reports; None while it is off."""
    engine = app.engine()
    if not archive_on(engine):
        return None

    def readers_of(window: Window, only: list[str] | None) -> dict[str, int]:
        found = readers(engine, window, archive_dir=app.settings.archive, articles=only)
        if found.anonymous_reads:
            note(f"{plural(found.anonymous_reads, 'read')} in the window had no visitor: counted as reads, "
                 "not as readers")
        if not found.exact:
            note(f"readers are a {found.method}")
        return found.by_article

    return readers_of


def _nothing(by: str, min_votes: int, window: Window, empty_database: bool) -> str:
    if empty_database:
        return EMPTY_DATABASE
    what = {"reads": "no article was read", "readers": "no article was read by a known visitor",
            "votes": "no article was voted on",
            "rating": "no article was voted on", "trending": "no article was read recently"}[by]
    if min_votes and by != "reads":
        what = f"no article has {min_votes} or more votes"
    return f"{what} in this window ({window.describe()})"


@report.command("article", epilog=WINDOW_HELP, short_help="One article: counters, histogram, daily series.")
@click.argument("article_id", metavar="ARTICLE")
@window_options
@prior_votes_option
@output_options
@pass_app
def report_article(app: App, article_id: str, since, until, prior_votes: float, fmt: str,
                   output: Path | None, plot: Path | None, force: bool) -> None:
    """One article: reads, votes, average, Bayesian score, rank by reads, votes by rating and the daily
    series of reads and votes (sparklines in the table; CSV is the daily series; JSON has everything)."""
    _targets(output, plot, force)
    window = _window(since, until)
    with reachable(app.settings.database_url), app.engine().connect() as conn:
        if not _has_tables(conn):
            raise UnknownArticle(f"article {article_id!r} is unknown: the database has no readrate tables yet")
        data = article_report(conn, article_id, window, prior_votes=prior_votes,
                              scale=_scale(conn, app.settings).values())
        if inspect(conn).has_table("operations"):
            data["resets"] = article_resets(conn, article_id)
        readers_of = _readers_of(app)
        if readers_of is not None:
            data["readers"] = readers_of(window, [article_id]).get(article_id, 0)
    quiet = not data["reads"] and not data["votes"]
    if quiet:
        note(f"article {article_id!r} has no reads and no votes in this window ({window.describe()})")
    write_output(article_text(data, fmt, window.describe()), output, force)
    if plot is not None and quiet:
        note(f"nothing to draw: {plot} not written")
    elif plot is not None:
        from ..plot import plot_article

        plot_article(data, f"{data['title'] or article_id}: reads and votes per day, {window.describe()}", plot)
        note(f"drew {plot}")


@report.command("summary", epilog=WINDOW_HELP, short_help="Totals for a window and its top five lists.")
@window_options
@click.option("--min-votes", type=click.IntRange(0), default=0, show_default=True,
              help="Leave articles with fewer votes than this out of the top-rated list.")
@prior_votes_option
@output_options
@pass_app
def report_summary(app: App, since, until, min_votes: int, prior_votes: float, fmt: str,
                   output: Path | None, plot: Path | None, force: bool) -> None:
    """Totals for a window (reads, votes, active articles, mean rating) and its five most read and five
    top rated articles. CSV is one table whose `section` column says total, top_reads or top_rating."""
    _targets(output, plot, force)
    window = _window(since, until)
    with reachable(app.settings.database_url), app.engine().connect() as conn:
        if _has_tables(conn):
            data = summary(conn, window, min_votes=min_votes, prior_votes=prior_votes)
        else:
            data = summary_of_nothing(window)
        empty_database = not data["active_articles"] and _is_empty(conn)
    if not data["active_articles"]:
        note(EMPTY_DATABASE if empty_database else f"no reads and no votes in this window ({window.describe()})")
        if plot is not None:
            note(f"nothing to draw: {plot} not written")
        if fmt == "table":
            return
    write_output(summary_text(data, fmt, window.describe()), output, force)
    if plot is not None:
        lists = [(rows, by, f"{name}, {window.describe()}") for rows, by, name in (
            (data["top_reads"], "reads", "Most read"), (data["top_rating"], "rating", "Top rated (Bayesian)")) if rows]
        if lists:
            from ..plot import plot_summary

            plot_summary(lists, plot)
            note(f"drew {plot}")


def summary_of_nothing(window: Window) -> dict:
    return {"since": window.since, "until": window.until, "reads": 0, "votes": 0, "active_articles": 0,
            "rating_avg": None, "top_reads": [], "top_rating": []}


def _scale(conn, settings):
    """The installation's rating scale (the histogram's buckets): the database's record, else the seed."""
    found = load_installation(conn) if inspect(conn).has_table("installation") else None
    return found[0].rating_scale if found else settings.rating_scale


DROPPED_COLUMNS = [Column("day", "day (UTC)"), *(Column(r, r, count, numeric=True) for r in REASONS),
                   Column("total", "total", count, numeric=True)]


@report.command("dropped", short_help="Events the counting rules dropped, per reason and day.")
@click.option("--since", type=When(), default="7d", show_default=True,
              help="First day shown: a duration before now (7d, 2w) or an ISO date. Days are UTC.")
@click.option("--until", type=When(), help="Day after the last one shown (exclusive). [default: today included]")
@format_option
@pass_app
def report_dropped(app: App, since: datetime, until: datetime | None, fmt: str) -> None:
    """Reads and votes that a counting rule dropped, per UTC day and reason: `bot` (crawlers, headless
    browsers, no user agent), `prefetch` (prefetches, prerenders, HEAD requests), `repeat` (the same
    visitor within READRATE_READ_INTERVAL) and `excluded` (a browser its owner opted out).

    Counted by the collector and by page emitters given a user agent; kept 400 days in Redis."""
    last = (until - timedelta(microseconds=1)).date() if until is not None else utc_now().date()
    first = since.date()
    if last < first:
        raise click.BadParameter(f"the window ends on {last}, before --since {first}", param_hint="--since/--until")
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    if len(days) > DROPPED_KEEP_DAYS:
        raise click.BadParameter(f"{len(days):,} days asked for; drops are kept {DROPPED_KEEP_DAYS} days",
                                 param_hint="--since")
    settings = app.installed(create=False)
    counts = dropped_counts(app.redis, settings.keys, days)
    rows = [{"day": day, **{r: counts[day].get(r, 0) for r in REASONS}, "total": sum(counts[day].values())}
            for day in days]
    if not any(row["total"] for row in rows):
        note(f"no dropped events from {first} to {last}")
    click.echo(render(rows, DROPPED_COLUMNS, fmt, title=f"Dropped events, {first} to {last} (UTC)"), nl=False)
