"""Counters recomputed from the archive: what `readrate audit` compares and `readrate rebuild` writes.

The drain's rules, as SQL over the archive's committed files (DuckDB): reads per
article, hour and day; per (article, voter) the current vote — the latest by event
time, on equal times the later arrival (stream order); vote counts, rating sums and
votes per day from the current votes; an article's first event (reads and votes,
replaced votes too), last read and last vote. `Rules` drop events the way a
counting rule would have (a spam voter, a visitor, an article), applied to the past.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import Connection, select

from readrate.events.clock import EPOCH, MS_PER_DAY, MS_PER_HOUR
from readrate.events.errors import ConfigError

from .archive import Archive, check_present, schema
from .schema import operations


@dataclass(frozen=True)
class Rules:
    """Events to leave out of a recomputation: a voter's votes, a visitor's reads, an article's events
    (as if it never existed), an article's reads or votes (a reset), a voter's votes on one article.

    `upto` (shard -> stream id) limits the rules to the events counted when they were applied
    (a rebuild's or an operation's offsets): what is counted later is counted. None: every event."""

    voters: frozenset[str] = field(default_factory=frozenset)
    visitors: frozenset[str] = field(default_factory=frozenset)
    articles: frozenset[str] = field(default_factory=frozenset)
    upto: dict[int, str] | None = None
    reads_of: frozenset[str] = field(default_factory=frozenset)
    votes_of: frozenset[str] = field(default_factory=frozenset)
    voter_on: frozenset[tuple[str, str]] = field(default_factory=frozenset)  # (voter, article)

    def __bool__(self) -> bool:
        return bool(self.voters or self.visitors or self.articles or self.reads_of or self.votes_of
                    or self.voter_on)

    def params(self) -> str:
        return json.dumps({"voters": sorted(self.voters), "visitors": sorted(self.visitors),
                           "articles": sorted(self.articles), "upto": self.upto}, sort_keys=True)

    @classmethod
    def from_params(cls, text: str) -> Rules:
        doc = json.loads(text)
        return cls(frozenset(doc.get("voters", ())), frozenset(doc.get("visitors", ())),
                   frozenset(doc.get("articles", ())), _upto(doc.get("upto")))

    @classmethod
    def of_operation(cls, action: str, article_id: str | None, voter_id: str | None, params: str,
                     effect: str) -> Rules:
        """What an applied reset or unvote left out, up to the offsets it was applied at."""
        upto = _upto(json.loads(effect).get("upto"))
        if action == "unvote":
            if article_id is None:
                return cls(voters=frozenset([voter_id]), upto=upto)
            return cls(voter_on=frozenset([(voter_id, article_id)]), upto=upto)
        chosen = json.loads(params)
        return cls(reads_of=frozenset([article_id]) if chosen.get("reads", True) else frozenset(),
                   votes_of=frozenset([article_id]) if chosen.get("votes", True) else frozenset(), upto=upto)


def _upto(value: dict | None) -> dict[int, str] | None:
    return None if value is None else {int(k): v for k, v in value.items()}


def recorded_rules(conn: Connection) -> list[Rules]:
    """What earlier rebuilds and moderation left out of the counters (applied and not undone): audits and
    rebuilds leave the same out."""
    o = operations.c
    rules = [Rules.from_params(text) for text in conn.scalars(
        select(o.params).where(o.action == "rebuild", o.undone_by.is_(None)))]
    rules += [Rules.of_operation(*row) for row in conn.execute(
        select(o.action, o.article_id, o.voter_id, o.params, o.effect)
        .where(o.action.in_(("reset", "unvote")), o.applied_at.is_not(None), o.undone_by.is_(None)))]
    return [r for r in rules if r]


def duckdb_connection():
    """An in-memory DuckDB, in UTC; ConfigError saying how to install it when it is missing."""
    try:
        import duckdb
    except ImportError:  # pragma: no cover - the dev and compose installs have it
        raise ConfigError("reading the archive needs DuckDB: pip install 'readrate[archive]'") from None
    conn = duckdb.connect()
    conn.execute("SET TimeZone = 'UTC'")
    conn.execute("SET enable_progress_bar = false")  # its bar would land in the CLI's output
    return conn


def duckdb_io_error() -> type[Exception]:
    """DuckDB's error for a file that cannot be read (to catch without importing DuckDB up front)."""
    import duckdb

    return duckdb.IOException


