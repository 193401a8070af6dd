"""Two installs of svg-pyro timed against each other: ``svg-pyro bench`` runs, alternating.

Each round runs ``OLD/svg-pyro bench --json --no-count FLAGS`` and then ``NEW/...`` (the order
reverses every round), each in a fresh process with ``OMP_NUM_THREADS`` set, so that a machine
shared with other work slows both alike. Prints each round and one JSON line: the median step
time of each side and the median of the per-round speed-ups (old step / new step).

    python benchmarks/alternate.py --old /work/wt-base/.venv/bin/svg-pyro \\
        --new .venv/bin/svg-pyro --threads 1 --rounds 5 -- \\
        --nf 8 --g-dim 64 --z-dim 8 --rnn-size 128 --batch-size 32 --channels-last

(Give the sizes as explicit flags when the old install predates ``--size``.)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys


def bench_once(exe: str, threads: int, flags: list[str]) -> dict:
    """One ``svg-pyro bench`` record from a fresh process on ``threads`` threads."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    proc = subprocess.run(
        [exe, "bench", "--json", "--no-count", *flags],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", required=True, help="the old install's svg-pyro executable")
    parser.add_argument("--new", required=True, help="the new install's svg-pyro executable")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("flags", nargs="*", help="svg-pyro bench flags (after --)")
    args = parser.parse_args(argv)
    steps: dict[str, list[float]] = {"old": [], "new": []}
    for r in range(args.rounds):
        order = ["old", "new"] if r % 2 == 0 else ["new", "old"]
        for side in order:
            rec = bench_once(getattr(args, side), args.threads, args.flags)
            steps[side].append(rec["step_ms"])
        print(
            f"round {r + 1}: old {steps['old'][-1]:.1f} ms, new {steps['new'][-1]:.1f} ms, "
            f"x{steps['old'][-1] / steps['new'][-1]:.2f}",
            file=sys.stderr,
            flush=True,
        )
    speedups = [o / n for o, n in zip(steps["old"], steps["new"])]
    out = {
        "threads": args.threads,
        "flags": args.flags,
        "old_step_ms": steps["old"],
        "new_step_ms": steps["new"],
        "old_median_ms": round(statistics.median(steps["old"]), 1),
        "new_median_ms": round(statistics.median(steps["new"]), 1),
        "speedup_median": round(statistics.median(speedups), 3),
        "speedup_min": round(min(speedups), 3),
        "speedup_max": round(max(speedups), 3),
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
