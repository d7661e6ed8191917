# All set-up lives here: `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test bench clean

install: $(STAMP)

# Debian's prometheus/promtool (2.42 on bookworm) back the PromQL agreement tests; without root or apt the
# install goes on and those tests skip.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	command -v promtool >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q prometheus; } || true
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[plot,test,mcp,ray,train,offline]"
	touch $(STAMP)

demo: install
	$(BIN)/opsworld eval --suite mitigation --leaderboard --seeds 1 --template online-shop

# one worker per core; a file's tests stay on one worker, so its module-scoped fixtures are built once
test: install
	$(BIN)/python -m pytest -n auto --dist loadfile

bench: install
	$(BIN)/opsworld bench

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .benchmarks out
