"""``svg-pyro bench``: time training steps or sampling on random frames, with the FLOP and memory
model (the work, and the flags it shares with ``benchmarks/``, are :mod:`svg_pyro.bench`'s)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from svg_pyro import bench


def run(args: argparse.Namespace) -> int:
    """``svg-pyro bench``: one record, as JSON (``--json``) or a line of text."""
    rec = bench.run_bench(args)
    print(json.dumps(rec) if args.json else bench.describe(rec))
    return 0


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register ``svg-pyro bench`` on the CLI's subparsers."""
    p = sub.add_parser(
        "bench",
        help="time SVG-LP training steps (or sampling) on random frames; one JSON line",
        description=(bench.__doc__ or "").split("\n\n")[0],
    )
    bench.add_bench_arguments(p)
    return p
