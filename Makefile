# supET Ledger: set-up is idempotent; each target installs what it needs first.
#   make demo   - run the main job (`supet demo`) on the embedded chain + SQLite
#   make test   - run the whole test suite (what CI runs)

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test setup lint typecheck bench clean

setup: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

demo: setup
	$(BIN)/supet demo

test: setup
	@scripts/test-services
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy supet contracts device_attestation ledger_service finance analytics

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache
