"""``svg-pyro models``: the shipped models, one line each, with the first sentence of each card.
Their names go wherever a command takes ``--checkpoint`` (and ``--init-from``)."""

from __future__ import annotations

import argparse
from typing import Any

from svg_pyro import pretrained


def describe(name: str) -> str:
    """``name``, its role (the default, its deterministic baseline) and its card's first
    sentence."""
    role = {pretrained.DEFAULT: " (the default)", pretrained.BASELINE: " (its baseline)"}
    lines = [line for line in pretrained.model_card(name).splitlines()[1:] if line.strip()]
    first = lines[0].split(". ")[0].rstrip(".") + "." if lines else ""
    return f"{name}{role.get(name, '')}: {first}"


def run(args: argparse.Namespace) -> int:
    """``svg-pyro models``: print every shipped model."""
    for name in pretrained.available():
        print(describe(name))
    return 0


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register ``svg-pyro models``."""
    return sub.add_parser(
        "models",
        help="list the shipped models (their names work wherever --checkpoint goes)",
        description="The models that ship with svg-pyro, with the first sentence of each card; "
        "`svg_pyro.load_pretrained(NAME)` loads one, and every --checkpoint takes its name.",
    )
