"""The tutorial notebooks: each ``notebooks/NN_name.py`` (jupytext percent format, what people
edit) has its ``.ipynb`` committed with the same cells and the outputs of a full run, and each runs
top to bottom in a fresh kernel in its small setting (``SVG_PYRO_NB_SMALL=1``)."""

import importlib.util
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
NAMES = ["01_quickstart", "02_posterior_analysis", "03_extending_priors"]


def _runner():
    spec = importlib.util.spec_from_file_location("nb_execute", NOTEBOOKS / "execute.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RUNNER = _runner()


def _outputs(nb) -> list:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]


def _text(nb) -> str:
    return "".join(o.get("text", "") for o in _outputs(nb) if o.output_type == "stream")


def _images(nb) -> list:
    return [o for o in _outputs(nb) if {"image/png", "image/gif"} & set(o.get("data", {}))]


def test_every_notebook_is_a_jupytext_pair():
    assert [p.stem for p in RUNNER.sources()] == NAMES
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_has_the_cells_of_its_script_and_a_full_run(name):
    script = RUNNER.read(NOTEBOOKS / f"{name}.py")
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nbformat.validate(nb)
    cells = [(c.cell_type, c.source) for c in nb.cells]
    assert cells == [(c.cell_type, c.source) for c in script.cells], (
        f"notebooks/{name}.ipynb is not the notebook of {name}.py: "
        f"run `python notebooks/execute.py {name[:2]}` (or `make notebooks`)"
    )
    assert [c.id for c in nb.cells] == [c.id for c in script.cells]
    assert "SVG_PYRO_NB_SMALL" in nb.cells[1].source  # the small-setting switch comes first
    # executed top to bottom in one kernel, in the full setting, without an error
    counts = [c.execution_count for c in nb.cells if c.cell_type == "code"]
    assert counts == list(range(1, len(counts) + 1)), f"{name}: not one run top to bottom"
    assert not [o for o in _outputs(nb) if o.output_type == "error"]
    assert "full setting" in _text(nb) and "small setting" not in _text(nb)
    assert _images(nb), f"{name} shows no picture"


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_top_to_bottom_in_its_small_setting(name, tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the kernel's: small nets, one thread is faster
    nb = RUNNER.read(NOTEBOOKS / f"{name}.py")
    RUNNER.execute(nb, tmp_path, small=True, timeout=600)  # raises on the first failing cell
    assert not [o for o in _outputs(nb) if o.output_type == "error"]
    assert "small setting" in _text(nb)
    assert _images(nb), f"{name} displayed no picture"
