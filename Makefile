# labwork: `make run` starts it with a sample project; `make test` runs every test.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
PORT ?=

.PHONY: run test setup bench clean lock shell labextension

setup:
	@bash scripts/setup.sh run

run: setup
	@$(PY) -m labwork serve --sample examples/iris $(if $(PORT),--port $(PORT))

# A shell with .venv/bin first on PATH, where the `labwork` command lives.
shell: setup
	@echo "labwork: a shell with $(VENV)/bin on PATH ('exit' to leave)"
	@PATH="$(abspath $(VENV))/bin:$$PATH" VIRTUAL_ENV="$(abspath $(VENV))" $${SHELL:-bash} -i

# Refresh constraints.txt on purpose (newest versions pyproject.toml allows), then run `make test`.
lock:
	@bash scripts/lock.sh

test:
	@bash scripts/setup.sh test
	@mkdir -p test-artifacts
	@$(PY) -m pytest $(PYTEST_ARGS)

bench: setup
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) test-artifacts .pytest_cache

# Rebuild the prebuilt JupyterLab extension (labwork/lab/labextensions/labwork-lab) from
# labextension/ with JupyterLab's builder from npm; only here is node needed. Commit the result.
labextension: setup
	@cd labextension && npm ci --no-audit --no-fund && rm -rf lib tsconfig.tsbuildinfo ../labwork/lab/labextensions/labwork-lab \
	  && npx tsc && node node_modules/@jupyterlab/builder/lib/build-labextension.js \
	  --core-path "$$(../$(PY) -c 'import jupyterlab, pathlib; print(pathlib.Path(jupyterlab.__file__).parent / "staging")')" .
	@$(PY) -m labwork.lab.sources labextension
