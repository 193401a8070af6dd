"""``svg-pyro evaluate``: score a checkpoint (and ``--compare`` checkpoints, copy-last and blank)
on a stored test set, write the JSON (partial on a stop signal), and optionally the curves and
Markdown tables (the work is :func:`svg_pyro.evaluate.run_evaluation`'s)."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from svg_pyro import options, signals, viz
from svg_pyro.checkpoint import atomic_write_json
from svg_pyro.evaluate import format_score, markdown_tables, run_evaluation
from svg_pyro.metrics import PSNR_CAP_DB


def _cap(text: str) -> float | None:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"the PSNR cap must be > 0 dB or inf, got {text!r}")
    return None if math.isinf(value) else value


def run(args: argparse.Namespace) -> int:
    """``svg-pyro evaluate``: write the JSON (partial on a stop signal), optionally the plot."""
    try:
        return _evaluate_and_write(args)
    except signals.Interrupted as err:
        if err.partial is None:
            print(
                f"svg-pyro evaluate: stopped by {signals.signal_name(err.signum)} before any "
                f"method was complete; nothing was written ({args.json} untouched)",
                file=sys.stderr,
            )
            return err.exit_status
        _write_results(args, err.partial)
        missing = ", ".join(err.partial["partial"]["not_evaluated"])
        print(
            f"svg-pyro evaluate: stopped by {signals.signal_name(err.signum)}: wrote PARTIAL "
            f'results to {args.json} (marked "partial"; not evaluated: {missing})',
            file=sys.stderr,
        )
        return err.exit_status


def _evaluate_and_write(args: argparse.Namespace) -> int:
    results = options.call_with_args(run_evaluation, args)
    out = _write_results(args, results)
    if args.plot:
        viz.plot_eval_curves(results, args.plot)
    if args.markdown:
        md = Path(args.markdown)
        md.parent.mkdir(parents=True, exist_ok=True)
        md.write_text(markdown_tables(results))
    print(out)
    return 0


def _write_results(args: argparse.Namespace, results: dict[str, Any]) -> Path:
    """Write the JSON (atomically: an interrupted write leaves no half file) and print a summary."""
    out = atomic_write_json(results, args.json, indent=1)
    for name, res in results["methods"].items():
        s, q = res["ssim"]["avg"], res["psnr"]["avg"]
        line = (
            f"{name:>12}: SSIM best {format_score(s['best'], 4)} "
            f"mean {format_score(s['mean'], 4)} | "
            f"PSNR best {format_score(q['best'], 2)} mean {format_score(q['mean'], 2)}"
        )
        if "crps" in res:
            line += (
                f" | CRPS {res['crps']['avg']['mean']:.4f}"
                f" ES {res['energy_score']['avg']['mean']:.3f}"
            )
        if "iwae" in res:
            w = res["iwae"]
            line += (
                f" | IWAE({w['particles']}) {w['iwae_nats_per_frame']['mean']:.2f} nats/frame,"
                f" {w['iwae_bits_per_dim']['mean']:.4f} bits/dim"
            )
        print(line, file=sys.stderr)
    return out


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register ``svg-pyro evaluate`` on the CLI's subparsers."""
    p = sub.add_parser(
        "evaluate",
        help="best/mean/worst-of-K SSIM and PSNR, CRPS and energy score per frame (+ copy-last, "
        "blank, IWAE)",
    )
    options.add_checkpoint(p, "the model to evaluate")
    p.add_argument("--testset", required=True, help=".npz test set (svg-pyro data ...)")
    p.add_argument("--n-samples", type=int, default=100, help="samples per sequence (100)")
    options.add_protocol(p)
    p.add_argument("--compare", nargs="+", default=[], metavar="CKPT", help="more checkpoints")
    p.add_argument("--json", required=True, help="where to write the results")
    p.add_argument("--plot", default=None, help="PNG of the per-frame curves")
    p.add_argument(
        "--markdown",
        default=None,
        help="also write the results as Markdown tables (averages, and per predicted frame)",
    )
    p.add_argument(
        "--iwae", type=int, default=0, metavar="K", help="IWAE bound with K particles (K=1: ELBO)"
    )
    p.add_argument("--obs-sigma", type=float, default=None, help="likelihood sigma for --iwae")
    p.add_argument("--batch-size", type=int, default=16, help="sequences per batch (x K samples)")
    p.add_argument("--sequences", type=int, default=None, help="use the first N test sequences")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (0)")
    options.add_bn_train_mode(
        p,
        "BatchNorm in training mode when generating (batch statistics over all K x B samples "
        "of a step; the original release normalised each sample's B frames separately)",
    )
    p.add_argument(
        "--psnr-cap",
        type=_cap,
        default=PSNR_CAP_DB,
        metavar="DB",
        help=f"cap on PSNR of exact copies (default {PSNR_CAP_DB:g}; inf: none, null in JSON)",
    )
    options.add_device(p)
    options.add_no_progress(p)
    return p
