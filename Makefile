# Two commands matter on a fresh machine: `make demo` and `make test`. Everything else is a building block.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
LOCAL_AWS_PORT ?= 4566
AIRFLOW_PORT ?= 8080
DB ?= sqlite
# the local stack's timing: instant, or aws (SageMaker's and CloudWatch's, times LOCAL_SAGEMAKER_TIME_SCALE)
PROFILE ?= instant

export AIRFLOW_HOME ?= $(CURDIR)/.airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT := 300
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: install demo test test-fast bench local-stack airflow lint format clean

install: $(VENV)/.compiled

# Pinned and frozen: requirements.txt is the whole resolved set, so nothing is resolved at install time.
$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check uv==0.13.9
	$(VENV)/bin/uv pip install --quiet --python $(PY) -r requirements.txt
	$(VENV)/bin/uv pip install --quiet --python $(PY) --no-deps -e .
	touch $@

# Bytecode for every installed module, once. Where PYTHONDONTWRITEBYTECODE is set (this machine
# sets it) no import writes a .pyc, so every process compiled Airflow, botocore, pandas and scipy
# from source again: a quarter of the CPU of a demo run (py-spy, 2026-12-06). Imports still read
# .pyc files that exist, and a module edited later is recompiled in memory as before.
$(VENV)/.compiled: $(VENV)/.installed
	$(PY) -m compileall -q -j 0 $(VENV)/lib
	touch $@

demo: install
	LOCAL_SAGEMAKER_PROFILE=$(PROFILE) $(PY) -m canary_airflow.dev.demo

test: install
	$(PY) -m ruff format --check .
	$(PY) -m ruff check .
	# four workers on two cores: the e2e files spend much of their time waiting on a scheduler
	# or a gate look, so extra workers fill idle CPU. Measured with the slowest files first,
	# 2026-12-05: pytest 585 s and 598 s with four workers, 620 s with three (runs vary by
	# about 30 s); 2026-12-06, with the venv's bytecode compiled and botocore's data shared:
	# 460 s and 467 s; later that day, DAG files parsing without the numeric stack: 451 s.
	# Whole files in collection order (tests/conftest.py, SLOWEST_FIRST).
	$(PY) -m pytest -q -n 4 --dist loadfile --no-loadscope-reorder --durations=15

# the unit tier only: no sockets, no subprocesses, well under a minute
test-fast: install
	$(PY) -m pytest -q -m unit

bench: install
	$(PY) -m bench

local-stack: install
	$(PY) -m local_sagemaker --host 127.0.0.1 --port $(LOCAL_AWS_PORT) --profile $(PROFILE)

airflow: install
	LOCAL_SAGEMAKER_PROFILE=$(PROFILE) $(PY) -m canary_airflow.dev.standalone --port $(AIRFLOW_PORT) --aws-port $(LOCAL_AWS_PORT) --db $(DB)

lint:
	$(PY) -m ruff check .

format:
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

clean:
	rm -rf $(VENV) .airflow reports .pytest_cache .ruff_cache
