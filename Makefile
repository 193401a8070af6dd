# Two entry points: `make demo` and `make test`. Each creates or reuses .venv itself.
# `make docs` builds the documentation site; `make notebooks` re-runs the tutorial notebooks.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The torch/torchvision pair this project is developed and tested with (a matched pair);
# setup.cfg only declares loose lower bounds.
TORCH_PKGS ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.installed
DOCS_STAMP := $(VENV)/.installed-docs

.PHONY: install demo test lint format clean wheel-check docs notebooks

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

$(DOCS_STAMP): $(STAMP)
	$(PY) -m pip install -q -e ".[test,docs]"
	touch $(DOCS_STAMP)

# the site, offline, into docs/_build/html; any warning (a missing public name included) fails
docs: $(DOCS_STAMP)
	rm -rf docs/_build
	$(PY) -m sphinx -b html -W --keep-going -q docs docs/_build/html
	@echo "docs/_build/html/index.html"

# every notebooks/NN_name.ipynb from its .py, executed in the full setting (several minutes)
notebooks: $(STAMP)
	$(PY) notebooks/execute.py

clean:
	rm -rf $(VENV) runs build *.egg-info docs/_build docs/notebooks
