"""The benchmark suite keeps working: `python -m bench --quick` runs every scenario end to end.

Nothing here asserts anything about speed — only that every scenario measured
something, the table and RESULTS file came out whole, and the run left nothing
behind (processes, PostgreSQL databases, Redis keys, temporary files).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from conftest import PG_ADMIN_URL, REDIS_URL
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # bench/ is a dev tool next to the installed packages, not one of them
    sys.path.insert(0, str(ROOT))

from bench.harness import Row, at_least, percentile, ratio_at_most, table  # noqa: E402

HEADER = "| scenario | readrate | baseline | ratio | target | met? |"
TITLES = ("1. Emit", "2. Aggregate", "3. Ceiling", "4. Reports", "5. Memory", "6. Lag", "7. Scale-out",
          "8. Redis Cluster", "9. HTTP collector", "10. Archive")


def test_percentile_interpolates_between_closest_ranks():
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([5], 99) == 5
    assert percentile(list(range(101)), 99) == 99


def test_a_row_is_met_only_when_every_target_is_met_and_its_check_passed():
    fast = Row("x", 120_000, 300, "ev/s", checks=(at_least(100_000),))
    assert fast.met is True and fast.ratio == 400
    assert Row("x", 90_000, 300, "ev/s", checks=(at_least(100_000),)).met is False
    assert Row("x", 140, 100, "µs", checks=(ratio_at_most(1.3),)).verdict == "**not met**"
    assert Row("x", 1, 1, "ev/s").verdict == "—"
    wrong = Row("x", 120_000, 300, "ev/s", checks=(at_least(100_000),), invalid=True)
    assert wrong.met is False and "check failed" in wrong.verdict
    assert Row("x", None, None, "ev/s", checks=(at_least(1),)).verdict == "n/a"
    assert table([fast]).splitlines()[0] == HEADER


def test_bench_quick_runs_every_scenario_and_writes_the_table_and_results(tmp_path):
    out = tmp_path / "RESULTS-quick.md"
    args = [sys.executable, "-m", "bench", "--quick", "--out", str(out), "--pg-url", PG_ADMIN_URL]
    if shutil.which("redis-server") is None:
        args += ["--redis-url", REDIS_URL]
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=540)
    assert done.returncode == 0, done.stderr[-3000:]

    lines = done.stdout.splitlines()
    assert HEADER in lines
    rows = [line for line in lines if line.startswith("| ") and line != HEADER]
    for title in TITLES:
        assert any(row.startswith(f"| {title}") for row in rows), f"no row for {title}:\n{done.stdout}"
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) == 6, row
        assert cells[5] in {"met", "**not met**", "—", "n/a", "**not met** (check failed)"}, row

    document = out.read_text()
    for section in ("# readrate benchmark results", HEADER, "## Machine", "## How each scenario measures",
                    "## Raw measurements"):
        assert section in document
    for detail in ("CPU:", "RAM:", "OS:", "Python:", "Redis server:", "PostgreSQL server:", "rq ",
                   "SQLAlchemy "):
        assert detail in document, detail
    raw = json.loads(re.search(r"```json\n(.*)\n```", document, re.S).group(1))
    assert raw["quick"] is True
    assert set(raw["scenarios"]) == {"emit", "aggregate", "ceiling", "reports", "memory", "lag", "scaleout",
                                     "cluster", "web", "archive"}
    assert not [name for name, s in raw["scenarios"].items() if s["error"]]
    measured = [row for s in raw["scenarios"].values() for row in s["rows"] if row["readrate"] is not None]
    assert len(measured) >= len(TITLES)

    run_id = re.search(r"bench run ([0-9a-f]{8})", done.stderr).group(1)
    _assert_nothing_left(run_id)


def _assert_nothing_left(run_id: str) -> None:
    admin = create_engine(PG_ADMIN_URL)
    try:
        with admin.connect() as conn:
            left = conn.scalars(text("SELECT datname FROM pg_database WHERE datname LIKE :p"),
                                {"p": f"rrbench_{run_id}%"}).all()
    finally:
        admin.dispose()
    assert left == [], f"PostgreSQL databases left behind: {left}"
    assert not list(Path(tempfile.gettempdir()).glob(f"rrbench-{run_id}-*")), "temporary files left behind"
    if shutil.which("redis-server") is None:
        from redis import Redis

        client = Redis.from_url(REDIS_URL)
        try:
            assert not list(client.scan_iter(f"*rrbench-{run_id}*")), "Redis keys left behind"
        finally:
            client.close()
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert f"rrbench-{run_id}" not in ps, "a process of the run is still running"
