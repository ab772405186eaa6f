"""Moderation as audited events: reset an article, remove a voter's votes, undo either.

`readrate moderate` records the action in the `operations` table (who, when, what,
why) and puts an operation entry in the article's shard stream (events/operations.py).
The drain applies it in the batch transaction, in stream order with the reads and votes
around it, exactly once (the offset compare-and-set guards it like any batch), and
stores its effect: exactly the rows it removed, and the offsets of every shard at that
moment (what audits and rebuilds need to apply the same action to the archive).

Undo restores what the action removed on top of what came later: removed reads are added
back; a removed vote comes back unless its voter has voted on that article since (the
latest vote wins, as always).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import Connection, and_, delete, func, insert, select, update

from readrate.events.clock import EPOCH, MS_PER_DAY, datetime_to_ms, now_ms, utc_now
from readrate.events.errors import ReadrateError
from readrate.events.jobs import enqueue_drain
from readrate.events.operations import OperationEntry
from readrate.events.wire import DOORBELL_TTL_MS

from .schema import article_stats, operations, reads_daily, reads_hourly, stream_offsets, votes, votes_daily


class OperationRefused(ReadrateError):
    """Raised when a moderation command cannot be carried out (unknown id, already undone, nothing to undo)."""


@dataclass(frozen=True)
class Applied:
    """What applying one operation entry did (for the log line)."""

    op_id: int
    action: str
    summary: str


def _dt(value) -> datetime:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def _day(value) -> date:
    return date.fromisoformat(value) if isinstance(value, str) else value


def _ms(value) -> int | None:
    return None if value is None else datetime_to_ms(_dt(value))


def _at(ms: int | None) -> datetime | None:
    return None if ms is None else EPOCH + timedelta(milliseconds=ms)


def record(conn: Connection, *, action: str, actor: str, reason: str, params: dict,
           article_id: str | None = None, voter_id: str | None = None) -> int:
    """Insert the operations row of a new action (not applied yet); its id."""
    result = conn.execute(insert(operations).values(
        created_at=utc_now(), actor=actor, action=action, article_id=article_id, voter_id=voter_id,
        reason=reason, params=json.dumps(params, sort_keys=True)))
    return int(result.inserted_primary_key[0])


def apply_operation(conn: Connection, entry: OperationEntry) -> str | None:
    """Apply an operation entry inside the batch transaction; None, or why it is refused (a dead letter)."""
    row = conn.execute(select(operations).where(operations.c.id == entry.op_id)).mappings().first()
    if row is None:
        return f"operation {entry.op_id} is not in the operations table"
    if row["action"] != entry.action or row["article_id"] != entry.article_id or row["voter_id"] != entry.voter:
        return f"operation {entry.op_id} in the stream does not match its row in the operations table"
    if row["applied_at"] is not None:
        return f"operation {entry.op_id} was applied already"
    params = json.loads(row["params"])
    if entry.action == "reset":
        effect = _reset(conn, entry.article_id, reads=params.get("reads", True),
                        reset_votes=params.get("votes", True))
    elif entry.action == "unvote":
        effect = {"votes": _remove_votes(conn, votes.c.voter_id == entry.voter,
                                         *([votes.c.article_id == entry.article_id] if entry.article_id else []))}
    else:
        effect = _undo(conn, int(params["undoes"]), entry.op_id)
    effect["upto"] = {str(s): last for s, last in conn.execute(select(stream_offsets.c.shard,
                                                                      stream_offsets.c.last_id))}
    conn.execute(update(operations).where(operations.c.id == entry.op_id)
                 .values(applied_at=utc_now(), effect=json.dumps(effect, sort_keys=True)))
    return None


def _reset(conn: Connection, article_id: str, *, reads: bool, reset_votes: bool) -> dict:
    """Remove the article's reads and/or votes; the removed rows."""
    effect: dict = {"article_id": article_id}
    stats = conn.execute(select(article_stats.c.last_read_at).where(article_stats.c.article_id == article_id)).first()
    if reads:
        hours = conn.execute(select(reads_hourly.c.hour, reads_hourly.c.reads)
                             .where(reads_hourly.c.article_id == article_id)).all()
        days = conn.execute(select(reads_daily.c.day, reads_daily.c.reads)
                            .where(reads_daily.c.article_id == article_id)).all()
        effect["reads"] = {"hourly": [[_ms(h), int(n)] for h, n in hours],
                           "daily": [[_day(d).isoformat(), int(n)] for d, n in days],
                           "last_read_ms": _ms(stats[0]) if stats else None}
        conn.execute(delete(reads_hourly).where(reads_hourly.c.article_id == article_id))
        conn.execute(delete(reads_daily).where(reads_daily.c.article_id == article_id))
        conn.execute(update(article_stats).where(article_stats.c.article_id == article_id)
                     .values(reads=0, last_read_at=None))
    if reset_votes:
        effect["votes"] = _remove_votes(conn, votes.c.article_id == article_id)
    return effect


