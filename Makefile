# Two entry points, both from a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test test-floors lint bench clean

$(VENV)/.core: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.dev: $(VENV)/.core
	$(BIN)/python -m pip install -q -e ".[all,dev]"
	touch $@

demo: $(VENV)/.core
	$(BIN)/expscale demo

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest

# Every dependency at its declared lower bound (.ci/floors.py), then the suite: a floor that no longer works fails
# here, not in a user's install. uv resolves the pinned set in seconds where pip backtracks. test_langchain.py
# needs langchain-tests, whose own floors are above ours; the examples and README tests cover the adapters there.
FLOORS_VENV ?= .venv-floors
test-floors:
	rm -rf $(FLOORS_VENV)
	$(PYTHON) -m venv $(FLOORS_VENV)
	$(FLOORS_VENV)/bin/python -m pip install -q uv
	$(FLOORS_VENV)/bin/python .ci/floors.py > $(FLOORS_VENV)/floors.txt
	$(FLOORS_VENV)/bin/uv pip install -q --python $(FLOORS_VENV)/bin/python -c $(FLOORS_VENV)/floors.txt \
		-e ".[all]" "pytest>=8,<10" "pytest-asyncio>=0.23" "hypothesis>=6.100"
	$(FLOORS_VENV)/bin/python -m pytest -q -p no:cacheprovider tests --ignore=tests/test_langchain.py

bench: $(VENV)/.dev
	$(BIN)/python benchmarks/bench.py

clean:
	rm -rf $(VENV) $(FLOORS_VENV) .expscale .pytest_cache .mypy_cache .ruff_cache
