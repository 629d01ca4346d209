# Two commands: `make demo` and `make test`. Both build .venv from the pinned constraints first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
DEMO_DIR ?= demo
DEMO_CUSTOMERS ?= 20000
DEMO_PORT ?= 3000
STAMP := $(VENV)/.installed

.PHONY: install browser demo test lint bench bench-features bench-policy bench-decide bench-serving bench-spark bench-rchurn clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip==24.3.1"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev,spark]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/nbo simulate --customers $(DEMO_CUSTOMERS) --months 12 --seed 7 --out $(DEMO_DIR)/world
	$(BIN)/nbo features build --data $(DEMO_DIR)/world --as-of end --out $(DEMO_DIR)/snapshot.parquet
	$(BIN)/nbo train churn --data $(DEMO_DIR)/world --as-of latest
	$(BIN)/nbo train uplift --data $(DEMO_DIR)/world --trials 4
	$(BIN)/nbo package --data $(DEMO_DIR)/world
	$(BIN)/nbo decide --data $(DEMO_DIR)/world --as-of end --out $(DEMO_DIR)/decisions.parquet
	$(BIN)/nbo report --data $(DEMO_DIR)/world --as-of end --decisions $(DEMO_DIR)/decisions.parquet --out $(DEMO_DIR)/report.html
	$(BIN)/nbo publish --data $(DEMO_DIR)/world --as-of end --to $(DEMO_DIR)/snapshot.sqlite
	NBO_SNAPSHOT=$(DEMO_DIR)/snapshot.sqlite NBO_DECISION_LOG=$(DEMO_DIR)/decision_log.sqlite $(BIN)/nbo serve --port $(DEMO_PORT)

lint: $(STAMP)
	$(BIN)/ruff check .

# The report test renders HTML in Debian's headless Chromium; without root or apt it skips with that reason.
browser:
	@command -v chromium >/dev/null 2>&1 || (apt-get install -y -qq chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium) >/dev/null 2>&1) || echo "chromium could not be installed: the browser test will skip"

test: $(STAMP) browser
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n 2 --timeout 900

bench: bench-features bench-policy bench-decide bench-serving bench-spark bench-rchurn

bench-features: $(STAMP)
	$(BIN)/python benchmarks/bench_features.py

bench-policy: $(STAMP)
	$(BIN)/python benchmarks/bench_policy.py

bench-decide: $(STAMP)
	$(BIN)/python benchmarks/bench_decide.py

bench-serving: $(STAMP)
	$(BIN)/python benchmarks/bench_serving.py

bench-spark: $(STAMP)
	$(BIN)/python benchmarks/bench_spark.py

bench-rchurn: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/bench_rchurn_bound.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache
