# The two commands of the quick start: `make demo` (set up + run the demo) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
TORCH_CPU_VERSION ?= 2.13.0

.PHONY: setup demo test test-all lint bench dev clean

setup: $(BIN)/promoloop dbt_project/target/manifest.json

$(BIN)/promoloop: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# No GPU: take the CPU torch wheel first so the open torch range is already satisfied (no multi-GB CUDA build).
	if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then \
	  echo "GPU found: installing the default (CUDA) torch"; \
	else \
	  $(BIN)/pip install -q "torch==$(TORCH_CPU_VERSION)"; \
	fi
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

dbt_project/target/manifest.json: $(BIN)/promoloop $(shell find dbt_project/models dbt_project/macros dbt_project/tests -type f 2>/dev/null) dbt_project/dbt_project.yml
	$(BIN)/promoloop parse

demo: setup
	$(BIN)/promoloop demo

# DuckDB's bindings report "leaked" objects on stderr at interpreter exit (harmless); filter them so the
# test summary stays the last line. pipefail keeps pytest's exit status.
test: setup
	bash -o pipefail -c '$(BIN)/pytest -q 2>&1 | grep -v -E "^nanobind: |^ - leaked |^ - \.\.\. skipped remainder|refleaks.html"'

test-all: setup
	$(BIN)/pytest -q -m "" 

lint: setup
	$(BIN)/ruff check .

bench: setup
	$(BIN)/promoloop bench

dev: setup
	DAGSTER_HOME=$${PROMO_HOME:-$(CURDIR)/.promoloop}/dagster $(BIN)/dagster dev -w workspace.yaml

clean:
	rm -rf .promoloop dbt_project/target dbt_project/logs
