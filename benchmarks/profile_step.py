"""Where a training step's time goes: ``torch.profiler`` over ``svg-pyro bench``'s step.

Takes the ``svg-pyro bench`` flags (``--size smmnist-cpu`` etc.; the sizes may be given as
explicit flags for an install without ``--size``), runs ``--warmup`` steps, profiles ``--steps``
steps and prints the self time per step of each kind of kernel (convolutions, BatchNorm,
LeakyReLU, LSTMs, fill/copy/cat, other elementwise, the rest) and the ``--top`` most expensive
(operator, input shapes) pairs, with the step's wall time under the profiler.

    OMP_NUM_THREADS=1 python benchmarks/profile_step.py --size smmnist-cpu --steps 3 --warmup 1
"""

from __future__ import annotations

import argparse
import sys
import time

from steptime import warmed_step  # benchmarks/ is on the path when run as a script
from torch.profiler import ProfilerActivity, profile

KINDS = {
    "convolution": ("convolution", "FewOutConvTranspose"),
    "batch norm": ("batch_norm",),
    "leaky relu": ("leaky_relu",),
    "lstm": ("rnn",),
    "fill / copy / cat": ("fill_", "copy_", "cat", "zero_", "index"),
    "elementwise": ("add", "mul", "sub", "pow", "div", "neg", "log", "exp", "sum", "mean",
                    "sigmoid", "tanh", "where", "clamp", "mm"),
}  # fmt: skip


def kind(op: str) -> str:
    """The row of the summary an operator's self time is counted in."""
    return next((k for k, keys in KINDS.items() if any(s in op for s in keys)), "other")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--top", type=int, default=20, help="rows of (operator, shapes)")
    with warmed_step(parser, argv) as (args, step):
        start = time.perf_counter()
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            for _ in range(args.steps):
                step()
        wall = (time.perf_counter() - start) / args.steps
    per_step = 1e3 * args.steps  # profiler times are microseconds: -> ms per step
    totals: dict[str, float] = {}
    for e in prof.key_averages():
        if e.key.startswith("aten::") or e.key == "FewOutConvTranspose":
            totals[kind(e.key)] = totals.get(kind(e.key), 0.0) + e.self_cpu_time_total
    ops = sum(totals.values())
    print(
        f"step under the profiler: {1e3 * wall:.1f} ms; operators' self time {ops / per_step:.1f}"
    )
    print("| kind | ms per step | share of operator time |\n| --- | --- | --- |")
    for k, v in sorted(totals.items(), key=lambda kv: -kv[1]):
        print(f"| {k} | {v / per_step:.1f} | {100 * v / ops:.0f}% |")
    rows = sorted(
        prof.key_averages(group_by_input_shape=True), key=lambda e: -e.self_cpu_time_total
    )[: args.top]
    print("\n| operator | input shapes | calls per step | ms per step |\n| --- | --- | --- | --- |")
    for e in rows:
        shapes = ", ".join(str(s) for s in e.input_shapes[:3] if s)
        ms = e.self_cpu_time_total / per_step
        print(f"| {e.key} | {shapes} | {e.count // args.steps} | {ms:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
