"""`readrate audit`: recompute the counters from the archive and compare them with the database.

From the archive's committed files (DuckDB over Parquet) it recomputes, per
article, what the drain keeps: reads, reads per day and per hour, the current
votes (per voter the latest vote; on equal times the later arrival), and from
them the vote count, rating sum and votes per day. Every difference is one
`Drift` row. Articles that had counters before the archive started (its baseline)
cannot be recomputed from it: their differences are reported as "before the
archive", not as drift.

With `since` only the buckets and votes from that day on are compared; the
totals need the whole archive.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import Engine, select

from readrate.events.clock import EPOCH, MS_PER_HOUR, datetime_to_ms
from readrate.events.errors import ReadrateError
from readrate.workers.archive import Archive, recorded_paths, started
from readrate.workers.recompute import (
    READS_BY_ARTICLE,
    READS_BY_DAY,
    READS_BY_HOUR,
    VOTES_BY_ARTICLE,
    VOTES_BY_DAY,
    duckdb_connection,
    keep_current_votes,
    load_events,
    recorded_rules,
)
from readrate.workers.schema import (
    archive_baseline,
    article_stats,
    reads_daily,
    reads_hourly,
    votes,
    votes_daily,
)

# Rating sums are sums of scale steps (exact in binary for halves); anything past this is a real difference.
RATING_TOLERANCE = 1e-6


class ArchiveOff(ReadrateError):
    """Raised when there is no archive to audit against."""


@dataclass(frozen=True)
class Drift:
    """One value that differs: which article, what, the database's value and the archive's."""

    article_id: str
    what: str
    database: float | str | None
    archive: float | str | None
    before_archive: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class AuditResult:
    """What the audit compared, and every difference it found."""

    files: int = 0
    events: int = 0
    articles: int = 0
    baseline_articles: int = 0
    started_at: datetime | None = None
    since: date | None = None
    drift: list[Drift] = field(default_factory=list)

    @property
    def drifted(self) -> list[Drift]:
        """Differences the archive cannot explain (not those of articles counted before it started)."""
        return [d for d in self.drift if not d.before_archive]


def archive_root(engine: Engine, configured: str | None) -> Archive:
    """The archive to read: READRATE_ARCHIVE, or the folder recorded when archiving started."""
    with engine.connect() as conn:
        since = started(conn)
    if since is None:
        raise ArchiveOff("this installation has no archive yet: set READRATE_ARCHIVE=DIR for the workers, and "
                         "every event they count from then on is archived")
    return Archive(configured or since[1])


def audit(engine: Engine, archive: Archive, *, since: date | None = None) -> AuditResult:
    """Compare the database's counters with what the archive's committed files say they must be."""
    # One snapshot of the database: the counters, the files and the operations as one commit left them,
    # so workers draining meanwhile never show up as drift.
    conn = engine.connect()
    if engine.dialect.name == "postgresql":
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
    with conn, conn.begin():
        names = recorded_paths(conn)
        began = started(conn)
        baseline = set(conn.scalars(select(archive_baseline.c.article_id)))
        stored = _stored(conn, since)
        rules = recorded_rules(conn)
    result = AuditResult(files=len(names), baseline_articles=len(baseline), since=since,
                         started_at=None if began is None else began[0])
    duck = duckdb_connection()
    try:
        result.events = load_events(duck, archive, names, since=since, rules=rules)
        recomputed = _recomputed(duck, since)
    finally:
        duck.close()
    articles: set[str] = set()
    for what, db_values in stored.items():
        archive_values = recomputed[what]
        for key in db_values.keys() | archive_values.keys():
            ours, theirs = db_values.get(key), archive_values.get(key)
            article_id = key[0]
            articles.add(article_id)
            if _same(ours, theirs):
                continue
            if what == "vote_at":  # shown as times, not epoch milliseconds
                ours, theirs = (None if v is None else _iso(v) for v in (ours, theirs))
            result.drift.append(Drift(article_id, _label(what, key), ours, theirs, article_id in baseline))
    result.articles = len(articles)
    result.drift.sort(key=lambda d: (d.before_archive, d.article_id, d.what))
    return result


def _iso(at_ms: int) -> str:
    return (EPOCH + timedelta(milliseconds=at_ms)).isoformat(sep=" ", timespec="milliseconds")


def _same(ours, theirs) -> bool:
    if ours is None or theirs is None:
        return not ours and not theirs  # a zero bucket or total the other side lacks is the same nothing
    return abs(float(ours) - float(theirs)) <= RATING_TOLERANCE


def _label(what: str, key: tuple) -> str:
    if what in ("reads", "votes", "rating_sum"):
        return what
    if what == "reads_hourly":
        return f"reads in hour {(EPOCH + timedelta(hours=key[1])).isoformat(sep=' ', timespec='minutes')}"
    if what.endswith("_daily"):
        label = {"reads_daily": "reads", "votes_daily": "votes", "rating_sum_daily": "rating sum"}[what]
        return f"{label} on {(EPOCH + timedelta(days=key[1])).date().isoformat()}"
    return f"{'vote time' if what == 'vote_at' else 'vote'} of {key[1]}"


def _stored(conn, since: date | None) -> dict[str, dict]:
    """The database's side, keyed like the archive's: {what: {key tuple: value}}."""
    out: dict[str, dict] = {}
    if since is None:
        rows = conn.execute(select(article_stats.c.article_id, article_stats.c.reads, article_stats.c.votes,
                                   article_stats.c.rating_sum)).all()
        out["reads"] = {(a,): r for a, r, _, _ in rows if r}
        out["votes"] = {(a,): v for a, _, v, _ in rows if v}
        out["rating_sum"] = {(a,): s for a, _, _, s in rows if s}
    query = select(reads_daily.c.article_id, reads_daily.c.day, reads_daily.c.reads)
    if since is not None:
        query = query.where(reads_daily.c.day >= since)
    out["reads_daily"] = {(a, _day_number(d)): n for a, d, n in conn.execute(query) if n}
    query = select(reads_hourly.c.article_id, reads_hourly.c.hour, reads_hourly.c.reads)
    if since is not None:
        query = query.where(reads_hourly.c.hour >= datetime(since.year, since.month, since.day))
    out["reads_hourly"] = {(a, _hour_number(h)): n for a, h, n in conn.execute(query) if n}
    query = select(votes_daily.c.article_id, votes_daily.c.day, votes_daily.c.votes, votes_daily.c.rating_sum)
    if since is not None:
        query = query.where(votes_daily.c.day >= since)
    daily = conn.execute(query).all()
    out["votes_daily"] = {(a, _day_number(d)): n for a, d, n, _ in daily if n}
    out["rating_sum_daily"] = {(a, _day_number(d)): s for a, d, _, s in daily if s}
    query = select(votes.c.article_id, votes.c.voter_id, votes.c.rating, votes.c.voted_at)
    if since is not None:
        query = query.where(votes.c.voted_at >= datetime(since.year, since.month, since.day))
    cast = conn.execute(query).all()
    out["vote"] = {(a, v): r for a, v, r, _ in cast}
    out["vote_at"] = {(a, v): _ms(at) for a, v, _, at in cast}
    return out


def _ms(at) -> int:
    if isinstance(at, str):
        at = datetime.fromisoformat(at)
    return datetime_to_ms(at)


def _day_number(day) -> int:
    if isinstance(day, str):  # SQLite hands dates back as text through some paths
        day = date.fromisoformat(day)
    return (day - EPOCH.date()).days


def _hour_number(hour) -> int:
    if isinstance(hour, str):
        hour = datetime.fromisoformat(hour)
    return datetime_to_ms(hour) // MS_PER_HOUR


def _recomputed(duck, since: date | None) -> dict[str, dict]:
    """The archive's side: the same values, recomputed from the events."""
    out: dict[str, dict] = {}
    keep_current_votes(duck)

    def rows(sql: str) -> list[tuple]:
        return duck.execute(sql).fetchall()

    if since is None:
        out["reads"] = {(a,): n for a, n in rows(READS_BY_ARTICLE)}
        current = rows(VOTES_BY_ARTICLE)
        out["votes"] = {(a,): n for a, n, _ in current}
        out["rating_sum"] = {(a,): s for a, _, s in current if s}
    out["reads_daily"] = {(a, d): n for a, d, n in rows(READS_BY_DAY)}
    out["reads_hourly"] = {(a, h): n for a, h, n in rows(READS_BY_HOUR)}
    daily = rows(VOTES_BY_DAY)
    out["votes_daily"] = {(a, d): n for a, d, n, _ in daily}
    out["rating_sum_daily"] = {(a, d): s for a, d, _, s in daily if s}
    current = rows("SELECT * FROM current_votes")
    out["vote"] = {(a, v): r for a, v, r, _ in current}
    out["vote_at"] = {(a, v): at for a, v, _, at in current}
    return out
