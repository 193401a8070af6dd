"""Cost of one held-out evaluation (svg_pyro.heldout) vs one training step at a preset's defaults.

Usage: python benchmarks/heldout_cost.py PRESET DEVICE OUT_DIR [STEPS]; prints one JSON line.
"""

import json
import sys
import time

import pyro
import torch

from svg_pyro.config import build_configs
from svg_pyro.heldout import HeldOut
from svg_pyro.train import Trainer, batches

preset, device, out = sys.argv[1], sys.argv[2], sys.argv[3]
steps = int(sys.argv[4]) if len(sys.argv) > 4 else 3
m, t = build_configs(preset, device=device, steps=steps, log_every=1000, checkpoint_every=10**6)
tr = Trainer(m, t, out)
data = batches(tr.dataset, tr.local_batch, 0)
sync = (lambda: torch.cuda.synchronize()) if tr.device.type == "cuda" else (lambda: None)
times = []
with pyro.validation_enabled(False):
    for _ in range(steps):
        x = next(data)["frames"].to(tr.device)
        sync()
        t0 = time.perf_counter()
        tr.train_step(x)
        sync()
        times.append(time.perf_counter() - t0)
t0 = time.perf_counter()
h = HeldOut(m, t, tr.device)
setup = time.perf_counter() - t0
evals = []
for i in range(2):
    sync()
    t0 = time.perf_counter()
    row, _ = h.evaluate(tr.svg, i, tr.out / "previews")
    sync()
    evals.append(time.perf_counter() - t0)
step = sorted(times[1:])[len(times[1:]) // 2] if len(times) > 1 else times[0]
print(
    json.dumps(
        {
            "preset": preset,
            "device": str(tr.device),
            "step_s": round(step, 4),
            "step_times": [round(x, 3) for x in times],
            "eval_s": [round(x, 3) for x in evals],
            "setup_s": round(setup, 2),
            "eval_every": t.eval_every,
            "eval_in_steps": round(evals[-1] / step, 1),
            "fraction_of_wall": round(evals[-1] / (evals[-1] + t.eval_every * step), 5),
        }
    )
)
