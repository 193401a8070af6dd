"""The ``svg-pyro`` command line.

Commands (each lives in the module named beside it, which exposes ``add_parser(subparsers)`` and
``run(args)``; shared flags come from :mod:`svg_pyro.options`)::

    train                 train a model (a preset plus --field-name settings)  train_cli
    plot-run              training and held-out curves of run folders          plot_run
    data smmnist-testset  a fixed Stochastic Moving MNIST test set (.npz)      data_cli
    data kth-testset      a fixed KTH test set from the .avi files             data_cli
    data bair-testset     the BAIR test set from .tfrecords or PNGs            data_cli
    demo                  the shipped model's futures, then a few CPU minutes  demo
    evaluate              best/mean/worst-of-K SSIM and PSNR, IWAE             evaluate
    sample                GIFs and PNG grids of sampled futures                sample
    analyze collisions    does the prior's sigma rise at wall hits? (ROC AUC)  analysis.command
    analyze identity      do forecast digits keep their identity? (frames)     analysis.command
    bench                 time training steps or sampling; FLOPs and memory    bench
    recalibrate-bn        BatchNorm statistics of the model's own forecasts    rollout_bn_cli
    export-weights        a checkpoint's weights as a shipped model            export_weights

Errors in what the user asked for (a bad setting, a missing file) print one line on stderr and
exit with status 2.
"""

from __future__ import annotations

import argparse
import sys

from svg_pyro import (
    bench,
    data_cli,
    demo,
    evaluate,
    export_weights,
    plot_run,
    rollout_bn_cli,
    sample,
    signals,
    train_cli,
)
from svg_pyro.analysis import command as analyze
from svg_pyro.device import retain_freed_memory
from svg_pyro.errors import TrainingError, UsageError

# In the order ``svg-pyro --help`` lists them.
COMMANDS = (
    train_cli,
    plot_run,
    data_cli,
    demo,
    evaluate,
    sample,
    analyze,
    bench,
    rollout_bn_cli,
    export_weights,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="svg-pyro",
        description="Stochastic Video Generation with a Learned Prior, as a Pyro program.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.add_parser(sub).set_defaults(func=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    retain_freed_memory()  # every command runs tensor work; see its docstring
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
