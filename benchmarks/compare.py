"""svg-pyro against the plain-PyTorch loop, side by side, alternating, in one process.

Three training steps on the same random batch, the same networks and sizes:

* ``svg-pyro``: :meth:`svg_pyro.train.Trainer.train_step`, what training runs (the Pyro loss,
  the speed settings given by ``--precision/--compile/--channels-last``, fused Adam);
* ``direct``: the same step, the same networks and optimizer, with the loss computed without Pyro
  (:class:`svg_pyro.bench.DirectSVGLoss`): the difference is Pyro's own overhead;
* ``plain-loop``: ``benchmarks/plain_svg.py``, the original release's loop (fp32, eager);
* with ``--with-plain-skips``, also ``svg-pyro-plain-skips``: the svg-pyro step decoding every
  frame's skip convolutions (without :mod:`svg_pyro.skipshare`), to measure that lever.

Each round times ``--steps`` steps of each, in an order that reverses every round, so that a
machine shared with other work slows all of them alike; the matmul throughput is probed in every
round too. Prints one JSON line: the median ratio of sequences per second (svg-pyro / plain) with
its spread over rounds, Pyro's overhead, and each implementation's ``svg-pyro bench`` record
(its step time being the median over rounds).

    python benchmarks/compare.py --rounds 5 --steps 2 --warmup 1 [svg-pyro bench flags]
    python benchmarks/compare.py --size smmnist-cpu --rounds 5   # the CPU recipe's size
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import plain_svg  # noqa: E402

from svg_pyro import bench  # noqa: E402

UNSHARED = "svg-pyro-plain-skips"


def _spread(values: list[float]) -> dict[str, Any]:
    return {
        "median": round(statistics.median(values), 4),
        "min": round(min(values), 4),
        "max": round(max(values), 4),
        "rounds": [round(v, 4) for v in values],
    }


def compare(args: argparse.Namespace) -> dict[str, Any]:
    """Run the alternating rounds; return the summary record."""
    if args.mode != "train":
        raise ValueError("compare times training only (--mode train)")
    if args.rounds < 1:
        raise ValueError("--rounds must be >= 1")
    if args.rnn != "fc":
        raise ValueError("the plain loop is the original's (fully connected LSTMs): --rnn fc")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    model_cfg, train_cfg = bench.model_config(args), bench.train_config(args)
    ours = bench.SVGBench(model_cfg, train_cfg)
    try:
        device = ours.device
        plain = plain_svg.PlainTrainer(model_cfg, lr=train_cfg.lr, device=device)
        plain.net.load_from(ours.svg)  # the same starting weights
        frames = ours.frames
        skips = bench.skip_decoding(ours.svg, args.shared_skips)
        skips.__enter__()  # for the whole comparison; ours.close() drops the networks
        steps = {
            "svg-pyro": ours.train_step,
            "direct": ours.direct_step,
            "plain-loop": lambda: plain.step(frames),
        }
        if args.no_direct:
            del steps["direct"]
        if args.with_plain_skips:
            steps[UNSHARED] = ours.plain_skips_step
        for step in steps.values():
            for _ in range(args.warmup):
                step()
        times: dict[str, list[float]] = {k: [] for k in steps}
        peaks: dict[str, int] = {k: 0 for k in steps}
        matmuls: list[float] = []
        for r in range(args.rounds):
            order = list(steps) if r % 2 == 0 else list(reversed(steps))
            for name in order:
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                times[name].append(bench.time_steps(steps[name], args.steps, device))
                if device.type == "cuda":
                    peaks[name] = max(peaks[name], torch.cuda.max_memory_allocated(device))
            if not args.no_count:
                matmuls.append(bench.matmul_flops_per_s(device, args.precision))
            ratio = times["plain-loop"][-1] / times["svg-pyro"][-1]
            print(
                f"round {r + 1}/{args.rounds}: "
                + ", ".join(f"{k} {1e3 * v[-1]:.1f} ms" for k, v in times.items())
                + f"; ratio {ratio:.3f}"
                + (
                    f", with plain skips {times['plain-loop'][-1] / times[UNSHARED][-1]:.3f}"
                    if UNSHARED in times
                    else ""
                ),
                file=sys.stderr,
                flush=True,
            )
        matmul = statistics.median(matmuls) if matmuls else None
        matmul_fp32 = None
        if not args.no_count and args.precision != "fp32":
            matmul_fp32 = bench.matmul_flops_per_s(device, "fp32")
        costs: dict[str, Any] = {k: None for k in steps}
        if not args.no_count:
            run, params = bench.svg_cost_runner(
                model_cfg, args.precision, "train", args.shared_skips
            )
            with bench._quiet():
                costs["svg-pyro"] = bench.count_cost(run, args.batch_size, params)
            costs["direct"] = costs["svg-pyro"]
            if UNSHARED in steps:
                run, params = bench.svg_cost_runner(model_cfg, args.precision, shared_skips=False)
                with bench._quiet():
                    costs[UNSHARED] = bench.count_cost(run, args.batch_size, params)
            run, params = plain_svg.plain_cost_runner(model_cfg)
            costs["plain-loop"] = bench.count_cost(run, args.batch_size, params)
        plain_args = copy.copy(args)
        plain_args.precision, plain_args.compile, plain_args.channels_last = "fp32", False, False
        plain_args.shared_skips = False
        unshared_args = copy.copy(args)
        unshared_args.shared_skips = False
        n_params = sum(p.numel() for p in ours.svg.parameters())
        records = {}
        for name in steps:
            is_plain = name == "plain-loop"
            records[name] = bench.make_record(
                impl=name,
                args=plain_args if is_plain else unshared_args if name == UNSHARED else args,
                config=model_cfg,
                device=device,
                step_s=statistics.median(times[name]),
                cost=costs[name],
                matmul=matmul_fp32 if (is_plain and matmul_fp32) else matmul,
                params=n_params,
                peak_memory=peaks[name] if device.type == "cuda" else None,
            )
        ratios = [p / o for p, o in zip(times["plain-loop"], times["svg-pyro"])]
        out: dict[str, Any] = {
            "ratio_seq_per_s": _spread(ratios),
            # fastest step of each over all rounds: the least disturbed by other work
            "ratio_best": round(min(times["plain-loop"]) / min(times["svg-pyro"]), 4),
            "device": bench.device_name(device),
            "threads": torch.get_num_threads(),
            "rounds": args.rounds,
            "steps_per_round": args.steps,
        }
        if UNSHARED in times:
            out["ratio_plain_skips"] = _spread(
                [p / o for p, o in zip(times["plain-loop"], times[UNSHARED])]
            )
            out["ratio_plain_skips"]["best"] = round(
                min(times["plain-loop"]) / min(times[UNSHARED]), 4
            )
        if "direct" in times:
            overhead = [(o - d) / o for o, d in zip(times["svg-pyro"], times["direct"])]
            out["pyro_overhead"] = _spread(overhead)
            best_o, best_d = min(times["svg-pyro"]), min(times["direct"])
            out["pyro_overhead_best"] = round((best_o - best_d) / best_o, 4)
        out["records"] = records
        return out
    finally:
        ours.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    bench.add_bench_arguments(parser)
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (5)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--no-direct", action="store_true", help="skip the Pyro-free step")
    parser.add_argument(
        "--with-plain-skips",
        action="store_true",
        help="also time the svg-pyro step without shared-skip decoding",
    )
    args = bench.resolve_size(parser.parse_args(argv))
    try:
        out = compare(args)
    except ValueError as err:
        print(f"compare: error: {err}", file=sys.stderr)
        return 2
    r = out["ratio_seq_per_s"]
    print(
        f"svg-pyro / plain loop, sequences per second: {r['median']:.3f} "
        f"(min {r['min']:.3f}, max {r['max']:.3f}, {out['rounds']} rounds; "
        f"fastest steps {out['ratio_best']:.3f})"
        + (
            f"; Pyro overhead {100 * out['pyro_overhead']['median']:.1f}% of a step"
            if "pyro_overhead" in out
            else ""
        ),
        file=sys.stderr,
    )
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
