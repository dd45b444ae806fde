# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test test-postgres lint format bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

run: $(VENV)/.installed
	$(BIN)/python manage.py migrate --no-input
	$(BIN)/python manage.py serve --host $(HOST) --port $(PORT) --open

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The queue, the worker, the endpoint, the fetch actions and the datastore again on PostgreSQL
# (less the tests marked independent_of_database_url: they would run exactly as in `make test`).
POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/postgres
test-postgres: $(VENV)/.installed-test
	DATABASE_URL=$(POSTGRES_URL) $(BIN)/python -m pytest tests/connector/test_queue.py \
		tests/connector/worker tests/connector/aci tests/connector/fetch \
		tests/connector/test_schedules.py tests/connector/test_audit_queue.py tests/connector/ops \
		tests/connector/test_ingest.py tests/connector/test_migrations.py tests/connector/test_prepared.py \
		tests/connector/test_group_commit.py \
		-m "not independent_of_database_url" $(PYTEST_ARGS)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy connector dashboard

format: $(VENV)/.installed-test
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(VENV)/.installed-test
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) var
