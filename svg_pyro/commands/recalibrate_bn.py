"""``svg-pyro recalibrate-bn``: a checkpoint with BatchNorm statistics of the model's own
forecasts (the work is :mod:`svg_pyro.rollout_bn`'s)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from svg_pyro import options
from svg_pyro.checkpoint import atomic_save
from svg_pyro.loaded import load_trained
from svg_pyro.pretrained import weights_only
from svg_pyro.rollout_bn import (
    CALIBRATION_BATCH,
    CALIBRATION_SAMPLES,
    CALIBRATION_SEED,
    CALIBRATION_SEQUENCES,
    context_batches,
    needs_recalibration,
    recalibrate,
)


def run(args: argparse.Namespace) -> int:
    """``svg-pyro recalibrate-bn``: a weights-only checkpoint with rollout statistics."""
    if args.sequences < 1 or args.samples < 1 or args.batch_size < 1:
        raise ValueError("--sequences, --samples and --batch-size must be >= 1")
    loaded = load_trained(
        args.checkpoint, args.device, args.n_past, args.n_future,
        warn=False,  # this command is the remedy
        mnist_root=args.mnist_root, data_root=args.data_root,
    )  # fmt: skip
    svg, ckpt, p, f = loaded.svg, loaded.checkpoint, loaded.n_past, loaded.n_future
    if not needs_recalibration(svg):
        why = (
            "already holds BatchNorm statistics of its own forecasts"
            if svg.bn_statistics.of_forecasts
            else f"takes its skips from a context frame (skip_source={svg.config.skip_source!r}); "
            "its running statistics already see the frames its encoder sees when it forecasts"
        )
        print(f"note: {args.checkpoint} {why}", flush=True)
    frames = loaded.frames("train", args.sequences, args.seed, length=p)
    loaded.seed(args.seed)
    contexts = context_batches(frames, p, args.batch_size, loaded.device)
    n = recalibrate(svg, contexts, f, args.samples, seed=args.seed)
    meta = {**(ckpt.get("meta") or {}), "batchnorm": svg.bn_statistics.calibration}
    # the recalibrated weights, not the checkpoint's moving average (they are already it)
    out = weights_only({**ckpt, "model": svg.state_dict(), "ema": None}, meta)
    out["elapsed"] = ckpt.get("elapsed")
    atomic_save(out, Path(args.out))
    print(
        f"{args.out}: BatchNorm statistics of {n} forecasts ({args.sequences} training "
        f"sequences x {args.samples}, {p} -> {f} frames), step {out['step']}"
    )
    return 0


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """``svg-pyro recalibrate-bn``: BatchNorm statistics of the model's own forecasts."""
    p = sub.add_parser(
        "recalibrate-bn",
        help="re-estimate BatchNorm statistics on the model's own forecasts (for previous-frame "
        "skips) and write a weights-only checkpoint",
        description="Re-estimate every BatchNorm running statistic on the model's own forecasts "
        "from training-split contexts (for models whose skips come from the previous frame: "
        "see docs/evaluation.md) and write a weights-only checkpoint.",
    )
    options.add_checkpoint(p)
    p.add_argument("--out", required=True, help="where to write the recalibrated checkpoint")
    p.add_argument(
        "--sequences",
        type=int,
        default=CALIBRATION_SEQUENCES,
        help=f"training sequences to forecast from ({CALIBRATION_SEQUENCES})",
    )
    p.add_argument(
        "--samples",
        type=int,
        default=CALIBRATION_SAMPLES,
        help=f"forecasts per sequence ({CALIBRATION_SAMPLES})",
    )
    p.add_argument("--batch-size", type=int, default=CALIBRATION_BATCH)
    p.add_argument("--n-past", type=int, default=None, help="default: the dataset's protocol")
    p.add_argument("--n-future", type=int, default=None, help="default: the dataset's protocol")
    p.add_argument(
        "--seed",
        type=int,
        default=CALIBRATION_SEED,
        help="which training sequences, and the forecasts' seed",
    )
    p.add_argument("--data-root", default=None, help="KTH/BAIR files (default: the run's)")
    p.add_argument("--mnist-root", default=None, help="full MNIST files (default: the run's)")
    p.add_argument("--device", default="auto")
    return p
