"""``svg-pyro sample``: a GIF and a PNG grid of sampled futures per test sequence, and
``samples.json`` (the work is :func:`svg_pyro.sample.run_sampling`'s)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from svg_pyro import options
from svg_pyro.sample import run_sampling


def run(args: argparse.Namespace) -> int:
    """``svg-pyro sample``: write the pictures and ``samples.json``."""
    index = options.call_with_args(run_sampling, args)
    print(f"{len(index['sequences'])} sequences -> {args.out}", file=sys.stderr)
    print(Path(args.out) / "samples.json")
    return 0


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register ``svg-pyro sample`` on the CLI's subparsers."""
    p = sub.add_parser("sample", help="GIF and PNG grid of sampled futures per test sequence")
    options.add_checkpoint(p)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--testset", default=None, help=".npz test set (default: draw sequences)")
    p.add_argument("--sequences", type=int, default=4, help="how many sequences (4)")
    options.add_protocol(p)
    p.add_argument("--n-samples", type=int, default=5, help="samples per sequence (5)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--data-seed", type=int, default=0, help="seed of drawn test sequences")
    options.add_bn_train_mode(p)
    p.add_argument("--fps", type=float, default=4.0, help="GIF frames per second")
    p.add_argument(
        "--identity",
        action="store_true",
        help="label each row with its identity frames: the predicted frames, from the first on, "
        "in which both digits are still recognisable (needs an SM-MNIST --testset)",
    )
    p.add_argument("--mnist-root", default=None, help="for a test set drawn from full MNIST")
    options.add_device(p)
    options.add_no_progress(p)
    return p
