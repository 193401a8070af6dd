"""Sphinx configuration of the svg-pyro documentation site: ``make docs`` builds it, offline, into
``docs/_build/html`` with warnings as errors.

Why Sphinx (with pydata-sphinx-theme and myst-nb) rather than MkDocs: the docstrings are
reStructuredText with Sphinx roles (``:func:``, ``:class:``, double-backquoted code), which
autodoc renders as they are and mkdocstrings would not; it is what Pyro, NumPyro and ArviZ use,
so the site reads like theirs; and myst-nb renders the notebooks' stored outputs and the
Markdown pages (``docs/*.md``, the ones GitHub shows too) without pandoc or a kernel.
"""

import pydoc
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
# $...$ and $$...$$ are maths (MathJax on the site; GitHub renders the same Markdown)
myst_enable_extensions = ["dollarmath"]

# Every object is documented where it is defined; public_api checks that every name of
# svg_pyro.__all__ and of each public module's __all__ is, and that every public module is here.
autodoc_default_options = {"members": True, "ignore-module-all": True, "member-order": "bysource"}
autodoc_typehints = "signature"
autodoc_class_signature = "separated"
# Each class shows its own docs only: the class docstring (not __init__'s), and no text a method
# inherits from torch or another package, such as nn.Module's "Initialize internal Module state"
# under a constructor or "Define the computation performed at every call" under a forward
# (_foreign_docstring below). A method that inherits the docs of one of ours keeps them.
autoclass_content = "class"

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
# No primary (left) sidebar on pages without subpages: it would be empty and take the width that
# wide tables need. Only the API reference's pages have a section to list there.
html_sidebars = {page.stem: [] for page in DOCS.glob("*.md") if page.stem != "index"}
html_sidebars["notebooks/*"] = []


def _notebook_links(app, docname, source):
    """Pages link to ``../notebooks/NN.ipynb``, which is where the file is on GitHub; on the site
    the notebook is the page ``notebooks/NN`` copied above."""
    source[0] = source[0].replace("](../notebooks/", "](notebooks/")


def _foreign_docstring(app, what, name, obj, options, lines):
    """Drop the docstring autodoc found for a method or class of ours on a base class of another
    package (torch's nn.Module, object, ...): the entry stays, with its signature, without it."""
    if what not in ("class", "method", "function") or getattr(obj, "__doc__", None) is not None:
        return  # documented itself
    owner, _, attr = name.rpartition(".")
    cls = obj if what == "class" else pydoc.locate(owner)
    if not isinstance(cls, type):
        return
    for base in cls.__mro__[1:]:
        found = base if what == "class" else base.__dict__.get(attr)
        if getattr(found, "__doc__", None):
            if not base.__module__.startswith("svg_pyro"):
                lines.clear()
            return


def setup(app):
    app.connect("source-read", _notebook_links)
    app.connect("autodoc-process-docstring", _foreign_docstring)
