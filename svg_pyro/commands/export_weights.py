"""``svg-pyro export-weights``: a checkpoint's weights as a shipped model (for maintainers).

The registry and the weights files are :mod:`svg_pyro.pretrained`'s; this command reads a
checkpoint (:func:`svg_pyro.checkpoint.load_model`) and writes it there
(:func:`svg_pyro.pretrained.export_weights`).
"""

from __future__ import annotations

import argparse
from typing import Any

import torch

from svg_pyro import pretrained
from svg_pyro.checkpoint import load_model

FP16_TOLERANCE = 1e-3  # largest change of a sample that fp16 storage may cause


def run(args: argparse.Namespace) -> int:
    """``svg-pyro export-weights``: export, then check what the storage precision changes.

    With ``--dtype float16`` the samples of the stored weights are compared with the
    checkpoint's (same context and seed, 20 generated frames); if they differ by more than
    ``FP16_TOLERANCE`` the weights are stored in float32 instead, and the command says so. The
    stored ``meta`` keeps the record of the model's BatchNorm statistics (``svg.bn_statistics``;
    loading warns about a model that needs recalibrating).
    """
    svg, ckpt = load_model(args.checkpoint)
    meta = {"source_step": int(ckpt.get("step", -1)), "elapsed_s": ckpt.get("elapsed")}
    if svg.bn_statistics.of_forecasts:
        meta["batchnorm"] = svg.bn_statistics.calibration
    dtype = torch.float16 if args.dtype == "float16" else torch.float32
    path = pretrained.export_weights(ckpt, args.name, args.weights_dir, meta=meta, dtype=dtype)
    err = pretrained.round_trip_error(ckpt, path)
    if dtype == torch.float16 and err > FP16_TOLERANCE:
        print(
            f"fp16 storage changes samples by {err:.2e} > {FP16_TOLERANCE:g} (generated frames "
            "feed back, so rounding grows over the forecast): storing float32 instead",
            flush=True,
        )
        dtype = torch.float32
        path = pretrained.export_weights(ckpt, args.name, args.weights_dir, meta=meta, dtype=dtype)
        err = pretrained.round_trip_error(ckpt, path)
    size = path.stat().st_size / 2**20
    kind = "float16" if dtype == torch.float16 else "float32"
    print(
        f"{path} ({size:.2f} MiB, {kind}, step {meta['source_step']}): "
        f"stored samples differ by {err:.2e}"
    )
    return 0 if err <= FP16_TOLERANCE else 1


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """``svg-pyro export-weights``: a checkpoint's weights as a shipped model (maintainers)."""
    p = sub.add_parser(
        "export-weights",
        help="write a checkpoint's weights (weights only) as a shipped model and register it",
    )
    p.add_argument(
        "--dtype",
        choices=["float32", "float16"],
        default="float32",
        help="storage precision (float32); float16 is kept only if it changes samples < 1e-3",
    )
    p.add_argument("--checkpoint", required=True, help="checkpoint.pt to export")
    p.add_argument("--name", required=True, help="the model's name, e.g. smmnist-lp")
    p.add_argument("--weights-dir", default=None, help="default: the package's svg_pyro/weights")
    return p
