# Two commands: `make demo` and `make test`. Both build .venv from the pinned constraints first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
DEMO_DIR ?= demo
DEMO_CUSTOMERS ?= 20000
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench bench-features clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip==24.3.1"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/nbo simulate --customers $(DEMO_CUSTOMERS) --months 12 --seed 7 --out $(DEMO_DIR)/world
	$(BIN)/nbo features build --data $(DEMO_DIR)/world --as-of end --out $(DEMO_DIR)/snapshot.parquet
	@echo "Demo done: world in $(DEMO_DIR)/world, snapshot in $(DEMO_DIR)/snapshot.parquet"

lint: $(STAMP)
	$(BIN)/ruff check .

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n 2 --timeout 900

bench: bench-features

bench-features: $(STAMP)
	$(BIN)/python benchmarks/bench_features.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache
