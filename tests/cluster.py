"""A private Redis Cluster for the tests: three masters, no replicas, no persistence.

The cluster itself is `readrate.reports.localredis.LocalCluster` (the benchmarks start
the same one): three `redis-server --cluster-enabled yes` processes on free ports of
their own, joined with `redis-cli --cluster create`, ready once every node says
`cluster_state:ok`; `stop()` ends them and removes their directory.
"""

from readrate.reports.localredis import LocalCluster as PrivateCluster

__all__ = ["PrivateCluster"]
