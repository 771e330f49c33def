# handoff: `make run` sets up and starts the bot on its embedded default (SQLite, no chat
# credentials); `make test` sets up and runs the tests. Both need only Python 3.11+.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup run chat test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "handoff needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

run: setup  ## the server: Slack endpoint (when configured), health, metrics, outbox worker
	$(BIN)/handoff serve

chat: setup  ## talk to the bot in the terminal as an employee: same handlers, storage and outbox
	$(BIN)/handoff chat

test: setup  ## the test suite; also on PostgreSQL when HANDOFF_TEST_DATABASE_URL is set
	$(BIN)/python -m pytest

bench: setup  ## benchmarks; each prints its figures and targets (accuracy and redaction need ../shared/data)
	-$(BIN)/python bench/classify.py
	-$(BIN)/python bench/slack_intake.py
	-$(BIN)/python bench/teams_intake.py
	-$(BIN)/python bench/replay.py
	-$(BIN)/python bench/outbox_drain.py
	-$(BIN)/python bench/chat_holdout.py --data bench/chat_holdout_3.jsonl
	-$(BIN)/python bench/accuracy.py
	-$(BIN)/python bench/redaction.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis *.egg-info handoff.db handoff.db-*
