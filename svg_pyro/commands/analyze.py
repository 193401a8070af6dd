"""``svg-pyro analyze``: the command line of the analyses (``analyze collisions``, the collision
study of :mod:`svg_pyro.analysis.collisions`; ``analyze identity``, whether forecast digits keep
their identity, :mod:`svg_pyro.analysis.identity`; ``analyze kl``, the KL per frame,
:mod:`svg_pyro.analysis.kl`)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from svg_pyro import options, signals
from svg_pyro.analysis.collisions import plot_collisions, run_collisions
from svg_pyro.analysis.identity import run_identity
from svg_pyro.analysis.kl import run_kl
from svg_pyro.checkpoint import atomic_write_json


def run(args: argparse.Namespace) -> int:
    """``svg-pyro analyze ANALYSIS`` (``collisions``, ``identity`` or ``kl``)."""
    commands = {
        "collisions": run_collisions_command,
        "identity": run_identity_command,
        "kl": run_kl_command,
    }
    return commands[args.analyze_command](args)


def run_identity_command(args: argparse.Namespace) -> int:
    report = options.call_with_args(run_identity, args)
    out = atomic_write_json(report, args.json, indent=2)
    c, m = report["calibration"], report["methods"]
    kept = {k: v["identity_frames_mean"] for k, v in m.items()}
    print(
        f"threshold {c['threshold']:.3f} (impostors {c['impostor_rate']:.3f}, true digits "
        f"{c['genuine_rate']:.3f}); frames with the digits kept, of {report['n_future']}: "
        f"model {kept['model']:.2f} (best of {report['n_samples']}: "
        f"{m['model']['identity_frames_best']:.2f}), truth {kept['truth']:.2f}, "
        f"copy-last {kept['copy-last']:.2f}"
        + "".join(f", {k} {v:.2f}" for k, v in kept.items() if k.startswith("teacher-forced"))
        + f"; ink of the last frame: model {m['model']['ink_by_frame'][-1]:.4f}, truth "
        f"{m['truth']['ink_by_frame'][-1]:.4f} -> {out}"
        + (f", {report['plot']}" if "plot" in report else ""),
        file=sys.stderr,
    )
    return 0


def run_kl_command(args: argparse.Namespace) -> int:
    report = options.call_with_args(run_kl, args)
    out = atomic_write_json(report, args.json, indent=2)
    by_time = report["kl_by_time"]["mean"]
    active = (
        f"; {report['active_dimensions']} of {len(report['kl_by_dimension'])} latent dimensions "
        f"above {report['active_nats']} nats"
        if "active_dimensions" in report
        else ""
    )
    print(
        f"KL per frame {report['kl_per_frame']:.3f} nats ({report['sequences']} sequences, "
        f"{report['frames']} frames, teacher-forced); "
        f"by frame {by_time[0]:.2f} (z_1) .. {by_time[-1]:.2f} (z_{len(by_time)}){active} -> {out}"
        + (f", {report['plot']}" if "plot" in report else ""),
        file=sys.stderr,
    )
    return 0


def run_collisions_command(args: argparse.Namespace) -> int:
    try:
        return _collisions_and_write(args)
    except signals.Interrupted as err:  # one pass over the data: no partial result to keep
        print(
            f"svg-pyro analyze collisions: stopped by {signals.signal_name(err.signum)}; "
            f"no report was written ({args.json} untouched)",
            file=sys.stderr,
        )
        return err.exit_status


def _collisions_and_write(args: argparse.Namespace) -> int:
    report, sigma, bounces = options.call_with_args(run_collisions, args)
    if args.plot:
        report["plot"] = str(
            plot_collisions(
                sigma,
                bounces,
                args.plot,
                lag=args.lag,
                title=f"{report['variant']}: prior sigma vs wall hits (AUC {report['auc']:.3f})",
            )
        )
    out = atomic_write_json(report, args.json, indent=2)
    print(
        f"AUC {report['auc']:.4f} (lag {args.lag}); mean sigma at hits "
        f"{report['mean_sigma_hit']:.4f} vs others {report['mean_sigma_other']:.4f} "
        f"({report['n_hit']} / {report['n_other']} steps) -> {out}",
        file=sys.stderr,
    )
    return 0


def _add_testset(p: argparse.ArgumentParser, help: str) -> None:
    """``--testset`` (required) and ``--sequences`` (its first N; default all)."""
    p.add_argument("--testset", required=True, help=help)
    p.add_argument("--sequences", type=int, default=None, help="the first N (default: all)")


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register ``svg-pyro analyze`` (``collisions``, ``identity``, ``kl``)."""
    p = sub.add_parser("analyze", help="posterior and prior analyses of a trained model")
    kinds = p.add_subparsers(dest="analyze_command", required=True, metavar="ANALYSIS")
    _add_collisions(kinds)
    _add_identity(kinds)
    _add_kl(kinds)
    return p


