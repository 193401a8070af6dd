"""The ``svg-pyro`` command line.

Commands: ``train``, ``plot-run``, ``data smmnist-testset``, ``demo``. Errors in what the user
asked for (a bad setting, a missing file) print one line on stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
import typing
from pathlib import Path
from typing import Any

from svg_pyro import data_cli, signals
from svg_pyro.config import PRESETS, SVGConfig, TrainConfig
from svg_pyro.errors import TrainingError, UsageError


# -- settings as flags ---------------------------------------------------------------------------
def _parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def add_setting_flags(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """Add ``--field-name`` for every SVGConfig and TrainConfig field (default: the preset's)."""
    for cls, title in ((SVGConfig, "model settings"), (TrainConfig, "training settings")):
        group = parser.add_argument_group(title)
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name in skip:
                continue
            hint = hints[f.name]
            kind = (
                _parse_bool
                if hint is bool
                else int
                if hint is int
                else float
                if hint is float
                else str
            )
            group.add_argument(
                "--" + f.name.replace("_", "-"),
                dest=f.name,
                type=kind,
                default=None,
                metavar=hint.__name__.upper() if isinstance(hint, type) else "VALUE",
                help=f"(default: the preset's; base default {f.default!r})",
            )


def settings_from_args(args: argparse.Namespace) -> dict[str, Any]:
    names = [f.name for f in dataclasses.fields(SVGConfig)] + [
        f.name for f in dataclasses.fields(TrainConfig)
    ]
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


# -- commands ------------------------------------------------------------------------------------
def cmd_train(args: argparse.Namespace) -> int:
    from svg_pyro.train import Trainer, build_configs

    model_cfg, train_cfg = build_configs(args.preset, **settings_from_args(args))
    trainer = Trainer(model_cfg, train_cfg, args.out, resume=args.resume, preset=args.preset)
    print(
        f"training {model_cfg.variant} ({args.preset}) on {trainer.device} -> {args.out} "
        f"(step {trainer.step} of {train_cfg.steps})",
        file=sys.stderr,
    )
    try:
        trainer.fit(progress=not args.no_progress)
    except signals.Interrupted as err:
        if trainer.dist.is_main:
            print(
                f"svg-pyro train: stopped by {signals.signal_name(err.signum)}: saved step "
                f"{err.step} of {train_cfg.steps} to {err.checkpoint}; resume with: "
                f"{_resume_command(args, trainer.dist.enabled)}",
                file=sys.stderr,
            )
        return err.exit_status
    print(f"checkpoint: {Path(args.out) / 'checkpoint.pt'}")
    return 0


def _resume_command(args: argparse.Namespace, under_torchrun: bool) -> str:
    """The command line that continues this run: the same one, with ``--resume``."""
    if under_torchrun:
        return "the same torchrun command with --resume"
    argv = list(
        getattr(args, "argv", None) or ["train", "--preset", args.preset, "--out", args.out]
    )
    if "--resume" not in argv:
        argv.append("--resume")
    return shlex.join(["svg-pyro", *argv])


def cmd_data_smmnist(args: argparse.Namespace) -> int:
    from svg_pyro.data import write_smmnist_testset, write_srvp_testset

    if args.protocol == "srvp":
        if args.mnist_root is None:
            raise UsageError("--protocol srvp needs --mnist-root (the MNIST test IDX files)")
        if args.num_digits != 2:
            raise UsageError("--protocol srvp is the 2-digit set")
        path = write_srvp_testset(
            args.mnist_root,
            args.out,
            sequences=args.sequences,
            frames=args.frames,
            deterministic=args.deterministic,
            progress=not args.no_progress,
        )
        print(path)
        return 0
    path = write_smmnist_testset(
        args.out,
        sequences=args.sequences,
        frames=args.frames,
        num_digits=args.num_digits,
        seed=args.seed,
        deterministic=args.deterministic,
        mnist_root=args.mnist_root,
        progress=not args.no_progress,
    )
    print(path)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from svg_pyro.demo import run_demo

    paths = run_demo(args.out, steps=args.steps, progress=not args.no_progress)
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


def cmd_plot_run(args: argparse.Namespace) -> int:
    from svg_pyro.viz import plot_runs

    print(plot_runs(args.runs, args.out))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="svg-pyro",
        description="Stochastic Video Generation with a Learned Prior, as a Pyro program.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train a model (SVI on the negative ELBO)")
    p.add_argument(
        "--preset", default="smmnist", help=f"one of {sorted(PRESETS)} (default smmnist)"
    )
    p.add_argument("--out", required=True, help="run folder (checkpoint, metrics, config)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_setting_flags(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "plot-run", help="training and held-out curves of runs vs steps and wall time (one PNG)"
    )
    p.add_argument("runs", nargs="+", metavar="DIR", help="run folders (with metrics.jsonl)")
    p.add_argument("--out", default="runs.png", help="PNG to write (default runs.png)")
    p.set_defaults(func=cmd_plot_run)

    p = sub.add_parser("data", help="write fixed test sets")
    data_sub = p.add_subparsers(dest="data_command", required=True, metavar="KIND")
    q = data_sub.add_parser("smmnist-testset", help="a fixed Stochastic Moving MNIST test set")
    q.add_argument("--out", required=True, help="output .npz file")
    q.add_argument("--sequences", type=int, default=5000)
    q.add_argument("--frames", type=int, default=25)
    q.add_argument("--num-digits", type=int, default=2)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--deterministic", action="store_true", help="deterministic bounces")
    q.add_argument("--mnist-root", default=None, help="folder with MNIST/raw IDX files")
    q.add_argument(
        "--protocol",
        choices=["svg", "srvp"],
        default="svg",
        help="svg: this package's seeded set (default); srvp: SRVP's fixed set of 28x28 digits "
        "from the MNIST test files (needs --mnist-root; SRVP's file layout, seed 42)",
    )
    q.add_argument("--no-progress", action="store_true")
    q.set_defaults(func=cmd_data_smmnist)
    data_cli.add_parsers(data_sub)  # kth-testset, bair-testset

    p = sub.add_parser("demo", help="train `tiny` on CPU for a few minutes; write a GIF and curves")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_demo)
    from svg_pyro import evaluate, sample  # their own modules register `evaluate` and `sample`

    evaluate.add_parser(sub)
    sample.add_parser(sub)
    from svg_pyro import analysis  # `analyze collisions`

    analysis.add_parser(sub)
    from svg_pyro import bench  # `bench`

    bench.add_parser(sub)
    from svg_pyro import pretrained  # `export-weights`

    pretrained.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        with signals.raising():  # SIGTERM as well as SIGINT: one line and 128 + signal number
            return int(args.func(args) or 0)
    except (UsageError, ValueError, FileNotFoundError, NotADirectoryError) as err:
        print(f"svg-pyro {args.command}: error: {err}", file=sys.stderr)
        return 2
    except TrainingError as err:  # the run failed, not the request
        print(f"svg-pyro {args.command}: {err}", file=sys.stderr)
        return 1
    except signals.Interrupted as err:
        print(
            f"svg-pyro {args.command}: stopped by {signals.signal_name(err.signum)}",
            file=sys.stderr,
        )
        return err.exit_status
    except KeyboardInterrupt:
        print("svg-pyro: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
