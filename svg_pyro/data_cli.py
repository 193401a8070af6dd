"""``svg-pyro data kth-testset`` and ``svg-pyro data bair-testset``: fixed test sets from files."""

from __future__ import annotations

import argparse


def cmd_kth_testset(args: argparse.Namespace) -> int:
    from svg_pyro.data import write_kth_testset

    sequences: bool | str = False if args.whole_clips else (args.sequences_file or True)
    path = write_kth_testset(
        args.root,
        args.out,
        sequences=args.sequences,
        frames=args.frames,
        seed=args.seed,
        cache_dir=args.cache_dir,
        sequences_file=sequences,
        progress=not args.no_progress,
    )
    print(path)
    return 0


def cmd_bair_testset(args: argparse.Namespace) -> int:
    from svg_pyro.data import write_bair_testset

    path = write_bair_testset(
        args.root, args.out, frames=args.frames, source=args.source, progress=not args.no_progress
    )
    print(path)
    return 0


def add_parsers(data_sub: argparse._SubParsersAction) -> None:
    """Add the KTH and BAIR test-set commands under ``svg-pyro data``."""
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
    q.add_argument("--no-progress", action="store_true")
    q.set_defaults(func=cmd_kth_testset)

    q = data_sub.add_parser(
        "bair-testset", help="every BAIR test sequence (.tfrecords or PNG tree) as one .npz"
    )
    q.add_argument(
        "--root", required=True, help="folder holding softmotion30_44k/ or processed_data/"
    )
    q.add_argument("--out", required=True, help="output .npz file")
    q.add_argument("--frames", type=int, default=30, help="frames a sequence (default 30)")
    q.add_argument("--source", choices=["auto", "tfrecord", "png"], default="auto")
    q.add_argument("--no-progress", action="store_true")
    q.set_defaults(func=cmd_bair_testset)
