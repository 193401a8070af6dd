"""``svg-pyro demo`` (``make demo``): the shipped model's futures, then a few CPU minutes of
training (the work is :func:`svg_pyro.demo.run_demo`'s)."""

from __future__ import annotations

import argparse
from typing import Any

from svg_pyro import options
from svg_pyro.demo import SHIPPED, heldout_summary, run_demo

#: What each file of the demo shows, in the order printed.
SHOWS = {
    "pretrained_gif": f"the shipped {SHIPPED}: context (green), truth and sampled futures (red), "
    "one frame a time step",
    "pretrained_grid": "the same as one picture: a row for the truth, a row per sample",
    "gif": "the tiny model you just trained: context, truth and its samples",
    "grid": "the same as one picture",
    "curves": "its training loss, KL and held-out SSIM against copy-last and blank",
    "checkpoint": "its weights (`svg-pyro sample --checkpoint` reads them; a second `make demo` "
    "continues from them)",
    "best.pt": "its weights at the best held-out SSIM",
    "previews": "a picture of its samples at every held-out evaluation",
    "tb": "TensorBoard logs (`tensorboard --logdir` this folder)",
    "metrics.jsonl": "every logged number, one JSON object a line",
}


def run(args: argparse.Namespace) -> int:
    """``svg-pyro demo``: one line per file written, saying what it shows, and the score."""
    paths = run_demo(args.out, steps=args.steps, progress=not args.no_progress)
    for name, path in paths.items():
        print(f"{path}: {SHOWS.get(name, name)}")
    held = heldout_summary(paths["checkpoint"].parent)
    if held is not None:
        print(
            f"held-out best-of-{held.get('samples', '?')} SSIM at step {held['step']}: model "
            f"{held['ssim_best']:.3f}, copy-last {held['copy_last_ssim']:.3f}, blank (an all-black "
            f"frame) {held['blank_ssim']:.3f}. A model trained for minutes draws blurred blobs "
            "that drift with the digits and scores below both; the shipped model's pictures show "
            "what hours of training give (docs/RESULTS.md)."
        )
    return 0


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register ``svg-pyro demo``."""
    p = sub.add_parser("demo", help="train `tiny` on CPU for a few minutes; write a GIF and curves")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--steps", type=int, default=1500)
    options.add_no_progress(p)
    return p
