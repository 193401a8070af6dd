"""The rooms of docs/ARCHITECTURE.md and their one-way arrows, kept true.

Every module of the package belongs to one room; a module may import (at module level, outside
``if TYPE_CHECKING:`` too: a type-only import is an arrow as well) only modules of its own room
or of rooms below it, and no function
imports one of our own modules except the few listed in ``IN_FUNCTION_IMPORTS`` with the reason.
No function of the package is longer than ``MAX_FUNCTION_LINES``.
"""

import ast
import importlib
from pathlib import Path

import pytest

import svg_pyro
import svg_pyro.guides
import svg_pyro.models

ROOT = Path(__file__).resolve().parents[1]

# Lowest first. A module may import its own room and every room before it; nothing after it.
ROOMS: list[tuple[str, tuple[str, ...]]] = [
    (
        "foundations",
        (
            "config",
            "errors",
            "options",
            "device",
            "signals",
            "metrics",
            "distributed",
            "skipshare",
            "viz",
            "data",
            "nets",
        ),
    ),  # fmt: skip
    ("the Pyro program", ("models", "guides")),
    ("the model", ("svg", "elbo", "rollout_bn")),
    ("weights and checkpoints", ("pretrained", "checkpoint", "loaded")),
    ("scoring", ("iwae", "evaluate")),
    ("held-out scores during training", ("heldout",)),
    ("training", ("runlog", "train")),
    ("uses of a trained model", ("sample", "analysis", "bench", "demo")),
    ("commands", ("commands", "__main__")),
]
LEVEL = {name: i for i, (_, names) in enumerate(ROOMS) for name in names}

# Foundations import nothing of ours outside their own package (data knows nothing of the
# model, nets know nothing of Pyro, config is imported by all), except ``errors``: the exception
# types every room raises, which itself imports nothing of ours (checked below).
SELF_CONTAINED = ROOMS[0][1]
SHARED_LEAF = "errors"

# A room that is a package split by concern keeps the same rule one level down: its modules,
# lowest first; a module imports only modules of lower levels (siblings on one level, such as
# the ArviZ export, the collision study and the identity measure, know nothing of each other),
# never the package's ``__init__`` (the public surface, which re-exports them). The commands know
# nothing of each other: only ``cli``, which registers them, imports them.
INNER_ROOMS: dict[str, list[tuple[str, ...]]] = {
    "analysis": [
        ("_common",),
        ("kl",),
        ("arviz_export", "collisions", "identity"),
    ],
    "commands": [
        (
            "train",
            "plot_run",
            "data",
            "demo",
            "evaluate",
            "sample",
            "analyze",
            "bench",
            "recalibrate_bn",
            "export_weights",
            "models",
        ),
        ("cli",),
    ],
}

#: The longest a function (or method) of svg_pyro/, models/ or guides/ may be, in lines from its
#: ``def`` to its end, docstring included.
MAX_FUNCTION_LINES = 100

# (module, imported module): in-function imports of our own modules that are allowed, and why.
IN_FUNCTION_IMPORTS: dict[tuple[str, str], str] = {}


def _files() -> dict[str, Path]:
    """``dotted name -> file`` of every module of ours (svg_pyro, svg_pyro.models/guides)."""
    out = {}
    for pkg in (svg_pyro, svg_pyro.models, svg_pyro.guides):
        base = Path(pkg.__file__).parent
        for path in sorted(base.rglob("*.py")):
            rel = path.relative_to(base).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join([pkg.__name__, *parts])
            if pkg is svg_pyro and parts and parts[0] in ("models", "guides"):
                continue
            out[name] = path
    return out


FILES = _files()


def _room(module: str) -> str | None:
    """The top-level name under svg_pyro (``svg_pyro.data.kth`` -> ``data``); None for the
    package itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def _is_ours(name: str) -> bool:
    return name == "svg_pyro" or name.startswith("svg_pyro.")


def _imports(tree: ast.AST) -> list[tuple[str, bool]]:
    """``(imported module, inside a function)`` of every import of ours outside
    (``from svg_pyro import x`` counts as importing ``svg_pyro.x``, and ``from package import
    module`` as importing the module), type-only ones under ``if TYPE_CHECKING:`` included: a
    loop hidden there is still a loop."""
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(
                child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
            )
            if isinstance(child, ast.Import):
                found.extend((a.name, inner) for a in child.names if _is_ours(a.name))
            elif isinstance(child, ast.ImportFrom) and child.module and _is_ours(child.module):
                if child.module == "svg_pyro":
                    found.extend((f"svg_pyro.{a.name}", inner) for a in child.names)
                elif all(f"{child.module}.{a.name}" in FILES for a in child.names):
                    found.extend((f"{child.module}.{a.name}", inner) for a in child.names)
                else:
                    found.append((child.module, inner))
            visit(child, inner)

    visit(tree, False)
    return found


def test_every_module_has_a_room_and_imports():
    unplaced = sorted(m for m in FILES if _room(m) is not None and _room(m) not in LEVEL)
    assert not unplaced, f"give these modules a room (here and in docs/ARCHITECTURE.md): {unplaced}"
    for name in FILES:
        if name != "svg_pyro.__main__":  # running it is `python -m svg_pyro`
            importlib.import_module(name)


@pytest.mark.parametrize("module", sorted(FILES))
def test_no_arrow_points_up(module):
    room = _room(module)
    if room is None:  # svg_pyro/__init__.py: the public surface re-exports from every room
        return
    tree = ast.parse(FILES[module].read_text())
    for target, _ in _imports(tree):
        other = _room(target)
        if other is None or other == room:
            continue
        if room in SELF_CONTAINED and not (other == SHARED_LEAF and room != SHARED_LEAF):
            raise AssertionError(f"{module} (foundations) imports {target}: nothing of ours")
        assert LEVEL[other] <= LEVEL[room], (
            f"{module} (room {ROOMS[LEVEL[room]][0]!r}) imports {target} "
            f"(room {ROOMS[LEVEL[other]][0]!r}, higher up)"
        )


@pytest.mark.parametrize("module", sorted(FILES))
def test_no_in_function_imports_of_our_modules(module):
    tree = ast.parse(FILES[module].read_text())
    inner = [t for t, in_function in _imports(tree) if in_function]
    unlisted = [t for t in inner if (module, t) not in IN_FUNCTION_IMPORTS]
    assert not unlisted, f"{module} imports {unlisted} inside a function: import at the top"


def test_the_architecture_document_names_every_room():
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    inner = [n for levels in INNER_ROOMS.values() for names in levels for n in names]
    missing = [n for _, names in ROOMS for n in names if f"`{n}" not in text]
    missing += [n for n in inner if f"`{n}`" not in text]
    assert not missing, f"docs/ARCHITECTURE.md does not mention {missing}"


def _inner(module: str) -> str | None:
    """The module's name inside its room's package (``svg_pyro.analysis.command`` -> ``command``);
    ``""`` for the package's ``__init__``; None outside a package of INNER_ROOMS."""
    parts = module.split(".")
    if len(parts) < 2 or parts[1] not in INNER_ROOMS:
        return None
    return ".".join(parts[2:])


@pytest.mark.parametrize("package", sorted(INNER_ROOMS))
def test_every_module_of_a_split_room_has_a_level(package):
    levels = [n for names in INNER_ROOMS[package] for n in names]
    found = sorted(_inner(m) for m in FILES if _room(m) == package and _inner(m))
    assert found == sorted(levels), f"svg_pyro.{package}: modules {found}, levels {levels}"


@pytest.mark.parametrize("module", sorted(m for m in FILES if _inner(m)))
def test_inside_a_split_room_arrows_point_down(module):
    package, name = _room(module), _inner(module)
    level = {n: i for i, names in enumerate(INNER_ROOMS[package]) for n in names}
    for target, _ in _imports(ast.parse(FILES[module].read_text())):
        if _room(target) != package:
            continue
        other = _inner(target)
        assert other, f"{module} imports the package svg_pyro.{package}: import the module"
        assert level[other] < level[name], (
            f"{module} (level {level[name]}) imports {target} (level {level[other]}): "
            f"only lower levels of {INNER_ROOMS[package]}"
        )


def test_the_pyro_program_does_not_know_the_svg_module():
    """``models/`` and ``guides/`` take their networks as an argument
    (:class:`svg_pyro.models.networks.Networks`): no import of ``svg_pyro.svg``, not even for
    type hints, so the arrow from ``svg`` down to them is the only one."""
    for module in FILES:
        if _room(module) in ("models", "guides"):
            targets = [t for t, _ in _imports(ast.parse(FILES[module].read_text()))]
            assert "svg_pyro.svg" not in targets, f"{module} imports svg_pyro.svg"


def test_type_only_imports_count_as_arrows():
    tree = ast.parse(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from svg_pyro.svg import SVG\n"
    )
    assert _imports(tree) == [("svg_pyro.svg", False)]


def test_no_function_exceeds_the_longest_allowed():
    """A function longer than ``MAX_FUNCTION_LINES`` does several things: split it."""
    long = []
    for module, path in sorted(FILES.items()):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{module}.{node.name} ({lines} lines)")
    assert not long, f"longer than {MAX_FUNCTION_LINES} lines, split them: {long}"


def test_the_length_check_counts_a_function_from_def_to_end():
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    node = ast.parse(f"@decorator\ndef f():\n{body}\n").body[0]
    assert node.end_lineno - node.lineno + 1 == MAX_FUNCTION_LINES + 1
