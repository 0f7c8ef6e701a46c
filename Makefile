# The two set-up commands of the README: `make demo` and `make test`. Each creates .venv when missing.
PY := .venv/bin/python
DEMO_DIR ?= demo
DEMO_STUDIES ?= 240
DEMO_EPOCHS ?= 30
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
# The demo archive's third site is held out of training, to show external validation.
DEMO_ENV := CMR_DATA_DIR=$(DEMO_DIR)/data CMR_HOLDOUT_SITE="Lakeside University Medical Center"

.PHONY: venv demo test lint

venv: .venv/.installed

.venv/.installed: pyproject.toml
	test -x $(PY) || python3.11 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,ray]'
	touch $@

demo: venv
	test -f $(DEMO_DIR)/ground_truth.csv || \
	  $(DEMO_ENV) .venv/bin/cmr synth --studies $(DEMO_STUDIES) --faults 0.03 --seed 1 --out $(DEMO_DIR)
	$(DEMO_ENV) .venv/bin/cmr ingest $(DEMO_DIR)/dicom --reports $(DEMO_DIR)/reports.csv
	$(DEMO_ENV) .venv/bin/cmr train --epochs $(DEMO_EPOCHS)
	$(DEMO_ENV) .venv/bin/cmr index
	$(DEMO_ENV) .venv/bin/cmr search "dilated left ventricle with poor function" -k 5
	$(DEMO_ENV) .venv/bin/cmr ui

test: venv
	.venv/bin/ruff check .
	.venv/bin/python -m pytest -q

lint: venv
	.venv/bin/ruff check .
