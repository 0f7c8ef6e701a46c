# The two set-up commands of the README: `make demo` and `make test`. Each creates .venv when missing.
PY := .venv/bin/python
DEMO_DIR ?= demo
DEMO_STUDIES ?= 240
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: venv demo test lint

venv: .venv/.installed

.venv/.installed: pyproject.toml
	test -x $(PY) || python3.11 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

demo: venv
	CMR_DATA_DIR=$(DEMO_DIR)/data .venv/bin/cmr synth --studies $(DEMO_STUDIES) --faults 0.03 --seed 1 --out $(DEMO_DIR)
	CMR_DATA_DIR=$(DEMO_DIR)/data .venv/bin/cmr ingest $(DEMO_DIR)/dicom --reports $(DEMO_DIR)/reports.csv

test: venv
	.venv/bin/ruff check .
	.venv/bin/python -m pytest -q

lint: venv
	.venv/bin/ruff check .
