# Two commands do everything on a fresh machine:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST := $(BIN)/python -m pytest

.PHONY: demo test check faults bench bench-quick clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)          ## set up, then run synthetic traffic through the whole pipeline
	$(BIN)/readrate demo

test: $(STAMP)          ## set up, then run every test: unit, integration and faults (starts servers if needed)
	$(PYTEST)

check: $(STAMP)         ## the fast lane while you work: tests/unit, well under a minute
	$(PYTEST) tests/unit -q

faults: $(STAMP)        ## only the crash, outage and bad-input suite
	$(PYTEST) tests/faults

bench: $(STAMP)         ## the full benchmark suite; writes bench/RESULTS.md
	$(BIN)/python -m bench

bench-quick: $(STAMP)   ## every benchmark scenario, small (about a minute)
	$(BIN)/python -m bench --quick

clean:
	rm -rf $(VENV) *.egg-info readrate-demo.db* readrate-demo-workers.log
