"""Seconds per step, wall and CPU, of ``svg-pyro bench``'s workload, measured in one process.

Runs with whichever svg-pyro the interpreter imports (so ``OLD/python benchmarks/steptime.py``
times an old install), takes the ``svg-pyro bench`` flags, and prints one JSON line:
``wall_ms`` and ``cpu_ms`` (user + system time of this process) per step over ``--steps`` steps
after ``--warmup``. On a machine shared with other work, CPU time per step moves far less than
wall time on one thread; on several threads it also counts threads spinning at barriers.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator

from svg_pyro import bench


@contextlib.contextmanager
def warmed_step(
    parser: argparse.ArgumentParser, argv: list[str] | None = None
) -> Iterator[tuple[argparse.Namespace, Callable[[], object]]]:
    """``svg-pyro bench``'s step (``--mode``) of the flags in ``argv`` (added to ``parser``),
    after its ``--warmup`` steps: yields ``(args, step)``, closes the runner on exit. Shared with
    ``profile_step.py``."""
    bench.add_bench_arguments(parser)
    args = parser.parse_args(argv)
    getattr(bench, "resolve_size", lambda a: a)(args)  # an install from before --size
    runner = bench.SVGBench(bench.model_config(args), bench.train_config(args), args.samples)
    step = runner.train_step if args.mode == "train" else runner.sample_step
    try:
        for _ in range(args.warmup):
            step()
        yield args, step
    finally:
        runner.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    with warmed_step(parser, argv) as (args, step):
        cpu0, wall0 = os.times(), time.perf_counter()
        for _ in range(args.steps):
            step()
        cpu1, wall1 = os.times(), time.perf_counter()
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    n = args.steps
    print(json.dumps({"wall_ms": 1e3 * (wall1 - wall0) / n, "cpu_ms": 1e3 * cpu / n}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
