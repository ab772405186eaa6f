"""`readrate status`'s pure rules: dead-letter reasons grouped by rule, lag, risky Redis settings,
the `--check` verdict and the JSON document."""

from __future__ import annotations
from dataclasses import replace

import pytest

from readrate.reports.health import Status, Thresholds, WorkerInfo, as_document, problems, redis_warnings
from readrate.reports.reasons import group_reasons, reason_rule
from readrate.workers.backlog import ShardStatus, lag_seconds

SAFE = {"appendonly": "yes", "appendfsync": "everysec", "save": "", "maxmemory-policy": "noeviction"}


def status_of(*, lag_s: float = 0.0, workers: int = 1, failed_recent: int = 0) -> Status:
    shards = [ShardStatus(0, 0, 0.0, "0-0"), ShardStatus(1, 5, lag_s, "10-0", "11-0")]
    return Status(queue="readrate", shards=shards, dead_letters=0, dead_letter_reasons=[],
                  workers=[WorkerInfo(f"w{n}", "idle") for n in range(workers)], failed_jobs=failed_recent,
                  failed_jobs_last_hour=failed_recent, queued_jobs=0, redis_config=SAFE)


def test_ratings_refused_for_the_same_rule_are_grouped_whatever_the_value():
    nine = "rating '9' is not on the scale 1-5; accepted: 1, 2, 3, 4, 5"
    seven = "rating '7' is not on the scale 1-5; accepted: 1, 2, 3, 4, 5"
    assert reason_rule(nine) == reason_rule(seven) == "rating '…' is not on the scale 1-5; accepted: 1, 2, 3, 4, 5"


@pytest.mark.parametrize(("one", "other"), [
    ("article id 'xxxx…' is 129 characters; accepted: 1-128", "article id 'yy…' is 300 characters; accepted: 1-128"),
    ("event time 1796762755101 is 864000 s in the future; accepted: at most 300 s ahead",
     "event time 1800000000000 is 999 s in the future; accepted: at most 300 s ahead"),
    ("field 'v' is 1048576 bytes; no field may exceed 576", "field 'a' is 2000 bytes; no field may exceed 576"),
    ("unknown field 'x'; accepted: k, a, t, v, r", "unknown field 'y', 'z'; accepted: k, a, t, v, r"),
    ("article id 'it\\'s\\x00' contains a control character", "article id \"it's\\x1b\" contains a control character"),
])
def test_values_are_taken_out_of_a_reason_but_the_rule_stays(one, other):
    assert reason_rule(one) == reason_rule(other)
    assert "accepted" in reason_rule(one) or "exceed 576" in reason_rule(one) or "control" in reason_rule(one)


def test_different_rules_stay_apart_and_the_most_frequent_comes_first():
    grouped = group_reasons([
        ("rating 'abc' is not a decimal number; accepted: 1, 2, 3, 4, 5", 2),
        ("rating '9' is not on the scale 1-5; accepted: 1, 2, 3, 4, 5", 1),
        ("rating '7' is not on the scale 1-5; accepted: 1, 2, 3, 4, 5", 3),
        ("field 't' is missing", 1),
    ])
    assert grouped == [
        ("rating '…' is not on the scale 1-5; accepted: 1, 2, 3, 4, 5", 4),
        ("rating '…' is not a decimal number; accepted: 1, 2, 3, 4, 5", 2),
        ("field '…' is missing", 1),
    ]


def test_lag_is_the_age_of_the_oldest_unapplied_entry_from_its_stream_id():
    assert lag_seconds("1700000000000-3", now_ms=1700000090500) == 90.5
    assert lag_seconds(None, now_ms=1700000090500) == 0.0
    assert lag_seconds("1700000000000-0", now_ms=1699999999000) == 0.0  # clocks a little apart


def test_a_durable_non_evicting_redis_gets_no_warning():
    assert redis_warnings(SAFE) == []


@pytest.mark.parametrize(("config", "warning"), [
    ({**SAFE, "appendonly": "no", "save": ""}, "no persistence"),
    ({**SAFE, "appendonly": "no", "save": "3600 1 300 100"}, "only by snapshots"),
    ({**SAFE, "appendfsync": "no"}, "without fsync"),
    ({**SAFE, "maxmemory-policy": "allkeys-lru"}, "may evict keys when full (maxmemory-policy allkeys-lru)"),
    (None, "could not read the Redis configuration"),
])
def test_redis_settings_that_risk_events_are_warned_about(config, warning):
    assert any(warning in w for w in redis_warnings(config)), redis_warnings(config)


def test_the_check_passes_within_the_thresholds():
    assert problems(status_of(lag_s=10), Thresholds(max_lag_s=60)) == []


@pytest.mark.parametrize(("status", "thresholds", "problem"), [
    (status_of(lag_s=61), Thresholds(max_lag_s=60), "lag 61.0 s on shard 1 exceeds 60 s"),
    (status_of(failed_recent=1), Thresholds(), "1 drain job failed in the last hour; accepted: at most 0"),
    (status_of(failed_recent=3), Thresholds(max_failed_jobs=2), "3 drain jobs failed"),
    (status_of(workers=0), Thresholds(), "0 workers alive on queue 'readrate'; accepted: at least 1"),
    (status_of(workers=1), Thresholds(min_workers=2), "1 worker alive"),
])
def test_the_check_fails_naming_each_threshold_passed(status, thresholds, problem):
    assert any(problem in p for p in problems(status, thresholds)), problems(status, thresholds)


def test_the_json_document_has_stable_snake_case_keys():
    doc = as_document(status_of(), [])
    assert list(doc) == ["queue", "backlog", "lag_s", "shards", "dead_letters", "dead_letters_by_reason",
                         "workers_alive", "workers", "queued_jobs", "failed_jobs", "failed_jobs_last_hour",
                         "warnings", "installation_id", "memory", "check"]
    assert list(doc["shards"][0]) == ["shard", "backlog", "lag_s", "committed_offset", "oldest_unapplied_id",
                                      "offset_updated_at"]
    assert list(doc["workers"][0]) == ["name", "state", "current_job_id", "last_heartbeat"]
    assert doc["check"] == {"ok": True, "problems": []}
    assert "check" not in as_document(status_of())


def test_memory_warns_from_eighty_percent_of_maxmemory_and_fails_the_check_from_ninety():
    from readrate.reports.health import Memory, memory_warnings

    mb = 1_048_576
    assert memory_warnings(Memory(79 * mb, 100 * mb)) == []
    assert "80.0 MB of 100.0 MB maxmemory (80%)" in memory_warnings(Memory(80 * mb, 100 * mb))[0]
    assert memory_warnings(Memory(500 * mb, 0)) == []  # no limit: nothing to warn of
    assert problems(replace(status_of(), memory=Memory(89 * mb, 100 * mb)), Thresholds()) == []
    assert problems(replace(status_of(), memory=Memory(90 * mb, 100 * mb)), Thresholds()) == [
        "Redis memory at 90.0 MB of 100.0 MB maxmemory (90%); accepted: below 90%"]
