"""``svg-pyro data KIND``: write fixed test sets (``smmnist-testset``, ``kth-testset``,
``bair-testset``) as ``.npz`` files that every ``--testset`` option reads."""

from __future__ import annotations

import argparse
from typing import Any

from svg_pyro import options
from svg_pyro.data import (
    write_bair_testset,
    write_kth_testset,
    write_smmnist_testset,
    write_srvp_testset,
)
from svg_pyro.errors import UsageError


def cmd_smmnist_testset(args: argparse.Namespace) -> int:
    if args.protocol == "srvp":
        if args.mnist_root is None:
            raise UsageError("--protocol srvp needs --mnist-root (the MNIST test IDX files)")
        if args.num_digits != 2:
            raise UsageError("--protocol srvp is the 2-digit set")
        print(options.call_with_args(write_srvp_testset, args))
        return 0
    print(options.call_with_args(write_smmnist_testset, args))
    return 0


def cmd_kth_testset(args: argparse.Namespace) -> int:
    sequences: bool | str = False if args.whole_clips else (args.sequences_file or True)
    print(options.call_with_args(write_kth_testset, args, sequences_file=sequences))
    return 0


def cmd_bair_testset(args: argparse.Namespace) -> int:
    print(options.call_with_args(write_bair_testset, args))
    return 0


def run(args: argparse.Namespace) -> int:
    """``svg-pyro data KIND``: the writer of that kind of test set."""
    return args.data_run(args)


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register ``svg-pyro data`` and its three kinds of test set."""
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
    options.add_no_progress(q)
    q.set_defaults(data_run=cmd_smmnist_testset)
    q = data_sub.add_parser(
        "kth-testset",
        help="a fixed, seeded KTH test set (persons 21-25) from the original .avi files",
    )
    q.add_argument("--root", required=True, help="folder with personNN_action_dK_uncomp.avi files")
    q.add_argument("--out", required=True, help="output .npz file")
    q.add_argument("--sequences", type=int, default=1000, help="clips to draw (default 1000)")
    q.add_argument("--frames", type=int, default=40, help="frames a clip (default 40)")
    q.add_argument("--seed", type=int, default=42, help="seed of the clip draw (default 42)")
    q.add_argument(
        "--cache-dir", default=None, help="decoded-frame cache (default ROOT/.svg_pyro_cache/kth64)"
    )
    q.add_argument(
        "--sequences-file", default=None, help="00sequences.txt to use (default: one under ROOT)"
    )
    q.add_argument("--whole-clips", action="store_true", help="ignore 00sequences.txt")
    options.add_no_progress(q)
    q.set_defaults(data_run=cmd_kth_testset)

    q = data_sub.add_parser(
        "bair-testset", help="every BAIR test sequence (.tfrecords or PNG tree) as one .npz"
    )
    q.add_argument(
        "--root", required=True, help="folder holding softmotion30_44k/ or processed_data/"
    )
    q.add_argument("--out", required=True, help="output .npz file")
    q.add_argument("--frames", type=int, default=30, help="frames a sequence (default 30)")
    q.add_argument("--source", choices=["auto", "tfrecord", "png"], default="auto")
    options.add_no_progress(q)
    q.set_defaults(data_run=cmd_bair_testset)
    return p
