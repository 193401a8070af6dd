"""The tutorial notebooks: each ``notebooks/NN_name.py`` (jupytext percent format, what people
edit) has its ``.ipynb`` committed with the same cells and the outputs of a full run, and each runs
top to bottom in a fresh kernel in its small setting (``SVG_PYRO_NB_SMALL=1``)."""

import importlib.util
import re
import shutil
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


def _cell_outputs(nb, marker: str) -> list:
    """The outputs of the one code cell whose source holds ``marker``."""
    (cell,) = [c for c in nb.cells if c.cell_type == "code" and marker in c.source]
    return cell.outputs


def _cell_text(nb, marker: str) -> str:
    return "".join(o.get("text", "") for o in _cell_outputs(nb, marker) if "text" in o)


def _has(outputs, mime: str) -> bool:
    return any(mime in o.get("data", {}) for o in outputs)


GRAPHVIZ = bool(shutil.which("dot") and importlib.util.find_spec("graphviz"))
# a line of training progress as notebook 01 prints it: "step   100  loss 0.1370  recon ..."
PROGRESS = re.compile(r"^step +\d+ +loss [0-9.]+ +recon [0-9.]+ +kl ", flags=re.M)
# words of the project's own history, not a user's (as in tests/test_docs.py)
INTERNAL = {
    "an issue number": r"\bissues? \d+",
    "a sitting": r"\bsittings?\b",
    "a run folder of the project": r"runs/(recipe|snap)",
    "+- for ±": r"\+-",
}


def _check_outputs(name: str, nb, full: bool) -> None:
    """What each notebook's outputs must show, in either setting."""
    long = [line for line in _text(nb).splitlines() if len(line) > 200]
    assert not long, f"{name} prints lines of {[len(x) for x in long]} characters: show Markdown"
    if name in ("01_quickstart", "02_posterior_analysis"):  # the model card, rendered
        shown = [o["data"]["text/markdown"] for o in _outputs(nb) if _has([o], "text/markdown")]
        assert any(len(md) > 200 for md in shown), f"{name} does not show the model card"
    if name == "01_quickstart":
        training = _cell_text(nb, "trainer.fit(")
        assert "already trained" not in training
        assert len(PROGRESS.findall(training)) >= (15 if full else 2), (
            f"the training cell shows no training:\n{training}"
        )
        graph = _cell_outputs(nb, "render_model")
        if full or GRAPHVIZ:
            assert _has(graph, "image/svg+xml"), "the model's graph is not drawn"
        else:
            assert "Graphviz" in _cell_text(nb, "render_model")


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
    _check_outputs(name, nb, full=True)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_top_to_bottom_in_its_small_setting(name, tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the kernel's: small nets, one thread is faster
    nb = RUNNER.read(NOTEBOOKS / f"{name}.py")
    RUNNER.execute(nb, tmp_path, small=True, timeout=600)  # raises on the first failing cell
    assert not [o for o in _outputs(nb) if o.output_type == "error"]
    assert "small setting" in _text(nb)
    assert _images(nb), f"{name} displayed no picture"
    _check_outputs(name, nb, full=False)


@pytest.mark.parametrize("name", NAMES)
def test_notebooks_speak_a_users_words(name):
    text = (NOTEBOOKS / f"{name}.py").read_text()
    stored = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    for where, words in [(f"{name}.py", text), (f"the outputs of {name}.ipynb", _all_text(stored))]:
        found = {what: m[0] for what, pat in INTERNAL.items() if (m := re.search(pat, words))}
        assert not found, f"{where} has {found}"


def _all_text(nb) -> str:
    """Every text an output shows: streams, Markdown, plain text (not pictures)."""
    parts = []
    for o in _outputs(nb):
        parts.append(o.get("text", ""))
        data = o.get("data", {})
        parts += [data.get("text/markdown", ""), data.get("text/plain", "")]
    return "\n".join(parts)


def _forest_cell():
    nb = RUNNER.read(NOTEBOOKS / "02_posterior_analysis.py")
    (cell,) = [c for c in nb.cells if c.cell_type == "code" and "az.plot_forest(" in c.source]
    return cell.source


def test_notebook_02_forest_plot_labels_its_rows_with_time_steps():
    """The forest plot's rows are the time steps t of one latent dimension: run the notebook's
    cell on a small InferenceData of the same layout and read its y labels."""
    import arviz as az
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rng = np.random.default_rng(0)
    layout = dict(dims={"z": ["sequence", "time", "latent"]}, coords={"time": np.arange(1, 7)})
    idata = az.from_dict(posterior={"z": rng.normal(size=(2, 5, 2, 6, 3))}, **layout)
    prior_only = az.from_dict(posterior={"z": rng.normal(size=(2, 5, 2, 6, 3))}, **layout)
    scope = dict(az=az, plt=plt, idata=idata, prior_only=prior_only, busy=1, T=7)
    try:
        exec(_forest_cell(), scope)
        ax = scope["axes"][0]
        labels = [t.get_text() for t in ax.get_yticklabels()]
        assert sorted(labels) == sorted(f"t = {t}" for t in range(1, 7)), labels
        assert "time" in ax.get_ylabel()
    finally:
        plt.close("all")
