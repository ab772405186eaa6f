"""The operator dashboard (GET /dashboard): one self-contained HTML page — inline CSS and SVG, no script,
no request of its own — of what the `readrate` CLI reports.

It is fed by the CLI's own functions: `queries.top` and `queries.summary` (top lists and totals),
`detail.article_report` (one article), `status.gather` (what `readrate status` shows) and
`rules.dropped_counts` (events the counting rules dropped). Each section is drawn on its own,
so a Redis or a database that is down makes its sections say so while the rest of the page
still shows. The app calls `dashboard_page` in a worker thread (it blocks on Redis and SQL).
Every text that came from outside (titles, ids, error messages) goes through `charts.text`;
every URL through `urls.redact`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from urllib.parse import urlencode

import redis as redis_lib
from readrate.events.clock import naive_utc, utc_now
from readrate.events.errors import DatabaseUnavailable, RedisUnavailable
from readrate.events.rules import REASONS, days_back, dropped_counts
from readrate.events.settings import Settings
from readrate.events.urls import redact
from readrate.workers.db import SCHEMA_HINT, SchemaMissing, reachable
from readrate.workers.moderation import article_resets
from redis import Redis
from sqlalchemy import Engine, inspect

from ..detail import UnknownArticle, article_report
from ..health import MEMORY_FAIL, MEMORY_WARN, Status, Thresholds, problems
from ..plot import METRIC
from ..queries import TopQuery, has_data, summary, top
from ..ranking import DEFAULT_PRIOR_VOTES, RANKINGS
from ..readers import archive_on, readers
from ..render import Column, count, plural
from ..status import gather
from ..trending import DEFAULT_RECENT, trend_windows
from ..views import reset_note, top_columns
from ..windows import Window, parse_duration, parse_when
from .charts import bar_chart, column_chart, number, text

WINDOWS = ("24h", "7d", "30d", "all")
# The last week is what an operator looks at first; `window=all` is the CLI's default, all time.
DEFAULT_WINDOW = "7d"
DEFAULT_LIMIT = 20
MAX_LIMIT = 500
DROPPED_DAYS = 7
# Above this many shards their table starts folded: the totals above it say what matters.
OPEN_SHARDS = 16

SHARD_COLUMNS = [
    Column("shard", "shard", str, numeric=True),
    Column("backlog", "backlog", count, numeric=True),
    Column("lag_s", "lag (s)", lambda v: f"{v:,.1f}", numeric=True),
    Column("committed_offset", "committed offset"),
    Column("oldest_unapplied_id", "oldest unapplied"),
    Column("offset_updated_at", "last commit (UTC)", lambda v: v.isoformat(sep=" ", timespec="seconds")),
]
REASON_COLUMNS = [Column("count", "count", count, numeric=True), Column("reason", "rule broken")]
WORKER_COLUMNS = [
    Column("name", "worker"), Column("state", "state"), Column("current_job_id", "current job"),
    Column("last_heartbeat", "last heartbeat (UTC)", lambda v: v.isoformat(sep=" ", timespec="seconds")),
]
CSS = """
:root{--fg:#1d1d1f;--muted:#5f6368;--line:#dcdfe3;--accent:#2f5f98;--warn:#8a5a00;--bad:#b42318}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);
  background:#f4f5f7}
header{background:#fff;border-bottom:1px solid var(--line);padding:14px 24px} header p{margin:2px 0 8px}
main{max-width:1240px;margin:0 auto;padding:16px 24px} h1{font-size:20px;margin:0}
h2{font-size:17px;margin:0 0 10px} h3{font-size:15px;margin:18px 0 8px}
section{background:#fff;border:1px solid var(--line);border-radius:8px;padding:16px 20px;margin:0 0 16px}
a{color:var(--accent)} .choices{margin-right:18px;white-space:nowrap}
.choices a{display:inline-block;padding:1px 10px;margin:2px 1px;border:1px solid var(--line);
  border-radius:12px;text-decoration:none}
.choices a[aria-current]{background:var(--accent);border-color:var(--accent);color:#fff}
table{border-collapse:collapse;min-width:40%;font-variant-numeric:tabular-nums} table.wide{width:100%}
th,td{padding:4px 12px 4px 8px;border-bottom:1px solid #eceef1;text-align:left;vertical-align:top}
thead th{color:#3c4043;border-bottom:2px solid var(--line);white-space:nowrap}
tfoot th{border-top:2px solid var(--line)} .num{text-align:right;white-space:nowrap}
code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace;color:var(--muted);overflow-wrap:anywhere}
.facts{display:flex;flex-wrap:wrap;gap:10px;margin:0 0 12px}
.facts div{border:1px solid var(--line);border-radius:6px;padding:6px 12px;min-width:130px}
.facts dt{color:var(--muted);font-size:12px} .facts dd{margin:0;font-size:18px;font-weight:600}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(480px,1fr));gap:20px;align-items:start}
.split{grid-template-columns:minmax(0,3fr) minmax(0,2fr)}
@media (max-width:900px){.grid,.split{grid-template-columns:minmax(0,1fr)}} .scroll{overflow-x:auto}
svg.readrate-chart{display:block;max-width:100%;height:auto;margin:0 0 12px} .muted{color:var(--muted)}
.warnings li{color:var(--warn)} .note{background:#fff8e1;border-left:4px solid #f0b400;padding:6px 10px}
.problem{color:var(--bad);background:#fdecea;border-left:4px solid var(--bad);padding:6px 10px}
meter{width:160px;vertical-align:middle} summary{cursor:pointer;font-weight:600;margin:14px 0 6px}
"""
DAILY_COLUMNS = [Column("day", "day", lambda v: v.isoformat()), Column("reads", "reads", count, numeric=True),
                 Column("votes", "votes", count, numeric=True)]


@dataclass(frozen=True)
class View:
    """What the page shows, read from its query parameters; `notes` say which ones were refused, and why."""

    by: str = "reads"
    window_text: str = DEFAULT_WINDOW
    window: Window = Window()
    article: str | None = None
    limit: int = DEFAULT_LIMIT
    notes: tuple[str, ...] = ()

    @property
    def words(self) -> str:
        """The window as a heading says it: `all time`, `the last 7d`, or its dates."""
        if self.window_text == "all":
            return "all time"
        try:
            parse_duration(self.window_text)
        except ValueError:
            return self.window.describe()
        return f"the last {self.window_text}"

    def link(self, **changes: object) -> str:
        """A relative link to this page with some parameters changed (None leaves one out)."""
        wanted = {"by": self.by, "window": self.window_text, "limit": self.limit, "article": self.article}
        wanted.update(changes)
        defaults = {"by": "reads", "limit": DEFAULT_LIMIT}
        shown = {k: v for k, v in wanted.items() if v is not None and defaults.get(k) != v}
        return "?" + urlencode(shown)


def read_view(params: Mapping[str, str], now: datetime) -> View:
    """The view the parameters ask for; a bad one is replaced by its default and named in `notes`."""
    notes = []
    by = params.get("by") or "reads"
    if by not in RANKINGS:
        notes.append(f"by={by!r} is not a ranking; accepted: {', '.join(RANKINGS)}")
        by = "reads"
    window_text = params.get("window") or DEFAULT_WINDOW
    try:
        window = Window() if window_text == "all" else Window(parse_when(window_text, now))
    except ValueError as exc:
        notes.append(f"window: {exc}, or all")
        window_text, window = DEFAULT_WINDOW, Window(parse_when(DEFAULT_WINDOW, now))
    limit, raw_limit = DEFAULT_LIMIT, params.get("limit")
    if raw_limit:
        if raw_limit.isascii() and raw_limit.isdigit() and 1 <= int(raw_limit) <= MAX_LIMIT:
            limit = int(raw_limit)
        else:
            notes.append(f"limit={raw_limit!r} is not a number of articles; accepted: 1-{MAX_LIMIT}")
    return View(by, window_text, window, params.get("article") or None, limit, tuple(notes))


def dashboard_page(engine: Engine, redis: Redis, settings: Settings, params: Mapping[str, str], *,
                   queue_redis: Redis | None = None, now: datetime | None = None) -> str:
    """The whole page for the query parameters `params` (by, window, article, limit), as a string.

    `settings` are adopted to the installation (its rating scale and keys). Never raises for a Redis or
    a database that is down, nor for an unknown article: the section concerned says so."""
    now = naive_utc(now) if now is not None else utc_now()
    view = read_view(params, now)
    sections = []
    if view.article is not None:
        sections.append(_section("Article", "article", lambda: _article(engine, settings, view)))
    sections += [
        _section("Popularity", "top", lambda: _popularity(engine, settings, view, now)),
        _section("Workers and backlog", "status", lambda: _status(engine, redis, settings, queue_redis)),
        _section(f"Dropped events, last {DROPPED_DAYS} days", "dropped",
                 lambda: _dropped(redis, settings, now.date())),
    ]
    return _page(view, settings, now, sections)


# -- sections -------------------------------------------------------------------------------------

def _section(title: str, anchor: str, draw: Callable[[], str]) -> str:
    try:
        body = draw()
    except (redis_lib.RedisError, RedisUnavailable) as exc:
        body = _problem(f"Redis unavailable: {_one_line(exc)}")
    except DatabaseUnavailable as exc:
        body = _problem(f"Database unavailable: {_one_line(exc)}")
    except SchemaMissing as exc:
        body = _problem(_one_line(exc))
    return (f'<section id="{anchor}" aria-labelledby="{anchor}-h"><h2 id="{anchor}-h">{text(title)}</h2>'
            f"{body}</section>")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _problem(message: str) -> str:
    return f'<p class="problem" role="alert">{text(message)}</p>'


def _tables_or_fail(conn) -> None:
    if not inspect(conn).has_table("article_stats"):
        raise SchemaMissing(f"the database has no readrate tables yet; {SCHEMA_HINT}")


def _popularity(engine: Engine, settings: Settings, view: View, now: datetime) -> str:
    query, notes = _top_query(view, now)
    with reachable(settings.database_url), engine.connect() as conn:
        _tables_or_fail(conn)
        totals = summary(conn, view.window, limit=0)
        readers_of = _readers_of(engine, settings)
        if view.by == "readers" and readers_of is None:
            return _problem("ranking by readers needs the archive: set READRATE_ARCHIVE=DIR for the workers")
        rows = top(conn, query, now, readers_of)
        counted = bool(rows) or has_data(conn)
    facts = _facts([("reads", number(totals["reads"])), ("votes", number(totals["votes"])),
                    ("active articles", number(totals["active_articles"])),
                    ("mean rating", _stars(totals["rating_avg"]))])
    listed = query.window.describe() if view.by == "trending" else view.words
    heading = f"Top {view.limit} by {view.by}, {listed}"
    parts = [f'<p class="muted">Totals for {text(view.words)} ({text(view.window.describe())}).</p>', facts,
             *(f'<p class="note">{text(n)}</p>' for n in notes), f"<h3>{text(heading)}</h3>"]
    if not rows:
        nothing = "No article in this list for this window." if counted else \
            "No articles counted yet: emit some events and run `readrate worker`."
        parts.append(f'<p class="muted">{text(nothing)}</p>')
        return "".join(parts)
    key, label = METRIC[view.by]
    chart = bar_chart([r.title or r.article_id for r in rows], [getattr(r, key) for r in rows],
                      title=f"{label}, {listed}", width=480, label_px=190,
                      links=[view.link(article=r.article_id) for r in rows])
    readers_shown = any(r.readers is not None for r in rows)
    table = _table([r.as_dict() for r in rows],
                   [c for c in top_columns(view.by, readers_shown) if c.key != "title"],
                   cells={"article_id": lambda row: _article_link(row, view)}, wide=True)
    parts.append(f'<div class="grid split"><div class="scroll">{table}</div><div>{chart}</div></div>')
    return "".join(parts)


def _readers_of(engine: Engine, settings: Settings):
    """Readers per article from the archive (the CLI's figures), or None while the archive is off."""
    if not archive_on(engine):
        return None
    return lambda window, only: readers(engine, window, archive_dir=settings.archive, articles=only).by_article


def _top_query(view: View, now: datetime) -> tuple[TopQuery, list[str]]:
    """The CLI's query for the view: trending cuts its window into the recent 24 hours and the time before."""
    window, notes = view.window, []
    if view.by == "trending":
        try:
            periods = trend_windows(window, DEFAULT_RECENT, now)
        except ValueError:
            periods = trend_windows(Window(), DEFAULT_RECENT, now)
            notes.append(f"trending compares the last 24 hours with the time before them, so window "
                         f"{view.window_text} is too short; showing the 7 days before now")
        window = Window(periods.before.since, periods.recent.until)
    return TopQuery(by=view.by, limit=view.limit, window=window, prior_votes=DEFAULT_PRIOR_VOTES), notes


def _article_link(row: Mapping, view: View) -> str:
    name = row["title"] or row["article_id"]
    link = f'<a href="{text(view.link(article=row["article_id"]))}"><bdi>{text(name)}</bdi></a>'
    return link + (f' <code><bdi>{text(row["article_id"])}</bdi></code>' if row["title"] else "")


def _article(engine: Engine, settings: Settings, view: View) -> str:
    back = f'<p><a href="{text(view.link(article=None))}">← back to the lists only</a></p>'
    try:
        with reachable(settings.database_url), engine.connect() as conn:
            _tables_or_fail(conn)
            data = article_report(conn, view.article, view.window, prior_votes=DEFAULT_PRIOR_VOTES,
                                  scale=settings.rating_scale.values())
            resets = article_resets(conn, view.article) if inspect(conn).has_table("operations") else []
        readers_of = _readers_of(engine, settings)
        if readers_of is not None:
            data["readers"] = readers_of(view.window, [view.article]).get(view.article, 0)
    except UnknownArticle as exc:
        return _problem(str(exc)) + back
    name = data["title"] or data["article_id"]
    where = view.words
    parts = [f'<h3><bdi>{text(name)}</bdi> <code><bdi>{text(data["article_id"])}</bdi></code></h3>']
    parts += [f'<p class="note">{text(reset_note(r))}</p>' for r in resets]
    url = data["url"] or ""
    if url.startswith(("https://", "http://")):
        parts.append(f'<p><a href="{text(url)}" rel="noopener noreferrer">{text(url)}</a></p>')
    parts.append(_facts([
        ("rank by reads", number(data["rank"])), ("reads", number(data["reads"])),
        *([("readers", number(data["readers"]))] if "readers" in data else []),
        ("votes", number(data["votes"])), ("average", _stars(data["rating_avg"])),
        ("Bayesian score", _stars(data["score"])), ("C (mean of votes)", _stars(data["mean_rating"]))]))
    daily = data["daily"]
    if not daily:
        parts.append(f'<p class="muted">No reads and no votes in this window ({text(where)}).</p>')
    days = [d["day"].isoformat() for d in daily]
    several_years = bool(daily) and daily[0]["day"].year != daily[-1]["day"].year
    ticks = days if several_years else [f'{d["day"]:%b} {d["day"].day}' for d in daily]
    histogram = list(reversed(data["histogram"]))  # highest rating on top, as review sites show it
    parts.append('<div class="grid"><div>'
                 + column_chart(days, ("reads", [d["reads"] for d in daily]), title=f"Reads per day, {where}",
                                width=600, max_labels=8, axis_labels=ticks, empty="no reads in this window")
                 + column_chart(days, ("votes", [d["votes"] for d in daily]), title=f"Votes per day, {where}",
                                width=600, max_labels=8, axis_labels=ticks, colors=("#ee6677",),
                                empty="no votes in this window")
                 + "</div><div>"
                 + bar_chart([f"{h['rating']:g} ★" for h in histogram], [h["votes"] for h in histogram],
                             title=f"Votes by rating (scale {settings.rating_scale}), {where}", width=480,
                             label_px=70, row_px=22, color="#ccbb44")
                 + "</div></div>")
    if daily:
        parts.append(f"<details><summary>Reads and votes per day ({plural(len(daily), 'day')})</summary>"
                     f"{_table(daily, DAILY_COLUMNS)}</details>")
    return "".join(parts) + back


def _status(engine: Engine, redis: Redis, settings: Settings, queue_redis: Redis | None) -> str:
    result = gather(settings, redis, engine, queue_redis)
    found = problems(result, Thresholds())
    parts = [_facts([
        ("events not yet counted", number(result.backlog)), ("lag", f"{result.lag_s:,.1f} s"),
        ("dead letters", number(result.dead_letters)), ("workers alive", number(len(result.workers))),
        ("drain jobs queued", number(result.queued_jobs)),
        ("drain jobs failed", f"{result.failed_jobs:,} ({result.failed_jobs_last_hour:,} in the last hour)"),
    ]), _memory(result)]
    if result.warnings:
        parts.append('<h3>Warnings</h3><ul class="warnings">'
                     + "".join(f"<li>{text(w)}</li>" for w in result.warnings) + "</ul>")
    if found:
        parts.append("<h3>Checks that fail (as <code>readrate status --check</code> would)</h3>"
                     '<ul class="warnings">' + "".join(f"<li>{text(p)}</li>" for p in found) + "</ul>")
    shards = [vars(s) for s in result.shards]
    parts.append(f"<details{' open' if len(shards) <= OPEN_SHARDS else ''}><summary>Backlog per shard (queue "
                 f"<code>{text(result.queue)}</code>)</summary>{_table(shards, SHARD_COLUMNS)}</details>")
    if result.dead_letter_reasons:
        reasons = [{"reason": r, "count": n} for r, n in result.dead_letter_reasons]
        parts.append(f"<h3>Dead letters by rule</h3>{_table(reasons, REASON_COLUMNS)}")
    if result.workers:
        parts.append(f"<h3>Workers</h3>{_table([vars(w) for w in result.workers], WORKER_COLUMNS)}")
    return "".join(parts)


def _memory(result: Status) -> str:
    memory = result.memory
    if memory is None:
        return ""
    meter = ""
    if memory.share is not None:
        meter = (f' <meter min="0" max="1" low="{MEMORY_WARN}" high="{MEMORY_FAIL}" optimum="0" '
                 f'value="{min(memory.share, 1.0):.3f}">{memory.share:.0%}</meter>')
    return f'<p class="memory">Redis memory: {text(memory.describe())}{meter}</p>'


def _dropped(redis: Redis, settings: Settings, today: date) -> str:
    days = days_back(today, DROPPED_DAYS)
    counts = dropped_counts(redis, settings.keys, days)
    reasons = list(REASONS) + sorted({r for c in counts.values() for r in c} - set(REASONS))
    rows = [{"day": day, **{r: counts[day].get(r, 0) for r in reasons}, "total": sum(counts[day].values())}
            for day in days]
    columns = [Column("day", "day (UTC)", lambda v: v.isoformat() if isinstance(v, date) else str(v)),
               *(Column(r, r, count, numeric=True) for r in [*reasons, "total"])]
    totals = {"day": "total", **{r: sum(row[r] for row in rows) for r in reasons},
              "total": sum(row["total"] for row in rows)}
    note = ('<p class="muted">Views the counting rules did not count: bots and headless browsers, '
            "prefetches, repeat reads within the read interval, and browsers whose owners opted out.</p>")
    return note + _table(rows, columns, foot=totals)


# -- markup ---------------------------------------------------------------------------------------

def _table(rows: Sequence[Mapping], columns: Sequence[Column], *,
           cells: Mapping[str, Callable[[Mapping], str]] | None = None, foot: Mapping | None = None,
           wide: bool = False) -> str:
    """An HTML table of `rows` as `columns` show them (the CLI's headings and number formats); `cells`
    draws some columns' cells as markup of their own."""
    cells = cells or {}

    def row_html(row: Mapping, tag: str = "td") -> str:
        out = []
        for c in columns:
            value = row.get(c.key)
            if c.key in cells and tag == "td":
                shown = cells[c.key](row)
            else:
                shown = "" if value is None else text(c.show(value))
            out.append(f"<{tag}{_align(c)}>{shown}</{tag}>")
        return "<tr>" + "".join(out) + "</tr>"

    head = "".join(f'<th scope="col"{_align(c)}>{text(c.heading)}</th>' for c in columns)
    body = "".join(row_html(r) for r in rows)
    tail = f"<tfoot>{row_html(foot, 'th')}</tfoot>" if foot is not None else ""
    opening = '<table class="wide">' if wide else "<table>"
    return f"{opening}<thead><tr>{head}</tr></thead><tbody>{body}</tbody>{tail}</table>"


def _align(column: Column) -> str:
    return ' class="num"' if column.numeric else ""


def _facts(items: Sequence[tuple[str, str]]) -> str:
    shown = "".join(f"<div><dt>{text(k)}</dt><dd>{text(v)}</dd></div>" for k, v in items)
    return f'<dl class="facts">{shown}</dl>'


def _stars(rating: float | None) -> str:
    """A rating as the top lists show it, two decimals (4.00, not 4)."""
    return number(None) if rating is None else f"{rating:.2f}"


def _choices(label: str, choices: Sequence[str], current: str, link: Callable[[str], str]) -> str:
    current_mark = ' aria-current="page"'
    shown = [*choices, *([] if current in choices else [current])]
    items = [f'<a href="{text(link(c))}"{current_mark if c == current else ""}>{text(c)}</a>' for c in shown]
    return f'<span class="choices"><span class="muted">{text(label)}</span> {"".join(items)}</span>'


def _page(view: View, settings: Settings, now: datetime, sections: Sequence[str]) -> str:
    where = [f"installation {settings.installation_id or '(none yet)'}", f"prefix {settings.prefix}",
             f"{plural(settings.shards, 'shard')}", f"rating scale {settings.rating_scale}",
             f"Redis {redact(settings.redis_url)}"]
    if settings.queue_redis_url != settings.redis_url:
        where.append(f"queue {redact(settings.queue_redis_url)}")
    where.append(f"database {redact(settings.database_url)}")
    nav = (_choices("rank by", RANKINGS, view.by, lambda c: view.link(by=c)) + " "
           + _choices("window", WINDOWS, view.window_text, lambda c: view.link(window=c)))
    body = "".join(f'<p class="note">{text(n)}</p>' for n in view.notes) + "".join(sections)
    return ("<!DOCTYPE html>\n"
            '<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<meta name="referrer" content="no-referrer"><meta name="robots" content="noindex">'
            f"<title>readrate dashboard</title><style>{CSS}</style></head><body>"
            f'<header><h1>readrate dashboard</h1><p class="muted">{text(" · ".join(where))}<br>'
            f'as of {text(now.isoformat(sep=" ", timespec="seconds"))} UTC</p>'
            f'<nav aria-label="report">{nav}</nav></header><main>{body}</main></body></html>\n')
