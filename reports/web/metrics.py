"""GET /metrics: Prometheus text. This process's request counts, and the installation's drops and backlog.

Dropped events are counted in Redis (events/rules.py), so every collector process
and page emitter adds to the same counts; they are exported per reason for the last
7 days as `readrate_dropped_events{reason, day}`. The backlog is what is in the
streams, waiting for the workers.
"""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector as PrometheusCollector
from readrate.events.clock import utc_now
from readrate.events.rules import REASONS, days_back, dropped_counts
from readrate.events.transport import send

from .state import Collector

DAYS_EXPORTED = 7


class InstallationGauges(PrometheusCollector):
    """Read from Redis at each scrape: dropped events by reason and day, and the streams' backlog."""

    def __init__(self, collector: Collector) -> None:
        self.collector = collector

    def collect(self):
        emitter = self.collector.emitter
        keys = emitter.keys
        dropped = GaugeMetricFamily("readrate_dropped_events", "Events a counting rule dropped, by reason "
                                    "and UTC day (bot, prefetch, repeat, excluded).", labels=["reason", "day"])
        backlog = GaugeMetricFamily("readrate_backlog_events", "Events in the Redis streams, not yet counted.")
        up = GaugeMetricFamily("readrate_redis_up", "1 when Redis answered this scrape.")
        try:
            counts = dropped_counts(emitter.redis, keys, days_back(utc_now().date(), DAYS_EXPORTED))
            lengths = send(emitter.redis, [("XLEN", keys.stream(shard)) for shard in keys.drained])
        except Exception:  # noqa: BLE001 - a scrape during an outage says so instead of failing
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        for day, reasons in counts.items():
            for reason in REASONS:
                dropped.add_metric([reason, day.isoformat()], reasons.get(reason, 0))
        backlog.add_metric([], sum(n for n in lengths if isinstance(n, int)))
        yield from (up, dropped, backlog)


def metrics_text(collector: Collector) -> bytes:
    return generate_latest(collector.registry)