def _remove_votes(conn: Connection, *where) -> list[list]:
    """Delete the votes matching `where` and take them out of their articles' totals and daily buckets;
    the removed votes as [article, voter, rating, voted_at ms]."""
    removed = conn.execute(select(votes.c.article_id, votes.c.voter_id, votes.c.rating, votes.c.voted_at)
                           .where(*where)).all()
    for article_id, voter_id, rating, voted_at in removed:
        _move_vote(conn, article_id, voter_id, old=(float(rating), _ms(voted_at)), new=None)
    return [[a, v, float(r), _ms(at)] for a, v, r, at in removed]


def _move_vote(conn: Connection, article_id: str, voter_id: str, *, old: tuple[float, int] | None,
               new: tuple[float, int] | None) -> None:
    """Replace one stored vote (`old`, or none) by `new` (or none): the vote row, the article's totals and
    the daily buckets, and the article's last vote time."""
    key = and_(votes.c.article_id == article_id, votes.c.voter_id == voter_id)
    if old is not None:
        _bucket(conn, article_id, old[1] // MS_PER_DAY, -1, -old[0])
    if new is not None:
        _bucket(conn, article_id, new[1] // MS_PER_DAY, 1, new[0])
        if old is None:
            conn.execute(insert(votes).values(article_id=article_id, voter_id=voter_id, rating=new[0],
                                              voted_at=_at(new[1])))
        else:
            conn.execute(update(votes).where(key).values(rating=new[0], voted_at=_at(new[1])))
    elif old is not None:
        conn.execute(delete(votes).where(key))
    count = (1 if new is not None else 0) - (1 if old is not None else 0)
    change = (new[0] if new is not None else 0.0) - (old[0] if old is not None else 0.0)
    last = select(func.max(votes.c.voted_at)).where(votes.c.article_id == article_id).scalar_subquery()
    conn.execute(update(article_stats).where(article_stats.c.article_id == article_id).values(
        votes=article_stats.c.votes + count, rating_sum=article_stats.c.rating_sum + change, last_vote_at=last))


def _bucket(conn: Connection, article_id: str, day_number: int, count: int, rating: float) -> None:
    day = (EPOCH + timedelta(days=day_number)).date()
    where = and_(votes_daily.c.article_id == article_id, votes_daily.c.day == day)
    found = conn.execute(select(votes_daily.c.votes).where(where)).first()
    if found is None:
        conn.execute(insert(votes_daily).values(article_id=article_id, day=day, votes=count, rating_sum=rating))
    elif int(found[0]) + count == 0:
        conn.execute(delete(votes_daily).where(where))  # an empty bucket is no bucket, as a rebuild leaves it
    else:
        conn.execute(update(votes_daily).where(where).values(votes=votes_daily.c.votes + count,
                                                             rating_sum=votes_daily.c.rating_sum + rating))


def _undo(conn: Connection, target_id: int, undo_id: int) -> dict:
    """Restore what operation `target_id` removed, on top of what came after it."""
    target = conn.execute(select(operations).where(operations.c.id == target_id)).mappings().first()
    if target is None or target["effect"] is None:
        return {"undoes": target_id, "restored": None}
    effect = json.loads(target["effect"])
    restored_votes = 0
    if "reads" in effect:
        _restore_reads(conn, effect["article_id"], effect["reads"])
    for article_id, voter_id, rating, at_ms in effect.get("votes", []):
        stored = conn.execute(select(votes.c.rating, votes.c.voted_at).where(
            votes.c.article_id == article_id, votes.c.voter_id == voter_id)).first()
        if stored is not None and _ms(stored[1]) >= at_ms:
            continue  # the voter has voted since: the latest vote stands
        _move_vote(conn, article_id, voter_id, old=None if stored is None else (float(stored[0]), _ms(stored[1])),
                   new=(rating, at_ms))
        restored_votes += 1
    conn.execute(update(operations).where(operations.c.id == target_id).values(undone_by=undo_id))
    return {"undoes": target_id, "restored_votes": restored_votes,
            "restored_reads": sum(n for _, n in effect.get("reads", {}).get("hourly", []))}


def _restore_reads(conn: Connection, article_id: str, removed: dict) -> None:
    for hour_ms, n in removed["hourly"]:
        _add(conn, reads_hourly, and_(reads_hourly.c.article_id == article_id, reads_hourly.c.hour == _at(hour_ms)),
             {"article_id": article_id, "hour": _at(hour_ms)}, n)
    for day_text, n in removed["daily"]:
        day = date.fromisoformat(day_text)
        _add(conn, reads_daily, and_(reads_daily.c.article_id == article_id, reads_daily.c.day == day),
             {"article_id": article_id, "day": day}, n)
    total = sum(n for _, n in removed["hourly"])
    last = _at(removed.get("last_read_ms"))
    values = {"reads": article_stats.c.reads + total}
    if last is not None:
        current = conn.scalar(select(article_stats.c.last_read_at).where(article_stats.c.article_id == article_id))
        if current is None or _dt(current) < last:
            values["last_read_at"] = last
    conn.execute(update(article_stats).where(article_stats.c.article_id == article_id).values(**values))


def _add(conn: Connection, table, where, key: dict, n: int) -> None:
    if conn.execute(update(table).where(where).values(reads=table.c.reads + n)).rowcount == 0:
        conn.execute(insert(table).values(**key, reads=n))


# -- the command side: record an action and put it in its shard's stream ---------------------------

def queue_operation(engine, redis, keys, *, action: str, actor: str, reason: str, params: dict,
                    article_id: str | None = None, voter_id: str | None = None, shard: int, queue=None) -> int:
    """Record the action (operations row), then XADD its entry to `shard`'s stream; the operation id.

    The row comes first, so the drain always finds it; if Redis refuses the entry the row is deleted."""
    with engine.begin() as conn:
        op_id = record(conn, action=action, actor=actor, reason=reason, params={**params, "shard": shard},
                       article_id=article_id, voter_id=voter_id)
    entry = OperationEntry(op_id, action, now_ms(), article_id, voter_id)
    try:
        redis.xadd(keys.stream(shard), entry.fields())
    except BaseException:
        with engine.begin() as conn:
            conn.execute(delete(operations).where(operations.c.id == op_id))
        raise
    try:  # ring and enqueue as the Emitter does; the sweep would notice the entry within seconds anyway
        if redis.set(keys.doorbell(shard), 1, nx=True, px=DOORBELL_TTL_MS) and queue is not None:
            enqueue_drain(queue, shard)
    except Exception:  # noqa: BLE001
        pass
    return op_id


def undo_target(conn: Connection, op_id: int) -> dict:
    """The operation `readrate moderate undo OP_ID` may undo; OperationRefused says why not."""
    row = conn.execute(select(operations).where(operations.c.id == op_id)).mappings().first()
    if row is None:
        raise OperationRefused(f"there is no operation {op_id}; `readrate moderate log` lists them")
    if row["action"] not in ("reset", "unvote"):
        raise OperationRefused(f"operation {op_id} is a {row['action']}: only reset and unvote can be undone")
    if row["undone_by"] is not None:
        raise OperationRefused(f"operation {op_id} was undone already, by operation {row['undone_by']}")
    pending = conn.execute(select(operations.c.id, operations.c.params).where(
        operations.c.action == "undo", operations.c.applied_at.is_(None))).all()
    for other, params in pending:
        if json.loads(params).get("undoes") == op_id:
            raise OperationRefused(f"operation {op_id} is being undone already, by operation {other}")
    # Undo goes in reverse order: a later action on the same counters removed only what was counted then,
    # so it must be undone first (otherwise audits and rebuilds could not tell what each one removed).
    later = conn.execute(select(operations).where(
        operations.c.id > op_id, operations.c.action.in_(("reset", "unvote")),
        operations.c.undone_by.is_(None))).mappings().all()
    for other in later:
        if _overlap(row, other):
            raise OperationRefused(f"operation {other['id']} ({other['action']}, later) changed the same counters "
                                   f"and stands: undo it first (`readrate moderate undo {other['id']}`)")
    return dict(row)


def _overlap(first: dict, later: dict) -> bool:
    """Whether two resets/unvotes may touch the same counters (erring on the side of yes)."""
    def votes_of(op: dict) -> bool:
        return op["action"] == "unvote" or json.loads(op["params"]).get("votes", True)

    if first["action"] == "reset" and later["action"] == "reset":
        return first["article_id"] == later["article_id"]
    if first["action"] == "unvote" and later["action"] == "unvote":
        return first["voter_id"] == later["voter_id"] and (
            first["article_id"] is None or later["article_id"] is None or first["article_id"] == later["article_id"])
    reset, unvote = (first, later) if first["action"] == "reset" else (later, first)
    return votes_of(reset) and (unvote["article_id"] is None or unvote["article_id"] == reset["article_id"])


def log_rows(conn: Connection, *, limit: int | None = None, article_id: str | None = None) -> list[dict]:
    """The operations, newest first, with their state and what they did."""
    query = select(operations).order_by(operations.c.id.desc())
    if article_id is not None:
        query = query.where(operations.c.article_id == article_id)
    if limit is not None:
        query = query.limit(limit)
    rows = []
    for row in conn.execute(query).mappings():
        state = ("undone by " + str(row["undone_by"]) if row["undone_by"] is not None
                 else "applied" if row["applied_at"] is not None else "queued")
        rows.append({"id": row["id"], "created_at": _dt(row["created_at"]), "actor": row["actor"],
                     "action": row["action"], "article_id": row["article_id"], "voter_id": row["voter_id"],
                     "reason": row["reason"], "state": state,
                     "applied_at": None if row["applied_at"] is None else _dt(row["applied_at"]),
                     "effect": describe(row["action"], row["params"], row["effect"])})
    return rows


def describe(action: str, params: str, effect: str | None) -> str:
    """An operation's effect in words."""
    done = json.loads(effect) if effect else None
    if action == "rebuild":
        rules = json.loads(params)
        parts = [f"{key} {', '.join(rules[key])}" for key in ("voters", "visitors", "articles") if rules.get(key)]
        return "left out " + "; ".join(parts) if parts else "recomputed"
    if done is None:
        return "not applied yet"
    if action == "undo":
        return (f"restored {done.get('restored_reads', 0):,} reads and {done.get('restored_votes', 0):,} votes "
                f"of operation {done.get('undoes')}")
    reads = sum(n for _, n in done.get("reads", {}).get("hourly", []))
    removed = len(done.get("votes", []))
    return f"removed {reads:,} reads and {removed:,} votes" if action == "reset" else f"removed {removed:,} votes"


def article_resets(conn: Connection, article_id: str) -> list[dict]:
    """The applied, not undone resets of an article: what `report article` notes ("reset on DATE (reason)")."""
    o = operations.c
    found = conn.execute(select(o.id, o.applied_at, o.reason, o.params).where(
        o.action == "reset", o.article_id == article_id, o.applied_at.is_not(None), o.undone_by.is_(None))
        .order_by(o.id)).all()
    out = []
    for op_id, applied_at, reason, params in found:
        chosen = json.loads(params)
        what = [w for w in ("reads", "votes") if chosen.get(w, True)]
        out.append({"id": op_id, "applied_at": _dt(applied_at), "reason": reason, "reset": what})
    return out
