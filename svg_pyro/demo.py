"""``make demo``: the shipped SVG-LP's futures of test sequences (seconds), then train the
``tiny`` preset on the embedded digits for a few minutes and draw what it learned."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from svg_pyro import options, pretrained
from svg_pyro.checkpoint import CHECKPOINT
from svg_pyro.config import EVAL_PROTOCOLS, build_configs
from svg_pyro.data import StochasticMovingMNIST
from svg_pyro.svg import SVG
from svg_pyro.train import Trainer
from svg_pyro.viz import plot_metrics, sample_grid, save_gif, save_png, stack_rows, video_frames

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
        grids.append(sample_grid(ctx, truth, smp))
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
    paths = show_shipped(out, n_sequences=n_sequences, n_samples=n_samples) if shipped else {}
    if paths and progress:
        print(f"shipped {SHIPPED}: {paths['pretrained_gif']}", flush=True)
    model_cfg, train_cfg = build_configs(
        "tiny", steps=steps, device="cpu", **{"eval_every": EVAL_EVERY, **overrides}
    )
    trainer = Trainer(model_cfg, train_cfg, out, resume=(out / CHECKPOINT).exists(), preset="tiny")
    trainer.fit(progress=progress)
    svg = trainer.svg.eval()
    p, f, digits = model_cfg.n_past, model_cfg.n_future, train_cfg.num_digits
    paths.update(draw_futures(svg, out, "demo", p, f, digits, n_sequences, n_samples))
    paths["curves"] = plot_metrics(out, out / "loss.png")
    paths["checkpoint"] = out / CHECKPOINT
    return paths


def run(args: argparse.Namespace) -> int:
    """``svg-pyro demo``: print the path of every picture written."""
    paths = run_demo(args.out, steps=args.steps, progress=not args.no_progress)
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register ``svg-pyro demo``."""
    p = sub.add_parser("demo", help="train `tiny` on CPU for a few minutes; write a GIF and curves")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--steps", type=int, default=1500)
    options.add_no_progress(p)
    return p
