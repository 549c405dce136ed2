# The two commands of the README: `make demo` and `make test`. Both set up .venv first.
PY := .venv/bin/python

.PHONY: setup demo test test-core lint
setup:
	@bash scripts/setup.sh

demo: setup
	$(PY) -m autellix_ray.bench.demo

test: setup
	$(PY) -m pytest

test-core: setup
	$(PY) -m pytest tests/unit

lint: setup
	$(PY) -m ruff check autellix_ray kernels tests
