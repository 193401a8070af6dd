"""Command-line options that several ``svg-pyro`` commands share, each defined once here.

Every command module (see :mod:`svg_pyro.commands.cli`) exposes ``add_parser(subparsers)`` and
``run(args)``; the flags below are added by the commands that take them (argparse only: this
module imports nothing of ours).
"""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Callable
from typing import Any

#: What every ``--checkpoint`` help ends with: shipped names work too, and where they are listed.
SHIPPED_NAMES = "or a shipped model's name (`svg-pyro models` lists them)"


def add_checkpoint(p: argparse.ArgumentParser, what: str = "") -> None:
    """``--checkpoint`` (required): a checkpoint file or a shipped model's name; ``what`` says
    which model the command wants (e.g. ``"a latent model"``)."""
    help = f"a checkpoint file (a run's checkpoint.pt), {SHIPPED_NAMES}"
    p.add_argument("--checkpoint", required=True, help=help + (f"; {what}" if what else ""))


def add_protocol(p: argparse.ArgumentParser) -> None:
    """``--n-past`` and ``--n-future`` (default: the evaluation protocol of the checkpoint's
    dataset, :func:`svg_pyro.config.eval_protocol`)."""
    p.add_argument("--n-past", type=int, default=None, help="context frames (dataset protocol)")
    p.add_argument("--n-future", type=int, default=None, help="frames to predict (protocol)")


def add_bn_train_mode(p: argparse.ArgumentParser, help: str = "BatchNorm in training mode") -> None:
    """``--bn-train-mode``: the original release's BatchNorm-in-training-mode sampling."""
    p.add_argument("--bn-train-mode", action="store_true", help=help)


def add_device(p: argparse.ArgumentParser) -> None:
    """``--device`` (auto, cpu or cuda; :func:`svg_pyro.device.resolve_device`)."""
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")


def add_no_progress(p: argparse.ArgumentParser, help: str = "no progress bars") -> None:
    """``--no-progress``."""
    p.add_argument("--no-progress", action="store_true", help=help)


def call_with_args(fn: Callable[..., Any], args: argparse.Namespace, **overrides: Any) -> Any:
    """Call ``fn`` with the parsed flags its parameters name (``--n-past`` -> ``n_past``), and
    ``progress = not args.no_progress`` where it takes ``progress``; ``overrides`` win. So a
    command spells out only what its flags do not say by name."""
    params = inspect.signature(fn).parameters
    kwargs = {k: getattr(args, k) for k in params if hasattr(args, k)}
    if "progress" in params and hasattr(args, "no_progress"):
        kwargs["progress"] = not args.no_progress
    kwargs.update(overrides)
    return fn(**kwargs)
