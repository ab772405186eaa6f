"""readrate's benchmark suite: each scenario measures readrate and its baseline side by side in one run.

`python -m bench` (or `make bench`) runs every scenario and writes bench/RESULTS.md;
`python -m bench --quick` runs them all small, as a smoke test, into bench/out/;
`--only NAME` runs one. See RESULTS.md for how each scenario measures.
"""
