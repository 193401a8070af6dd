"""The API reference covers every public name, or the build fails.

Public names: ``svg_pyro.__all__`` and the ``__all__`` of every public module (no part of its
dotted name starts with an underscore). Modules document each object where it is defined
(``automodule`` with ``:members:`` ignores ``__all__``), so a name counts as documented when the
reference holds it under its defining module (``obj.__module__`` and ``obj.__qualname__``) or,
for data without a module of its own (a dict, a tuple), under any module that holds the same
object by that name. A name missing from the reference, and a public module without an
``automodule`` entry, is a Sphinx warning, an error under ``sphinx-build -W`` (``make docs``).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable
from types import ModuleType
from typing import Any

PACKAGES = ("svg_pyro", "svg_pyro.models", "svg_pyro.guides")


def public_modules() -> list[ModuleType]:
    """Every public module of the package (``svg_pyro.models``/``guides`` included), imported."""
    names = set(PACKAGES)
    for pkg_name in PACKAGES:
        pkg = importlib.import_module(pkg_name)
        for info in pkgutil.walk_packages(pkg.__path__, pkg_name + "."):
            names.add(info.name)
    public = [
        n
        for n in names
        if not any(p.startswith("_") for p in n.split("."))
        and not n.startswith(("svg_pyro.svg_pyro", "svg_pyro.models.models"))
    ]
    return [importlib.import_module(n) for n in sorted(public)]


def candidates(obj: Any, name: str, modules: Iterable[ModuleType]) -> set[str]:
    """The dotted names under which ``obj`` (exported as ``name``) may be documented."""
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if isinstance(module, str) and isinstance(qualname, str):  # a class or a function
        return {f"{module}.{qualname}"}
    # data: under any module that holds it by that name
    return {f"{m.__name__}.{name}" for m in modules if getattr(m, name, None) is obj}


def missing_names(documented: set[str], modules: list[ModuleType]) -> list[str]:
    """``module.name`` of every public name that ``documented`` (dotted names) lacks."""
    missing = []
    for module in modules:
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name)
            if not candidates(obj, name, modules) & documented:
                missing.append(f"{module.__name__}.{name}")
    return missing


def _check(app: Any, env: Any) -> None:
    from sphinx.util import logging  # here, so that the tests import this module without Sphinx

    logger = logging.getLogger(__name__)
    objects = env.get_domain("py").objects
    modules = public_modules()
    documented = set(objects)
    for name in [m.__name__ for m in modules if m.__name__ not in env.get_domain("py").modules]:
        logger.warning(f"API reference: public module {name} has no automodule entry")
    for name in missing_names(documented, modules):
        logger.warning(f"API reference: public name {name} is not documented")


def setup(app: Any) -> dict[str, Any]:
    app.connect("env-check-consistency", _check)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