def _add_collisions(kinds: Any) -> None:
    """``analyze collisions`` and its flags."""
    q = kinds.add_parser(
        "collisions",
        help="does the learned prior's sigma rise when a digit hits a wall? (ROC AUC)",
        description="Run SM-MNIST test sequences with recorded wall hits through the model and "
        "score how well the learned prior's standard deviation predicts the steps after a hit.",
    )
    options.add_checkpoint(q, "a learned-prior model")
    q.add_argument("--sequences", type=int, default=512, help="test sequences (default 512)")
    q.add_argument("--json", required=True, help="where to write the report")
    q.add_argument("--plot", default=None, help="also draw sigma over time (PNG)")
    q.add_argument(
        "--heatmap", default=None, help="ConvLSTM models: draw sigma maps over the frames (PNG)"
    )
    q.add_argument(
        "--frames", type=int, default=None, help="frames per sequence (default: training length)"
    )
    q.add_argument("--num-digits", type=int, default=None, help="default: the training data's")
    q.add_argument(
        "--deterministic",
        default=None,
        action=argparse.BooleanOptionalAction,
        help="deterministic bounces (default: the training data's)",
    )
    q.add_argument("--seed", type=int, default=0, help="test-sequence seed (default 0)")
    q.add_argument(
        "--lag",
        type=int,
        default=1,
        help="score z_t against a hit in frame t - LAG (default 1: the last frame its prior saw)",
    )
    q.add_argument(
        "--burn-in", type=int, default=0, help="leave out the first N latent steps (default 0)"
    )
    q.add_argument("--batch-size", type=int, default=64)
    options.add_device(q)
    q.add_argument("--mnist-root", default=None, help="folder with MNIST/raw IDX files")
    options.add_no_progress(q)


def _add_identity(kinds: Any) -> None:
    """``analyze identity`` and its flags."""
    r = kinds.add_parser(
        "identity",
        help="do forecast digits keep their identity? (frames until a digit is lost)",
        description="Sample forecasts of an SM-MNIST test set and count, per forecast, the "
        "predicted frames from the first on in which each digit's own image is found again "
        "(best-window correlation above a threshold calibrated on the true frames).",
    )
    options.add_checkpoint(r)
    _add_testset(r, "an svg-pyro data smmnist-testset .npz")
    r.add_argument("--n-past", type=int, default=5, help="context frames (default 5)")
    r.add_argument("--n-samples", type=int, default=20, help="forecasts per sequence (20)")
    r.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    r.add_argument(
        "--false-match", type=float, default=0.05, help="impostor pass rate (default 0.05)"
    )
    r.add_argument("--batch-size", type=int, default=16)
    r.add_argument("--json", required=True, help="where to write the report")
    options.add_device(r)
    r.add_argument("--mnist-root", default=None, help="for a set drawn from full MNIST")
    options.add_bn_train_mode(r, "sample the forecasts with BatchNorm in training mode")
    r.add_argument(
        "--plot",
        default=None,
        help="also draw the first sequences: truth, teacher-forced means (with "
        "--teacher-forced), one forecast (PNG)",
    )
    r.add_argument("--plot-sequences", type=int, default=2, help="sequences to draw (2)")
    r.add_argument(
        "--teacher-forced",
        action="store_true",
        help="also score the teacher-forced means (true inputs; posterior and prior z): is a "
        "digit lost in the rendering or in the rollout?",
    )


def _add_kl(kinds: Any) -> None:
    """``analyze kl`` and its flags."""
    k = kinds.add_parser(
        "kl",
        help="KL per frame of the training objective (has the posterior collapsed?)",
        description="KL(q(z_t | x_0..t) || p(z_t | x_0..t-1)) of every latent step of a test "
        "set's sequences, teacher-forced on the true frames, BatchNorm in eval mode: the mean "
        "per frame, per step (with 95% intervals) and per latent dimension.",
    )
    options.add_checkpoint(k, "a model with latents")
    _add_testset(k, "a .npz test set (svg-pyro data ...)")
    k.add_argument(
        "--frames",
        type=int,
        default=None,
        help="frames per sequence (default: the model's training length)",
    )
    # every model is scored teacher-forced now; the flag stays for older scripts
    k.add_argument("--teacher-forced", action="store_true", help=argparse.SUPPRESS)
    k.add_argument("--batch-size", type=int, default=64)
    k.add_argument("--seed", type=int, default=0, help="seed of the guide's draws (default 0)")
    k.add_argument("--json", required=True, help="where to write the report")
    k.add_argument("--plot", default=None, help="also draw the KL of every frame (PNG)")
    options.add_device(k)
    options.add_no_progress(k)
