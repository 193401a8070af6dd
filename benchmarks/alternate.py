"""Two installs of svg-pyro timed against each other on the bench's workload, alternating.

Each round runs ``OLD/python benchmarks/steptime.py FLAGS`` and then the NEW one (the order
reverses every round), each in a fresh process with ``OMP_NUM_THREADS`` set, so that a machine
shared with other work slows both alike. ``FLAGS`` are ``svg-pyro bench`` flags. Prints each
round and one JSON line: per side the median wall and CPU time per step, and the medians of
the per-round speed-ups (old / new) in wall and in CPU time.

    python benchmarks/alternate.py --old /work/wt-base/.venv/bin/python \\
        --new .venv/bin/python --threads 1 --rounds 5 -- \\
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
from pathlib import Path

STEPTIME = Path(__file__).resolve().parent / "steptime.py"


def time_once(python: str, threads: int, flags: list[str]) -> dict:
    """``steptime.py``'s record from a fresh process of ``python`` on ``threads`` threads."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    proc = subprocess.run(
        [python, str(STEPTIME), *flags], capture_output=True, text=True, env=env, check=True
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", required=True, help="the old install's python")
    parser.add_argument("--new", required=True, help="the new install's python")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("flags", nargs="*", help="svg-pyro bench flags (after --)")
    args = parser.parse_args(argv)
    recs: dict[str, list[dict]] = {"old": [], "new": []}
    for r in range(args.rounds):
        for side in ["old", "new"] if r % 2 == 0 else ["new", "old"]:
            recs[side].append(time_once(getattr(args, side), args.threads, args.flags))
        old, new = recs["old"][-1], recs["new"][-1]
        print(
            f"round {r + 1}: wall {old['wall_ms']:.0f} -> {new['wall_ms']:.0f} ms "
            f"(x{old['wall_ms'] / new['wall_ms']:.2f}), CPU {old['cpu_ms']:.0f} -> "
            f"{new['cpu_ms']:.0f} ms (x{old['cpu_ms'] / new['cpu_ms']:.2f})",
            file=sys.stderr,
            flush=True,
        )
    out: dict = {"threads": args.threads, "flags": args.flags, "rounds": args.rounds}
    for key in ("wall_ms", "cpu_ms"):
        old = [r[key] for r in recs["old"]]
        new = [r[key] for r in recs["new"]]
        ups = [o / n for o, n in zip(old, new)]
        out[key] = {
            "old": [round(v, 1) for v in old],
            "new": [round(v, 1) for v in new],
            "old_median": _median(old),
            "new_median": _median(new),
            "speedup_median": _median(ups),
            "speedup_min": _median([min(ups)]),
            "speedup_max": _median([max(ups)]),
        }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
