"""The drain loop's decisions, pure: what a drain does after a batch, after letting go of its lease,
and how long a job whose database is down keeps its shard."""

from __future__ import annotations

import pytest

from readrate.workers.drainsteps import Step, after_batch, check_shard, follow_up_needed, look_again, retry_hold_ms


@pytest.mark.parametrize(("lease_held", "out_of_time", "stopping", "step"), [
    (True, False, False, Step.CONTINUE),
    (True, True, False, Step.HAND_OVER),
    (True, False, True, Step.HAND_OVER),
    (True, True, True, Step.HAND_OVER),
    (False, False, False, Step.LEAVE),
    (False, True, True, Step.LEAVE),
])
def test_after_a_batch_a_drain_goes_on_only_while_it_holds_the_lease_has_time_and_is_not_stopping(
        lease_held, out_of_time, stopping, step):
    assert after_batch(lease_held=lease_held, out_of_time=out_of_time, stopping=stopping) is step


def test_a_lost_lease_wins_over_a_stop_the_shard_is_left_to_the_drain_that_took_it():
    assert after_batch(lease_held=False, out_of_time=False, stopping=True) is Step.LEAVE


@pytest.mark.parametrize(("handed_over", "stopping", "pending", "again"), [
    (False, False, True, True),  # an event raced the release: take the shard back
    (False, False, False, False),
    (True, False, True, False),  # a follow-up job is already coming
    (False, True, True, False),  # the worker is stopping: the sweep of another worker will see it
])
def test_a_drain_that_ran_dry_looks_once_more_after_letting_go(handed_over, stopping, pending, again):
    assert look_again(handed_over=handed_over, stopping=stopping, pending=pending) is again


def test_a_follow_up_job_is_enqueued_only_when_entries_are_left():
    assert follow_up_needed(pending=True) is True
    assert follow_up_needed(pending=False) is False


def test_a_failed_job_with_retries_left_keeps_its_lease_through_the_backoff_and_a_little_more():
    assert retry_hold_ms(retries_left=3, retry_interval_s=5, slack_ms=2_000) == 7_000
    assert retry_hold_ms(retries_left=1, retry_interval_s=0.5, slack_ms=100) == 600


@pytest.mark.parametrize("retries_left", [0, None])
def test_a_failed_job_with_no_retry_coming_lets_its_lease_go(retries_left):
    assert retry_hold_ms(retries_left=retries_left, retry_interval_s=5, slack_ms=2_000) is None


def test_a_shard_outside_the_installation_is_refused_quoting_it():
    assert check_shard(3, 4) == 3
    with pytest.raises(ValueError, match="shard 4 is out of range; accepted: 0-3"):
        check_shard(4, 4)
    with pytest.raises(ValueError, match="shard -1"):
        check_shard(-1, 4)
