# Two commands do all set-up: `make run` and `make test`. Both create .venv when needed.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-pg lint typecheck unit format bench crash clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11+ is required")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)  ## Run the bot with the settings in .env / the environment
	$(BIN)/python -m bot

test: lint typecheck unit  ## Lint, type-check and run the whole test suite

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy bot storage tests bench

unit: $(STAMP)
	$(BIN)/python -m pytest

# A running PostgreSQL server is needed; `make test` with TEST_DATABASE_URL set runs these too.
test-pg: $(STAMP)  ## Only the tests marked postgres, on SQLite and on PostgreSQL
	TEST_DATABASE_URL="$${TEST_DATABASE_URL:-postgresql+asyncpg://postgres@127.0.0.1:5432/test}" \
		$(BIN)/python -m pytest -m postgres

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)  ## Print speed and memory figures
	$(BIN)/python -m bench.invoice_path
	$(BIN)/python -m bench.callbacks
	$(BIN)/python -m bench.bot_api_calls
	$(BIN)/python -m bench.cluster

crash: $(STAMP)  ## Kill the bot (SIGKILL) 100 times mid-work; print figures and invariants
	$(BIN)/python -m bench.crash --kills $(or $(KILLS),100) --seed $(or $(SEED),1)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
