"""Faults: `readrate import` SIGKILLed part-way, then run again: every line counted exactly once.

Each chunk's events travel per shard in one MULTI with that shard's progress
mark, so whatever the kill interrupted, a re-run of the same command skips what
Redis stored and sends the rest.
"""

from __future__ import annotations

import re
import subprocess
import time

from readrate.workers.db import make_engine
from helpers import (
    READRATE,
    backlog,
    env_for,
    kill_hard,
    run_cli,
    tally,
    wait_for_state,
    wait_until,
)

LINES = 200_000


def write_file(path, start_ms: int) -> list[dict[bytes, bytes]]:
    """A CSV of reads and votes; the wire fields each line must become."""
    rows, fields = ["kind,article,at,visitor,rating"], []
    for i in range(LINES):
        article, at = f"article-{i % 1_009}", start_ms + i
        if i % 3 == 0:
            voter, rating = f"voter-{i % 401}", str(1 + i % 5)
            rows.append(f"vote,{article},{at},{voter},{rating}")
            fields.append({b"k": b"vote", b"a": article.encode(), b"t": str(at).encode(), b"v": voter.encode(),
                           b"r": rating.encode()})
        else:
            rows.append(f"read,{article},{at},v-{i % 777},")
            fields.append({b"k": b"read", b"a": article.encode(), b"t": str(at).encode(),
                           b"v": f"v-{i % 777}".encode()})
    path.write_text("\n".join(rows) + "\n")
    return fields


def test_an_import_killed_part_way_and_run_again_counts_every_line_once(settings, redis, tmp_path):
    assert run_cli(settings, "db", "upgrade").returncode == 0
    path = tmp_path / "events.csv"
    expected = write_file(path, time.time_ns() // 1_000_000 - 86_400_000)

    first = subprocess.Popen([*READRATE, "import", str(path)], env=env_for(settings),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    wait_until(lambda: backlog(redis, settings) >= 30_000 or first.poll() is not None, timeout=120, interval=0.005,
               message="the first import to store some lines")
    kill_hard(first)
    assert first.returncode == -9, "the import finished before it could be killed"
    stored_before = backlog(redis, settings)
    assert 0 < stored_before < LINES

    again = run_cli(settings, "import", str(path))
    assert again.returncode == 0, again.stderr
    assert "resuming an earlier run of this import" in again.stderr
    imported = int(re.search(r"imported ([\d,]+) events", again.stderr).group(1).replace(",", ""))
    skipped = int(re.search(r"([\d,]+) events already stored by an earlier run", again.stderr)
                  .group(1).replace(",", ""))
    assert imported + skipped == LINES
    assert skipped == stored_before
    assert backlog(redis, settings) == LINES

    # A third run stores nothing: the whole file is in.
    third = run_cli(settings, "import", str(path))
    assert third.returncode == 0 and "imported 0 events" in third.stderr, third.stderr
    # --again is how a file is deliberately sent twice.
    assert backlog(redis, settings) == LINES

    assert run_cli(settings, "worker", "--burst").returncode == 0
    engine = make_engine(settings.database_url)
    try:
        wait_for_state(engine, tally(expected), timeout=60)
    finally:
        engine.dispose()
