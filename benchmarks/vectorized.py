"""Pyro's vectorized inference on SVG against its sequential counterparts, alternating, one process.

* ``forecast``: K futures of B contexts with the shipped ``smmnist-lp`` (eval mode) by
  ``svg.generate`` (one batched pass of K x B sequences), ``Predictive(svg.model,
  guide=svg.guide, parallel=True)`` (one batched pass, plus Pyro's two shape-finding runs of
  guide and model) and ``Predictive(..., parallel=False)`` (K passes of B sequences).
* ``particles``: one training step (loss, backward) of ``SVGLoss(num_particles=K)`` (the K
  particles vectorized) against K particles run one after another (``SVGELBO`` with
  ``vectorize_particles=False``), at the shipped recipe's sizes (``smmnist-cpu``), batch B.

Each round times every variant once, in an order that reverses every round; prints one JSON line
with each variant's median seconds over rounds and the ratios to the fastest.

    python benchmarks/vectorized.py --rounds 5 --threads 2
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable

import pyro
import torch
from pyro.infer import Predictive

import svg_pyro
from svg_pyro import SVG, SVGLoss
from svg_pyro.config import build_configs
from svg_pyro.elbo import SVGELBO


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def forecast_variants(k: int, b: int, p: int, f: int) -> dict[str, Callable[[], object]]:
    svg = svg_pyro.load_pretrained("smmnist-lp")  # eval mode
    context = torch.rand(b, p, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    sites = [f"x_hat_{t}" for t in range(p, p + f)]

    def predictive(parallel: bool) -> Callable[[], object]:
        pred = Predictive(svg.model, guide=svg.guide, num_samples=k, parallel=parallel)
        pred.return_sites = sites
        return lambda: pred(context, f)

    return {
        "generate": lambda: svg.generate(context, f, k),
        "predictive_parallel": predictive(True),
        "predictive_sequential": predictive(False),
    }


def particle_variants(k: int, b: int) -> dict[str, Callable[[], object]]:
    model_cfg, _ = build_configs("smmnist-cpu")
    svg = SVG(model_cfg)
    frames = torch.rand(b, model_cfg.seq_len, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    vectorized = SVGLoss(svg, num_particles=k)
    sequential = SVGLoss(svg, num_particles=k)
    sequential.elbo = SVGELBO(num_particles=k, vectorize_particles=False, max_plate_nesting=1)

    def step(loss: SVGLoss) -> Callable[[], object]:
        def run() -> None:
            svg.zero_grad(set_to_none=True)
            loss(frames).backward()

        return run

    return {"particles_vectorized": step(vectorized), "particles_sequential": step(sequential)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--samples", type=int, default=10, help="forecast: K samples")
    ap.add_argument("--sequences", type=int, default=4, help="forecast: B contexts")
    ap.add_argument("--n-past", type=int, default=5)
    ap.add_argument("--n-future", type=int, default=10)
    ap.add_argument("--particles", type=int, default=4, help="training: K particles")
    ap.add_argument("--batch-size", type=int, default=8, help="training: B sequences")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    pyro.set_rng_seed(0)
    groups = {
        "forecast": forecast_variants(args.samples, args.sequences, args.n_past, args.n_future),
        "particles": particle_variants(args.particles, args.batch_size),
    }
    times: dict[str, list[float]] = {name: [] for g in groups.values() for name in g}
    with pyro.validation_enabled(False):
        for g in groups.values():  # warm up
            for fn in g.values():
                fn()
        for r in range(args.rounds):
            for g in groups.values():
                names = list(g) if r % 2 == 0 else list(reversed(g))
                for name in names:
                    t0 = time.perf_counter()
                    g[name]()
                    times[name].append(time.perf_counter() - t0)
    out: dict[str, object] = {
        "cpu": cpu_name(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "pyro": pyro.__version__,
        "rounds": args.rounds,
        "forecast": {"samples": args.samples, "sequences": args.sequences,
                     "n_past": args.n_past, "n_future": args.n_future},
        "training": {"particles": args.particles, "batch_size": args.batch_size,
                     "preset": "smmnist-cpu"},
    }  # fmt: skip
    for gname, g in groups.items():
        med = {n: statistics.median(times[n]) for n in g}
        fastest = min(med.values())
        out[gname + "_seconds"] = {
            n: {"median": round(m, 3), "x_fastest": round(m / fastest, 2),
                "rounds": [round(v, 3) for v in times[n]]}
            for n, m in med.items()
        }  # fmt: skip
    print(json.dumps(out))


if __name__ == "__main__":
    main()
