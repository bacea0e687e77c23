# `make demo` runs the main job on the embedded defaults (SQLite + the local outbox);
# `make test` runs the tests. Both create their own virtual environment in .venv.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test serve clean bench

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

# Render issue 644, add a demo reader, send the issue to the outbox (no mail leaves the machine).
demo: $(STAMP)
	$(BIN)/mailer db upgrade
	$(BIN)/mailer subscribers add demo-reader@example.org --confirmed
	$(BIN)/mailer send --issue 644 --yes

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/render.py
	$(BIN)/python benchmarks/send.py
	$(BIN)/python benchmarks/import.py
	$(BIN)/python benchmarks/stats.py

serve: $(STAMP)
	$(BIN)/mailer serve

clean:
	rm -rf $(VENV) outbox out build *.egg-info
