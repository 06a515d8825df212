# labwork: `make run` starts it with a sample project; `make test` runs every test.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: run test setup bench clean

setup:
	@bash scripts/setup.sh run

run: setup
	@$(PY) -m labwork serve --sample examples/iris

test:
	@bash scripts/setup.sh test
	@mkdir -p test-artifacts
	@$(PY) -m pytest $(PYTEST_ARGS)

bench: setup
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) test-artifacts .pytest_cache
