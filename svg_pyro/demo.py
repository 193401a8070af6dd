"""``make demo``: train the ``tiny`` preset on the embedded digits, then draw what it learned."""

from __future__ import annotations

from pathlib import Path

import torch

from svg_pyro.data import StochasticMovingMNIST
from svg_pyro.train import CHECKPOINT, METRICS, Trainer, build_configs
from svg_pyro.viz import plot_metrics, sample_grid, save_gif, save_png, stack_rows, video_frames


def run_demo(
    out: str | Path = "runs/demo",
    steps: int = 1500,
    n_sequences: int = 3,
    n_samples: int = 3,
    progress: bool = True,
) -> dict[str, Path]:
    """Train (or resume) ``tiny`` for ``steps`` steps on CPU and write the demo pictures.

    Returns the paths of ``gif`` (context, truth and samples of test sequences side by side),
    ``grid`` (the same as a PNG), ``curves`` (loss curves) and ``checkpoint``.
    """
    out = Path(out)
    model_cfg, train_cfg = build_configs("tiny", steps=steps, device="cpu")
    trainer = Trainer(model_cfg, train_cfg, out, resume=(out / CHECKPOINT).exists(), preset="tiny")
    trainer.fit(progress=progress)

    svg = trainer.svg.eval()
    test = StochasticMovingMNIST(
        num_digits=train_cfg.num_digits, seq_len=model_cfg.seq_len, split="test", seed=0,
        length=n_sequences,
    )  # fmt: skip
    frames = torch.stack([test[i]["frames"] for i in range(n_sequences)])
    n_past, n_future = model_cfg.n_past, model_cfg.n_future
    torch.manual_seed(0)
    samples = svg.generate(frames[:, :n_past], n_future, n_samples)  # [K, B, F, C, H, W]

    gif_rows, grids = [], []
    for b in range(n_sequences):
        ctx, truth, smp = frames[b, :n_past], frames[b, n_past:], samples[:, b]
        gif_rows.append(video_frames(ctx, truth, smp))
        grids.append(sample_grid(ctx, truth, smp))
    gif = [stack_rows([rows[t] for rows in gif_rows]) for t in range(len(gif_rows[0]))]
    return {
        "gif": save_gif(out / "demo.gif", gif),
        "grid": save_png(out / "samples.png", stack_rows(grids, gap=8)),
        "curves": plot_metrics(out / METRICS, out / "loss.png"),
        "checkpoint": out / CHECKPOINT,
    }
