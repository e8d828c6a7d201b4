# Every target sets up .venv itself, so `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

# The Dagster extra, for its tests only (make demo does not need it).
DAGSTER := $(VENV)/.dagster-installed
$(DAGSTER): $(STAMP)
	$(BIN)/python -m pip install -q -e ".[dev,dagster]"
	touch $(DAGSTER)

# A real Singer target for the tap's end-to-end test, in its own virtualenv (old pins).
TARGET_JSONL := $(VENV)/targets/target-jsonl/bin/target-jsonl
$(TARGET_JSONL): $(STAMP)
	$(PYTHON) -m venv $(VENV)/targets/target-jsonl
	$(VENV)/targets/target-jsonl/bin/python -m pip install -q target-jsonl

# Meltano 4, in its own virtualenv, to run the README's Meltano project (tests/test_meltano.py).
MELTANO := $(VENV)/targets/meltano/bin/meltano
$(MELTANO):
	$(PYTHON) -m venv $(VENV)/targets/meltano
	$(VENV)/targets/meltano/bin/python -m pip install -q "meltano>=4,<5"

# Airflow 2, in its own virtualenv, to run the manual's DAG with `airflow dags test` and SQLite
# metadata (tests/test_airflow.py): 40-90 s and 290 MB. Airflow's own constraint files are not on
# PyPI; its requirements pin their ranges, which resolved to a working set here.
AIRFLOW := $(VENV)/targets/airflow/bin/airflow
$(AIRFLOW):
	$(PYTHON) -m venv $(VENV)/targets/airflow
	$(VENV)/targets/airflow/bin/python -m pip install -q "apache-airflow>=2.11,<3"

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/listrak-sync demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy src

test: lint $(TARGET_JSONL) $(MELTANO) $(AIRFLOW) $(DAGSTER)
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py
	$(BIN)/python benchmarks/rest.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache listrak_sync.duckdb demo.duckdb
