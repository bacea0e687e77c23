# `make demo` runs the main job on the embedded defaults (SQLite + the local outbox);
# `make test` runs the fast tests, `make test-all` every test (what .ci/run runs). All create their
# own virtual environment in .venv.
#
# Any Python 3.11 or newer will do: the newest of python3.13, python3.12, python3.11 and python3
# that really runs (a pyenv shim may exist without its version) and is new enough. Pass
# PYTHON=/path/to/python to choose. With none, `uv` (when installed) provides one.
PYTHON_CANDIDATES := python3.13 python3.12 python3.11 python3
PYTHON_IS_NEW_ENOUGH := -c 'import sys; sys.exit(sys.version_info < (3, 11))'
ifeq ($(origin PYTHON),undefined)
PYTHON := $(shell for p in $(PYTHON_CANDIDATES); do \
	$$p $(PYTHON_IS_NEW_ENOUGH) >/dev/null 2>&1 && { command -v $$p; break; }; done)
endif
UV     := $(shell command -v uv 2>/dev/null)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

ifneq ($(PYTHON),)
MAKE_VENV = { $(PYTHON) $(PYTHON_IS_NEW_ENOUGH) 2>/dev/null || { echo "make: $(PYTHON) is not Python 3.11 or newer; install python3.11, 3.12 or 3.13, or pass PYTHON=/path/to/python3.11" >&2; exit 1; }; } && { $(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); echo "make: $(PYTHON) cannot create a virtual environment; install its venv module (Debian: apt install python3-venv)" >&2; exit 1; }; }
else ifneq ($(UV),)
MAKE_VENV = $(UV) venv --seed --python '>=3.11' $(VENV)
else
MAKE_VENV = { echo "make: needs Python 3.11 or newer and found none: install python3.11, 3.12 or 3.13 (Debian: apt install python3 python3-venv; others: https://www.python.org/downloads/), or pass PYTHON=/path/to/python" >&2; exit 1; }
endif

.PHONY: demo test test-all serve clean bench

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(MAKE_VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

# Render issue 644, add a demo reader, send the issue to the outbox (no mail leaves the machine).
# A first run writes .env with a random secret key: nothing signs links without a real one.
demo: $(STAMP)
	@test -f .env || $(BIN)/mailer init --yes
	$(BIN)/mailer db upgrade
	$(BIN)/mailer subscribers add demo-reader@example.org --confirmed
	$(BIN)/mailer send --issue 644 --yes
	@echo "mailer is installed in $(BIN)/: run '. $(BIN)/activate' to type mailer commands in this shell"

# The fast set leaves out what needs minutes or a service: tests marked slow (whole sends through
# SES peers, quickstart, packaging, timing), browser and PostgreSQL. Both spread the tests over
# every core; --dist loadfile keeps a file's tests, which share its fixtures and files, on one.
PYTEST_PARALLEL := -n auto --dist loadfile
FAST_TESTS      := -m "not slow and not browser and not postgres"

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest $(PYTEST_PARALLEL) $(FAST_TESTS)

test-all: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest $(PYTEST_PARALLEL) --durations=30

bench: $(STAMP)
	$(BIN)/python benchmarks/render.py
	$(BIN)/python benchmarks/send.py
	$(BIN)/python benchmarks/import.py
	$(BIN)/python benchmarks/stats.py
	$(BIN)/python benchmarks/startup.py

serve: $(STAMP)
	$(BIN)/mailer serve

# Keeps .env: it holds the secret key that signed the links in mail already sent.
clean:
	rm -rf $(VENV) outbox out build *.egg-info