def sql_string(text: str) -> str:
    """`text` as a DuckDB string literal (a file path in COPY or read_csv, which take no parameters)."""
    return "'" + text.replace("'", "''") + "'"


def day_ms(day: date) -> int:
    return (day - EPOCH.date()).days * MS_PER_DAY


def load_events(duck, archive: Archive, names: list[str], *, since: date | None = None,
                rules: Sequence[Rules] = ()) -> int:
    """Make the view `ev` over the committed files `names`: one row per event, times as epoch ms; its count."""
    check_present(archive, names)
    if names:
        duck.read_parquet(archive.paths(names)).create_view("archived")
    else:
        duck.from_arrow(schema().empty_table()).create_view("archived")
    duck.execute(f"""
        CREATE OR REPLACE TEMP VIEW all_ev AS
        SELECT kind, article_id, epoch_ms("at") AS at_ms, visitor, rating, shard,
               CAST(split_part(stream_id, '-', 1) AS BIGINT) AS id_ms,
               CAST(split_part(stream_id, '-', 2) AS BIGINT) AS id_seq
        FROM archived WHERE kind IN ('read', 'vote')
        {'' if since is None else f'AND epoch_ms("at") >= {day_ms(since)}'}""")
    if not any(rules):  # nothing left out: plain views (a NOT EXISTS over no rules still costs a pass per query)
        duck.execute("CREATE OR REPLACE TEMP VIEW kept AS SELECT * FROM all_ev")
        duck.execute("CREATE OR REPLACE TEMP VIEW ev AS SELECT * FROM all_ev")
        return duck.execute("SELECT count(*) FROM ev").fetchall()[0][0]
    duck.from_arrow(_left_out(rules)).create_view("left_out")
    # Up to where a rule applies: every event (no shard), or the shard's events up to its offset then.
    applies = ("(l.shard IS NULL OR (l.shard = e.shard AND "
               "(e.id_ms < l.id_ms OR (e.id_ms = l.id_ms AND e.id_seq <= l.id_seq))))")
    # kept: without the articles a rule removed altogether (as if they never existed).
    duck.execute(f"""
        CREATE OR REPLACE TEMP VIEW kept AS
        SELECT * FROM all_ev e WHERE NOT EXISTS (
            SELECT 1 FROM left_out l WHERE l.what = 'article' AND e.article_id = l.name AND {applies})""")
    # ev: what the counters count.
    duck.execute(f"""
        CREATE OR REPLACE TEMP VIEW ev AS
        SELECT * FROM kept e WHERE NOT EXISTS (
            SELECT 1 FROM left_out l
            WHERE {applies}
              AND ((l.what = 'voter' AND e.kind = 'vote' AND e.visitor = l.name)
                OR (l.what = 'visitor' AND e.kind = 'read' AND e.visitor = l.name)
                OR (l.what = 'reads_of' AND e.kind = 'read' AND e.article_id = l.name)
                OR (l.what = 'votes_of' AND e.kind = 'vote' AND e.article_id = l.name)
                OR (l.what = 'voter_on' AND e.kind = 'vote' AND e.visitor = l.name AND e.article_id = l.article)))""")
    return duck.execute("SELECT count(*) FROM ev").fetchall()[0][0]


def _left_out(rules: Sequence[Rules]):
    """One row per (rule, name, shard it is limited to): what `ev` leaves out."""
    import pyarrow as pa

    rows = []
    for rule in rules:
        limits = [(None, None, None)] if rule.upto is None else [
            (shard, *(int(part) for part in last_id.split("-"))) for shard, last_id in rule.upto.items()]
        named = [(what, name, None) for what, names in (
            ("voter", rule.voters), ("visitor", rule.visitors), ("article", rule.articles),
            ("reads_of", rule.reads_of), ("votes_of", rule.votes_of)) for name in sorted(names)]
        named += [("voter_on", voter, article) for voter, article in sorted(rule.voter_on)]
        rows.extend((*item, *limit) for item in named for limit in limits)
    columns = list(zip(*rows)) if rows else [[]] * 6
    return pa.table({"what": pa.array(columns[0], pa.string()), "name": pa.array(columns[1], pa.string()),
                     "article": pa.array(columns[2], pa.string()), "shard": pa.array(columns[3], pa.int16()),
                     "id_ms": pa.array(columns[4], pa.int64()), "id_seq": pa.array(columns[5], pa.int64())})


# Per (article, voter) the latest vote; on equal times the later arrival (stream order). One sortable key
# per event (event time, then stream id): times before 2109 (42 bits of ms) and sequence numbers under
# 2**43 fit a HUGEINT. arg_max over it is a hash aggregate, cheaper than a window over sorted partitions.
_LATEST = "(at_ms::HUGEINT << 85) + (id_ms::HUGEINT << 43) + id_seq"
CURRENT_VOTES = f"""
    SELECT article_id, visitor AS voter, arg_max(rating, {_LATEST}) AS rating, max(at_ms) AS at_ms
    FROM ev WHERE kind = 'vote' GROUP BY 1, 2
"""
READ_HOURS = f"""
    SELECT article_id, at_ms // {MS_PER_HOUR} AS hour, count(*) AS reads, max(at_ms) AS last_ms
    FROM ev WHERE kind = 'read' GROUP BY 1, 2
"""


def keep_tallies(duck) -> None:
    """Compute, once, the tables the queries below read (`ev` loaded): `current_votes` (article_id, voter,
    rating, at_ms) and `read_hours` (article_id, hour number, reads, the hour's last read in ms)."""
    duck.execute(f"CREATE OR REPLACE TEMP TABLE current_votes AS {CURRENT_VOTES}")
    duck.execute(f"CREATE OR REPLACE TEMP TABLE read_hours AS {READ_HOURS}")


READS_BY_ARTICLE = "SELECT article_id, sum(reads) AS reads, max(last_ms) AS last_read_ms FROM read_hours GROUP BY 1"
READS_BY_HOUR = "SELECT article_id, hour, reads FROM read_hours"
READS_BY_DAY = "SELECT article_id, hour // 24, sum(reads) FROM read_hours GROUP BY 1, 2"
VOTES_BY_ARTICLE = ("SELECT article_id, count(*) AS votes, sum(rating) AS rating_sum, max(at_ms) AS last_vote_ms "
                    "FROM current_votes GROUP BY 1")
VOTES_BY_DAY = f"SELECT article_id, at_ms // {MS_PER_DAY}, count(*), sum(rating) FROM current_votes GROUP BY 1, 2"
# article_stats as the drain keeps it: first event of any kind, last read, last vote (any vote: the latest one
# of each voter is always applied, so the latest current vote), reads, and the current votes' count and sum.
# An article's row exists, and its first event is, over every event it had (a reset does not move it).
ARTICLE_STATS = f"""
    WITH firsts AS (SELECT article_id, min(at_ms) AS first_ms FROM kept GROUP BY 1),
    read AS ({READS_BY_ARTICLE}),
    voted AS ({VOTES_BY_ARTICLE})
    SELECT f.article_id, coalesce(r.reads, 0), coalesce(v.votes, 0), coalesce(v.rating_sum, 0.0),
           f.first_ms, r.last_read_ms, v.last_vote_ms
    FROM firsts f LEFT JOIN read r USING (article_id) LEFT JOIN voted v USING (article_id)
"""
