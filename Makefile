# Quick start: `make demo` (integral pre-training demo) and `make test`.
# Both set up the environment first (`make env`, seconds once it is cached).
PYTHON_VENV := .venv/bin/python
PYTEST_ARGS ?=

.PHONY: env demo test test-fast clean

env:
	@bash tools/setup_env.sh

demo: env
	@$(PYTHON_VENV) tools/run_demo.py

test: env
	@$(PYTHON_VENV) -m pytest tests $(PYTEST_ARGS)

# Skips the end-to-end runs marked slow.
test-fast: env
	@$(PYTHON_VENV) -m pytest tests -m "not slow" $(PYTEST_ARGS)

clean:
	rm -rf work_dirs .pytest_cache
