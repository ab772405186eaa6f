"""What a drain does next, decided by pure functions of what it has seen (no I/O, no clock).

The drain job (`drain.py`) does the reading, writing and Redis calls; each choice
between them is one of the functions here, so every branch is tested without a
server.
"""

from __future__ import annotations

from enum import Enum


class Step(Enum):
    """What the drain loop does after a batch."""

    CONTINUE = "continue"  # read and apply the next batch
    HAND_OVER = "hand over"  # stop here; a follow-up job drains the rest
    LEAVE = "leave"  # the lease went to another drain: stop and leave the shard to it


def after_batch(*, lease_held: bool, out_of_time: bool, stopping: bool) -> Step:
    """After a batch was applied (or turned away by the offset compare-and-set)."""
    if not lease_held:
        return Step.LEAVE
    if stopping or out_of_time:
        return Step.HAND_OVER
    return Step.CONTINUE


def look_again(*, handed_over: bool, stopping: bool, pending: bool) -> bool:
    """After letting go of the lease: take the shard back?

    An event that arrived while the lease was held may have had its own job turned
    away as busy, so a drain that ran dry looks once more; one that handed over, or
    whose worker is stopping, does not.
    """
    return pending and not handed_over and not stopping


def follow_up_needed(*, pending: bool) -> bool:
    """When the loop ended early (time budget, stop requested): enqueue a job for what is left?"""
    return pending


def retry_hold_ms(*, retries_left: int | None, retry_interval_s: float, slack_ms: int) -> int | None:
    """How long a job that failed because the database is unreachable keeps its shard's lease.

    Through its retry's backoff and a little more, so the retry (same job id) takes
    the lease back and the sweep, seeing it held, piles no more jobs onto a database
    that is down. None: no retry is coming, let the lease go now.
    """
    if not retries_left:
        return None
    return int(retry_interval_s * 1000) + slack_ms


def check_shard(shard: int, shards: int) -> int:
    """The shard number if the installation has it; ValueError quoting it otherwise."""
    if not 0 <= shard < shards:
        raise ValueError(f"shard {shard} is out of range; accepted: 0-{shards - 1}")
    return shard
