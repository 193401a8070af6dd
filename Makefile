# Two entry points: `make demo` and `make test`. Each creates or reuses .venv itself.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The torch/torchvision pair this project is developed and tested with (a matched pair);
# setup.cfg only declares loose lower bounds.
TORCH_PKGS ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.installed

.PHONY: install demo test lint format clean wheel-check

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH_PKGS)
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/svg-pyro demo --out runs/demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: lint
	$(VENV)/bin/pytest -q
	bash .ci/wheel-check $(PY)

# the CLI as a user gets it: the built wheel installed in a fresh venv, run outside the repository
wheel-check: $(STAMP)
	bash .ci/wheel-check $(PY)

clean:
	rm -rf $(VENV) runs build *.egg-info
