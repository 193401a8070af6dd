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
