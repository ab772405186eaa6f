"""Scenario 4, Reports: `readrate report top` over 7 days by reads and by rating, and `readrate report
article`, on 10,000 articles with a year of history, on SQLite and PostgreSQL.

Measured by bench/reports_bench.py (its method is its docstring, shown in RESULTS.md);
this module runs it in a process of its own — building a year of history takes a
lot of memory, which the bench process, and every worker it starts afterwards,
should not carry into the other scenarios — and turns its dicts into table rows.
"""

from __future__ import annotations

import ast
import json
import signal
import subprocess
import sys
from pathlib import Path

from .harness import Outcome, Row, below, skipped
from .resources import ROOT, Env, python_env

NAME = "reports"
TITLE = "4. Reports"
TARGETS_MS = {"article": 50.0, "top": 200.0}
LABELS = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
SOURCE = Path(__file__).with_name("reports_bench.py")
TIMEOUT_S = 3600
# SIGINT handled even where it was inherited as ignored (a background job): it is how the child is stopped.
_CHILD = ("import json, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
          "from bench import reports_bench; print(json.dumps(reports_bench.run({quick!r}), default=str))")


def run(env: Env, quick: bool) -> Outcome:
    if not SOURCE.exists():
        return Outcome([skipped(f"{TITLE} · top and article", "bench/reports_bench.py is not there yet")],
                       {"skipped": "bench/reports_bench.py is missing"}, __doc__)
    child_env = python_env(READRATE_BENCH_PG_URL=env.pg_admin_url)
    child = subprocess.Popen([sys.executable, "-c", _CHILD.format(quick=quick)], cwd=ROOT, env=child_env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = child.communicate(timeout=TIMEOUT_S)
    except BaseException:
        # SIGINT, not SIGKILL: it raises KeyboardInterrupt there, so the child drops the database it made.
        child.send_signal(signal.SIGINT)
        try:
            child.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.communicate()
        raise
    if child.returncode != 0:
        raise RuntimeError(f"bench/reports_bench.py failed ({child.returncode}): {err.strip()[-2000:]}")
    measurements = json.loads(out.strip().splitlines()[-1])
    method = ast.get_docstring(ast.parse(SOURCE.read_text())) or __doc__
    return Outcome([row(m) for m in measurements], {"measurements": measurements}, method)


def _first(d: dict, *names: str):
    for name in names:
        if d.get(name) is not None:
            return d[name]
    return None


def row(m: dict) -> Row:
    """A row from one reports_bench measurement (its `query`, `database`, `median_ms`, `target_ms` keys)."""
    name = str(_first(m, "query", "name", "label", "command", "scenario") or "report")
    backend = _first(m, "database", "backend", "db")
    figure = " (median)" if m.get("median_ms") is not None else ""
    title = f"{TITLE} · {name}{figure}"
    if backend:
        title += f", {LABELS.get(str(backend), backend)}"
    target = _first(m, "target_ms")
    if target is None:
        target = next((ms for word, ms in TARGETS_MS.items() if word in name.lower()), None)
    checks = (below(float(target)),) if target is not None else ()
    if m.get("error"):
        return skipped(title, str(m["error"]), "ms", checks)
    ours = _first(m, "readrate", "readrate_ms", "median_ms", "p50_ms", "ms")
    theirs = _first(m, "baseline", "baseline_ms", "baseline_median_ms")
    result = Row(title, _number(ours), _number(theirs), str(m.get("unit", "ms")),
                 str(m.get("baseline_label", "")), checks, str(m.get("note", "")))
    if m.get("ok") is False or m.get("invalid"):
        result.invalid = True
    return result


def _number(value) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None
