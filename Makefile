# supET Ledger: set-up is idempotent; each target installs what it needs first.
#   make demo   - run the main job (`supet demo`) on the embedded chain + SQLite
#   make test   - lint, typecheck, then the whole test suite (what CI runs: .ci/run calls `make test`)
#   make lock   - refresh requirements.lock after editing dependencies in pyproject.toml
#   make hooks  - install the git pre-commit hook (.pre-commit-config.yaml: the same lint and typecheck)

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
# every package of the distribution (pyproject's packages.find include), lowest layer first
PACKAGES := supet_base device_attestation analytics finance contracts auditor simulation ledger_service supet

.PHONY: demo test setup lint typecheck hooks lock lock-upgrade bench clean

setup: $(VENV)/.installed node_modules/.installed

# Python: exactly requirements.lock (runtime + dev pins, sha256-checked), then this package itself without
# dependencies, built with the locked setuptools. uv installs the lock (its own pin, hash-checked, comes
# first through plain pip): about 10 s where pip took about 130 s on 2 cores, most of `make test` on a
# fresh clone. `uv pip sync` also removes anything the lock does not name.
$(VENV)/.locked: requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	sed -n '/^uv==/,/^[^ ]/{/^uv==/p;/^    /p}' requirements.lock > $(VENV)/uv-requirement.txt
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r $(VENV)/uv-requirement.txt
	$(BIN)/uv pip sync --quiet --python $(BIN)/python --require-hashes requirements.lock
	@touch $@

$(VENV)/.installed: $(VENV)/.locked pyproject.toml
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
	$(BIN)/python scripts/check_venv.py
	@touch $@

# `make lock` keeps every pin that still satisfies pyproject.toml; `make lock-upgrade` moves all pins to
# the newest releases pyproject.toml allows. Both resolve for CPython 3.11 on x86_64 Linux from PyPI.
LOCK_COMPILE = $(BIN)/uv pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 \
	--python-platform x86_64-unknown-linux-gnu --custom-compile-command "make lock" --quiet -o requirements.lock

lock: $(VENV)/.locked
	$(LOCK_COMPILE)

lock-upgrade: $(VENV)/.locked
	$(LOCK_COMPILE) --upgrade

hooks: setup
	$(BIN)/pre-commit install

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

demo: setup
	$(BIN)/supet demo

# The suite runs with bytecode writing on, whatever the environment says: with PYTHONDONTWRITEBYTECODE
# set (it is on the team's shared machine) and a venv from uv (which installs no .pyc), every Python
# process the suite starts (the xdist workers, each `supet serve` and CLI subprocess, the signature
# workers) compiled web3, fastapi, sqlalchemy... from source again: about 6 s of CPU more for each
# service subprocess and 14 s for a pytest process. The .pyc files go to __pycache__ (git-ignored) and .venv.
# One xdist worker more than there are cores: much of the suite waits on subprocesses, anvil and
# PostgreSQL (on 2 cores, one tree with warm .pyc: 587 s of pytest with 3 workers; fresh clones took
# 633 s with 2 and 655 to 677 s with 3, so the gain is within the run-to-run spread).
TEST_WORKERS ?= $(shell echo $$(( $$(nproc) + 1 )))
test: lint typecheck
	@scripts/test-services
	env -u PYTHONDONTWRITEBYTECODE \
	  $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=25

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy $(PACKAGES)

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache
