"""Sphinx configuration of the svg-pyro documentation site: ``make docs`` builds it, offline, into
``docs/_build/html`` with warnings as errors.

Why Sphinx (with pydata-sphinx-theme and myst-nb) rather than MkDocs: the docstrings are
reStructuredText with Sphinx roles (``:func:``, ``:class:``, double-backquoted code), which
autodoc renders as they are and mkdocstrings would not; it is what Pyro, NumPyro and ArviZ use,
so the site reads like theirs; and myst-nb renders the notebooks' stored outputs and the
Markdown pages (``docs/*.md``, the ones GitHub shows too) without pandoc or a kernel.
"""

import shutil
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS / "_ext"))

import svg_pyro  # noqa: E402

project = "svg-pyro"
author = "the svg-pyro authors"
copyright = "svg-pyro authors, MIT licence"
release = version = svg_pyro.__version__

extensions = ["sphinx.ext.autodoc", "myst_nb", "public_api"]

# The notebooks are rendered with the outputs committed in notebooks/*.ipynb (a full run, written
# by `make notebooks`); the build executes nothing. They are copied here at every build.
nb_execution_mode = "off"
NOTEBOOKS = DOCS / "notebooks"
shutil.rmtree(NOTEBOOKS, ignore_errors=True)
NOTEBOOKS.mkdir()
for nb in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
    shutil.copy(nb, NOTEBOOKS / nb.name)

myst_heading_anchors = 3  # links to a page's section: PERFORMANCE.md#held-out-evaluation

# Every object is documented where it is defined; public_api checks that every name of
# svg_pyro.__all__ and of each public module's __all__ is, and that every public module is here.
autodoc_default_options = {"members": True, "ignore-module-all": True, "member-order": "bysource"}
autodoc_typehints = "signature"
autodoc_class_signature = "separated"

exclude_patterns = ["_build", "_ext", "README.md"]
html_theme = "pydata_sphinx_theme"
html_title = "svg-pyro"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_static_path: list[str] = []


def _notebook_links(app, docname, source):
    """Pages link to ``../notebooks/NN.ipynb``, which is where the file is on GitHub; on the site
    the notebook is the page ``notebooks/NN`` copied above."""
    source[0] = source[0].replace("](../notebooks/", "](notebooks/")


def setup(app):
    app.connect("source-read", _notebook_links)
