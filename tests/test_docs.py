"""The documentation: the API reference names every public module and its check catches a missing
public name; the README's links lead to files that exist. (``make docs`` builds the site with
warnings as errors, in CI; this file needs no Sphinx.)"""

import re
import sys
from pathlib import Path

import pytest

import svg_pyro

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
sys.path.insert(0, str(DOCS / "_ext"))
import public_api  # noqa: E402

MODULES = public_api.public_modules()


def test_public_modules_are_found_and_private_ones_left_out():
    names = [m.__name__ for m in MODULES]
    for name in ("svg_pyro", "svg_pyro.models.priors", "svg_pyro.guides", "svg_pyro.analysis"):
        assert name in names
    assert "svg_pyro.analysis.collisions" in names and "svg_pyro.analysis._common" not in names
    assert not [n for n in names if n.endswith("__main__")]


def test_every_public_module_has_an_automodule_entry():
    text = "\n".join(p.read_text() for p in sorted((DOCS / "api").glob("*.md")))
    documented = set(re.findall(r"^\.\. automodule:: (\S+)$", text, flags=re.M))
    missing = sorted({m.__name__ for m in MODULES} - documented)
    assert not missing, f"add these modules to a page of docs/api/: {missing}"


def test_the_check_names_a_public_name_the_reference_lacks():
    everything = public_api.missing_names(set(), MODULES)
    for name in svg_pyro.__all__:
        assert f"svg_pyro.{name}" in everything
    assert "svg_pyro.analysis.to_inference_data" in everything
    # documented where they are defined, re-exports count as documented
    documented = {"svg_pyro.svg.SVG", "svg_pyro.config.PRESETS"}
    left = public_api.missing_names(documented, MODULES)
    assert "svg_pyro.SVG" not in left and "svg_pyro.PRESETS" not in left
    assert "svg_pyro.SVGConfig" in left


@pytest.mark.parametrize("page", ["README.md", *sorted(p.name for p in DOCS.glob("*.md"))])
def test_relative_links_lead_to_files_that_exist(page):
    path = ROOT / page if page == "README.md" else DOCS / page
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text())
    local = [link for link in links if "://" not in link and not link.startswith("mailto:")]
    missing = [link for link in local if not (path.parent / link).exists()]
    assert not missing, f"{page} links to missing files: {missing}"


# -- the pages speak a user's words ------------------------------------------------------------
LOG = "training_log.md"  # the history of the training runs; it may keep the project's own words
USER_PAGES = sorted(p for p in DOCS.glob("*.md") if p.name != LOG)
CARDS = sorted((ROOT / "svg_pyro" / "weights").glob("*.md"))
INTERNAL = {
    "an issue number": r"\bissues? \d+",
    "a sitting": r"\bsittings?\b",
    "a run folder of the project": r"runs/recipe",
    "+- for ±": r"\+-",
    "a status in brackets": r"\((paused|the default; in training)\)",
}


@pytest.mark.parametrize("path", USER_PAGES + CARDS, ids=lambda p: p.name)
def test_user_pages_and_model_cards_have_no_internal_vocabulary(path):
    text = path.read_text()
    found = {what: m[0] for what, pattern in INTERNAL.items() if (m := re.search(pattern, text))}
    assert not found, f"{path.name} has {found}; the history belongs in docs/{LOG}"


def test_results_reads_in_two_minutes_and_links_the_training_log():
    text = (DOCS / "RESULTS.md").read_text()
    assert len(text.splitlines()) <= 250
    assert f"]({LOG}" in text
    # what a viewer sees comes first: the identity frames before any table
    assert text.index("4.06") < text.index("| --- |")
    index = (DOCS / "index.md").read_text()
    assert re.search(r"^training_log$", index, flags=re.M), "docs/index.md's toctree lacks it"


def _prose(text):
    """A page without its code blocks, inline code and maths."""
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    text = re.sub(r"\$\$.*?\$\$", "", text, flags=re.S)
    return re.sub(r"`[^`]*`|\$[^$\n]+\$", "", text)


@pytest.mark.parametrize("path", USER_PAGES, ids=lambda p: p.name)
def test_maths_is_written_as_maths(path):
    plain = re.findall(r"\b[pq]\(z_t\s*\\?\|[^)]*\)|\bKL\(q[^)]*\)", _prose(path.read_text()))
    assert not plain, f"{path.name}: write these as $...$ maths: {plain}"


def test_page_and_notebook_titles_are_distinct():
    titles = [p.read_text().splitlines()[0] for p in DOCS.glob("*.md")]
    for nb in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py")):
        titles += [line[2:] for line in nb.read_text().splitlines() if line.startswith("# # ")][:1]
    repeated = sorted({t for t in titles if titles.count(t) > 1})
    assert not repeated, f"these titles stand twice in the site's index: {repeated}"


def test_load_pretrained_names_every_shipped_model_and_its_return_type():
    import inspect

    from svg_pyro import pretrained

    doc = pretrained.load_pretrained.__doc__
    for name in pretrained.available():
        assert f'"{name}"' in doc
    assert "available" in doc
    returns = inspect.signature(pretrained.load_pretrained).return_annotation
    assert returns in ("SVG", pretrained.SVG)
