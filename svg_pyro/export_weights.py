"""``svg-pyro export-weights``: a checkpoint's weights as a shipped model (for maintainers).

The registry and the weights files are :mod:`svg_pyro.pretrained`'s; this command reads a
checkpoint (:mod:`svg_pyro.checkpoint`, which itself resolves shipped names through the
registry, so the command lives above both) and writes it there.
"""

from __future__ import annotations

import argparse
from typing import Any

from svg_pyro import pretrained
from svg_pyro.checkpoint import load_checkpoint


def run(args: argparse.Namespace) -> int:
    """``svg-pyro export-weights``: export, then check what fp16 storage changes."""
    ckpt = load_checkpoint(args.checkpoint)
    meta = {"source_step": int(ckpt.get("step", -1)), "elapsed_s": ckpt.get("elapsed")}
    path = pretrained.export_weights(ckpt, args.name, args.weights_dir, meta=meta)
    err = pretrained.round_trip_error(ckpt, path)
    size = path.stat().st_size / 2**20
    print(f"{path} ({size:.2f} MiB, step {meta['source_step']}): fp16 samples differ by {err:.2e}")
    if err > 1e-3:
        print(f"warning: fp16 storage changes samples by {err:.2e} > 1e-3", flush=True)
        return 1
    return 0


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """``svg-pyro export-weights``: a checkpoint's weights as a shipped model (maintainers)."""
    p = sub.add_parser(
        "export-weights",
        help="write a checkpoint's weights (fp16, weights only) as a shipped model and register it",
    )
    p.add_argument("--checkpoint", required=True, help="checkpoint.pt to export")
    p.add_argument("--name", required=True, help="the model's name, e.g. smmnist-lp")
    p.add_argument("--weights-dir", default=None, help="default: the package's svg_pyro/weights")
    return p
