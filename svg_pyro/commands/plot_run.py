"""``svg-pyro plot-run``: training and held-out curves of run folders in one PNG
(drawn by :func:`svg_pyro.viz.plot_runs`)."""

from __future__ import annotations

import argparse
from typing import Any

from svg_pyro.viz import plot_runs


def run(args: argparse.Namespace) -> int:
    """Draw the runs' curves; print the PNG's path."""
    print(plot_runs(args.runs, args.out))
    return 0


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register ``svg-pyro plot-run``."""
    p = sub.add_parser(
        "plot-run", help="training and held-out curves of runs vs steps and wall time (one PNG)"
    )
    p.add_argument("runs", nargs="+", metavar="DIR", help="run folders (with metrics.jsonl)")
    p.add_argument("--out", default="runs.png", help="PNG to write (default runs.png)")
    return p
