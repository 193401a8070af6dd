"""The ``svg-pyro`` command line: :func:`main` registers every command of this package in one loop.

Commands (each is the module of this package named beside it, which exposes
``add_parser(subparsers)`` and ``run(args)``; shared flags come from :mod:`svg_pyro.options`)::

    train                 train a model (a preset plus --field-name settings)  train
    plot-run              training and held-out curves of run folders          plot_run
    data smmnist-testset  a fixed Stochastic Moving MNIST test set (.npz)      data
    data kth-testset      a fixed KTH test set from the .avi files             data
    data bair-testset     the BAIR test set from .tfrecords or PNGs            data
    demo                  the shipped model's futures, then a few CPU minutes  demo
    evaluate              best/mean/worst-of-K SSIM and PSNR, IWAE             evaluate
    sample                GIFs and PNG grids of sampled futures                sample
    analyze collisions    does the prior's sigma rise at wall hits? (ROC AUC)  analyze
    analyze identity      do forecast digits keep their identity? (frames)     analyze
    analyze kl            the KL per frame (has the posterior collapsed?)      analyze
    bench                 time training steps or sampling; FLOPs and memory    bench
    recalibrate-bn        BatchNorm statistics of the model's own forecasts    recalibrate_bn
    export-weights        a checkpoint's weights as a shipped model            export_weights
    models                the shipped models (names for --checkpoint)          models

A flag the command does not know gets that command's usage and the closest flag it has; the
folder of a report (``--json``, ``--plot``, ``--markdown``) is created when missing, and said.

Errors in what the user asked for (a bad setting, a missing file) print one line on stderr and
exit with status 2.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

from svg_pyro import signals
from svg_pyro.commands import (
    analyze,
    bench,
    data,
    demo,
    evaluate,
    export_weights,
    models,
    plot_run,
    recalibrate_bn,
    sample,
    train,
)
from svg_pyro.device import retain_freed_memory
from svg_pyro.errors import TrainingError, UsageError

# In the order ``svg-pyro --help`` lists them.
COMMANDS = (
    train,
    plot_run,
    data,
    demo,
    evaluate,
    sample,
    analyze,
    bench,
    recalibrate_bn,
    export_weights,
    models,
)

#: Flags that name a file a command writes: their folder is created when missing, and said.
REPORT_FLAGS = ("json", "plot", "markdown")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="svg-pyro",
        description="Stochastic Video Generation with a Learned Prior, as a Pyro program.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.add_parser(sub).set_defaults(func=module.run)
    return parser


def _command_parser(parser: argparse.ArgumentParser, args: argparse.Namespace):
    """The (sub)parser that parsed ``args``' command, e.g. ``analyze kl``'s."""
    while parser._subparsers is not None:
        action = next(a for a in parser._subparsers._group_actions if a.choices)
        name = getattr(args, action.dest, None)
        if name not in action.choices:
            break
        parser = action.choices[name]
    return parser


def parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """``parser.parse_args``, except that a flag the command does not know is reported with that
    command's usage and, where one is close, the flag it may have meant (exit status 2)."""
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        command = _command_parser(parser, args)
        flags = [s for a in command._actions for s in a.option_strings if s.startswith("--")]
        hints = []
        for word in unknown:
            close = difflib.get_close_matches(word.split("=")[0], flags, n=1, cutoff=0.6)
            if word.startswith("-") and close:
                hints.append(f"did you mean {close[0]} for {word}?")
        command.error(f"unrecognized arguments: {' '.join(unknown)}" + "".join(
            f"; {h}" for h in hints))  # fmt: skip
    return args


def make_report_folders(args: argparse.Namespace) -> None:
    """Create the missing folder of each report the command will write, and say so."""
    for flag in REPORT_FLAGS:
        value = getattr(args, flag, None)
        if isinstance(value, str) and value and not Path(value).parent.exists():
            Path(value).parent.mkdir(parents=True)
            print(f"svg-pyro: created folder {Path(value).parent} for --{flag}", file=sys.stderr)


def path_error(err: OSError) -> str:
    """One line for a path of the wrong kind: a file where a folder goes, or the other way."""
    name = err.filename if err.filename is not None else "a path"
    if isinstance(err, FileExistsError) or (
        isinstance(err, NotADirectoryError) and Path(name).is_file()
    ):
        return f"{name} is a file, where a folder is expected (give a folder's path)"
    if isinstance(err, IsADirectoryError):
        return f"{name} is a folder, where a file is expected (give a file's path)"
    return f"{name}: {err.strerror or err}"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parse(parser, argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    retain_freed_memory()  # every command runs tensor work; see its docstring
    try:
        make_report_folders(args)
        with signals.raising():  # SIGTERM as well as SIGINT: one line and 128 + signal number
            return int(args.func(args) or 0)
    except (FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError) as err:
        print(f"svg-pyro {args.command}: error: {path_error(err)}", file=sys.stderr)
        return 2
    except (UsageError, ValueError, FileNotFoundError) as err:
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
