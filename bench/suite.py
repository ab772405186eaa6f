"""Runs the scenarios in order and turns what they measured into the table and RESULTS.md.

A scenario that fails is reported as an error row (with its traceback in the raw
JSON) and the others still run; the exit status then says the run was incomplete.
Targets not met are results, not failures.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType

from . import aggregate, archive, ceiling, cluster, emit, lag, machine, memory, reporting, scaleout, web, workload
from .harness import Outcome, Row, figure, median, skipped, table
from .resources import ROOT, Env


@dataclass
class Result:
    name: str
    title: str
    outcome: Outcome
    seconds: float
    error: str = ""


@dataclass
class Run:
    quick: bool
    started: datetime
    results: list[Result] = field(default_factory=list)
    machine: dict = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def rows(self) -> list[Row]:
        return [row for result in self.results for row in result.outcome.rows]

    @property
    def failed(self) -> list[str]:
        return [r.name for r in self.results if r.error]


SCENARIOS: list[ModuleType] = [emit, aggregate, ceiling, reporting, memory, lag, scaleout, cluster, web, archive]
NAMES = [s.NAME for s in SCENARIOS]


def run(env: Env, names: list[str], quick: bool, repeat: int = 1, log=print) -> Run:
    the_run = Run(quick=quick, started=datetime.now(timezone.utc))
    the_run.machine = machine.describe(env.redis, None if env.pg_problem else env.pg_admin_url, ROOT)
    the_run.machine["redis_where"] = env.redis_where
    started = time.perf_counter()
    chosen = [s for s in SCENARIOS if s.NAME in names]
    for i, scenario in enumerate(chosen, start=1):
        outcomes = []
        error = ""
        t0 = time.perf_counter()
        for attempt in range(1, repeat + 1):
            log(f"[{i}/{len(chosen)}] {scenario.TITLE} ({scenario.NAME})"
                + (f", run {attempt} of {repeat}" if repeat > 1 else "") + " …")
            t1 = time.perf_counter()
            try:
                outcomes.append(scenario.run(env, quick))
            except Exception as exc:
                error = traceback.format_exc()
                outcomes = [Outcome([skipped(f"{scenario.TITLE}", f"error: {type(exc).__name__}: {exc}")],
                                    {"error": error}, scenario.__doc__ or "")]
                log(f"      FAILED after {time.perf_counter() - t1:.1f} s\n{error.rstrip()}")
                break
            log(f"      done in {time.perf_counter() - t1:.1f} s")
        outcome = outcomes[0] if len(outcomes) == 1 else merge(outcomes)
        seconds = time.perf_counter() - t0
        the_run.results.append(Result(scenario.NAME, scenario.TITLE, outcome, seconds, error))
    the_run.seconds = time.perf_counter() - started
    the_run.machine["load_average_at_end"] = machine.load_average()
    return the_run


def merge(outcomes: list[Outcome]) -> Outcome:
    """One outcome from repeated runs: each figure is the median of the runs, its spread in the note."""
    rows = []
    for position, first in enumerate(outcomes[0].rows):
        same = [o.rows[position] for o in outcomes if len(o.rows) > position]
        ours = [r.readrate for r in same if r.readrate is not None]
        theirs = [r.baseline for r in same if r.baseline is not None]
        row = replace(first, readrate=median(ours) if ours else None,
                      baseline=median(theirs) if theirs else None, invalid=any(r.invalid for r in same))
        if ours:
            spread = f"median of {len(ours)} runs (readrate {figure(min(ours), first.unit)} – " \
                     f"{figure(max(ours), first.unit)})"
            notes = sorted({r.note for r in same if r.note})
            row.note = "; ".join([spread, *notes])
        rows.append(row)
    return Outcome(rows, {"runs": [o.raw for o in outcomes]}, outcomes[0].method)


def default_out(quick: bool, names: list[str]) -> Path:
    """Only a full run of every scenario may replace the committed bench/RESULTS.md."""
    here = Path(__file__).resolve().parent
    if quick:
        return here / "out" / "RESULTS-quick.md"
    if set(names) != set(NAMES):
        return here / "out" / f"RESULTS-{'-'.join(names)}.md"
    return here / "RESULTS.md"


REGENERATE = """Regenerate with `make bench` (every scenario, full size; about 10 minutes here);
`make bench-quick` and `--only` runs write to the git-ignored `bench/out/` instead."""
HOW_TO_READ = """How to read the table: each row measures readrate and its baseline in the same run, one
after the other or interleaved, on the same Redis and database. **ratio = readrate ÷ baseline**
in the row's unit: for ev/s above 1 is faster than the baseline, for µs, ms and MB below 1 is
better. The target column is issue 5's target for that figure; "met?" is computed from the
figures, never edited; "not met (check failed)" means the run's own correctness check failed
(e.g. the counters did not match the events), whatever the speed. Work timed inside the bench
process runs with what the process already held frozen out of the garbage collector
(`gc.freeze()`), as a fresh worker or page process would run it; everything else runs in real
`readrate` processes."""
NOISE = """Noise: this machine has 2 cores, shared by the bench process, Redis, PostgreSQL, the
workers and whatever else ran at the time (see the load averages below). Run-to-run differences
of 30% are common here and up to 2× when the machine is busy: compare ratios rather than
absolute figures, and use `--repeat 3` (medians) before drawing conclusions from a difference."""


# Figures behind design choices in the code, measured once while choosing; each run repeats them here.
DESIGN_MEASUREMENTS = Path(__file__).with_name("design_measurements.md")


def render(the_run: Run, argv: list[str]) -> str:
    kind = "full run"
    if the_run.quick:
        kind = "quick run (--quick: small sizes, a smoke test, not the figures to quote)"
    minutes, seconds = divmod(round(the_run.seconds), 60)
    raw = {
        "date": the_run.started.isoformat(timespec="seconds"), "quick": the_run.quick,
        "command": " ".join(["python -m bench", *argv]), "seconds": round(the_run.seconds, 1),
        "machine": the_run.machine, "workload": workload.DESCRIPTION,
        "scenarios": {r.name: {"title": r.title, "seconds": round(r.seconds, 1), "error": r.error or None,
                               "rows": [row.as_dict() for row in r.outcome.rows], "raw": r.outcome.raw}
                      for r in the_run.results},
    }
    parts = [
        "# readrate benchmark results",
        "",
        f"{kind.capitalize()} of `{raw['command']}` on {the_run.started:%Y-%m-%d %H:%M} UTC, "
        f"{minutes} min {seconds} s. {REGENERATE}",
        "",
        HOW_TO_READ,
        "",
        NOISE,
        "",
        "## Results",
        "",
        table(the_run.rows),
        "",
        "## Design measurements",
        "",
        DESIGN_MEASUREMENTS.read_text().strip(),
        "",
        "## Machine",
        "",
        machine.render(the_run.machine),
        "",
        "## Workload",
        "",
        workload.DESCRIPTION + ".",
        "",
        "## How each scenario measures",
        "",
    ]
    for result in the_run.results:
        parts += [f"### {result.title} (`--only {result.name}`, {result.seconds:.1f} s)", "",
                  _dedent(result.outcome.method), ""]
    parts += ["## Raw measurements", "", "```json", json.dumps(raw, indent=1, default=str), "```", ""]
    return "\n".join(parts)


def _dedent(doc: str) -> str:
    lines = [line.strip() for line in (doc or "").strip().splitlines()]
    return "\n".join(lines)


def write(the_run: Run, path: Path, argv: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(render(the_run, argv))
    tmp.replace(path)


def echo_err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
