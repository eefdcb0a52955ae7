# Virtuna: the front door. `make help` lists the targets.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.DEFAULT_GOAL := help
.PHONY: help setup demo test fuzz lint format lock clean notebooks serve lab nbval screenshots \
	airflow-check airflow-lock

help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-13s\033[0m %s\n", $$1, $$2}'

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name virtuna --display-name "Python (virtuna)" >/dev/null
	@touch $(STAMP)

setup: $(STAMP) ## Create .venv and install the pinned dependencies

demo: $(STAMP) ## Run the main job on the embedded DuckDB store (data/virtuna.duckdb)
	$(BIN)/virtuna demo

serve: $(STAMP) ## Run the HTTP service on 127.0.0.1:8000 (webhooks, analyze, outcomes, admin)
	$(BIN)/virtuna serve

notebooks: $(STAMP) ## Run every job and report notebook once, as of the store's newest data; list failures
	$(BIN)/virtuna jobs run-all

lab: $(STAMP) ## JupyterLab on 127.0.0.1:8888 with the `virtuna` kernel (reads the project's store)
	$(BIN)/jupyter lab --ip 127.0.0.1 --no-browser --notebook-dir . \
		$$([ "$$(id -u)" = 0 ] && echo --allow-root)

nbval: $(STAMP) ## Execute every notebook as committed with nbval (--nbval-lax) on the project's store
	$(BIN)/python -m pytest --nbval-lax --nbval-kernel-name virtuna -p no:cacheprovider -q notebooks/

test: $(STAMP) lint ## Lint, then run the test suite with coverage (fails below 80 %)
	$(BIN)/python -m pytest --cov=virtuna --cov-report=term --cov-fail-under=80 $(PYTEST_ARGS)

fuzz: $(STAMP) ## Schemathesis over every route: 200 examples per operation, user and admin keys
	FUZZ_EXAMPLES=200 $(BIN)/python -m pytest tests/service/test_schema_fuzz.py -q

lint: $(STAMP) ## ruff check + format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP) ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

lock: ## Re-resolve requirements.lock from pyproject.toml in a scratch venv
	rm -rf .lockenv && $(PYTHON) -m venv .lockenv
	.lockenv/bin/python -m pip install --quiet -e '.[dev]'
	(echo '# Every package pinned, resolved with Python 3.11 on Linux. Regenerate with `make lock`.'; \
	 .lockenv/bin/python -m pip freeze --exclude-editable | grep -v '^virtuna') > requirements.lock
	rm -rf .lockenv

AIRFLOW_VENV  := .airflow-venv
AIRFLOW_STAMP := $(AIRFLOW_VENV)/.installed-stamp

$(AIRFLOW_STAMP): requirements-airflow.lock
	@test -x $(AIRFLOW_VENV)/bin/python || $(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/python -m pip install --quiet -r requirements-airflow.lock
	@touch $(AIRFLOW_STAMP)

airflow-check: $(STAMP) $(AIRFLOW_STAMP) ## Airflow in .airflow-venv: load the generated DAGs, run one job (not in `make test`)
	bash .ci/airflow-check

airflow-lock: ## Re-resolve requirements-airflow.lock (Airflow + its standard provider) in a scratch venv
	rm -rf .airflow-lockenv && $(PYTHON) -m venv .airflow-lockenv
	.airflow-lockenv/bin/python -m pip install --quiet apache-airflow apache-airflow-providers-standard
	(echo '# Apache Airflow and its standard provider for `make airflow-check`, every package pinned, resolved'; \
	 echo "# with Python 3.11 on Linux into .airflow-venv, apart from the project's .venv. Regenerate with"; \
	 echo '# `make airflow-lock`.'; \
	 .airflow-lockenv/bin/python -m pip freeze) > requirements-airflow.lock
	rm -rf .airflow-lockenv

clean: ## Remove the venvs, the store and generated reports
	rm -rf $(VENV) .airflow-venv data/virtuna.duckdb data/virtuna.duckdb.wal data/virtuna-models \
		data/calibration-baseline.json reports/*/ reports/index.html .pytest_cache .coverage
