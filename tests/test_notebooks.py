"""The tutorial notebooks: committed without outputs, in sync with their generator, and each
runs top to bottom in a fresh kernel in its small setting (``SVG_PYRO_NB_SMALL=1``)."""

import importlib.util
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
NAMES = ["01_quickstart.ipynb", "02_posterior_analysis.ipynb", "03_extending_priors.ipynb"]


def _generator():
    spec = importlib.util.spec_from_file_location("make_notebooks", NOTEBOOKS / "make_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_notebooks_are_committed_without_outputs_and_match_the_generator():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == NAMES
    built = _generator().build()
    assert sorted(built) == NAMES
    for name in NAMES:
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        nbformat.validate(nb)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert code and all(not c.outputs and c.execution_count is None for c in code), name
        assert [c.source for c in nb.cells] == [c.source for c in built[name].cells], (
            f"{name} is out of date: run python notebooks/make_notebooks.py"
        )
        assert "SVG_PYRO_NB_SMALL" in nb.cells[1].source  # the small-setting switch comes first


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_top_to_bottom(name, tmp_path, monkeypatch):
    monkeypatch.setenv("SVG_PYRO_NB_SMALL", "1")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "small setting" in text
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert images, f"{name} displayed no picture"
