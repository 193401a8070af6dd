"""Every picture the package draws: GIFs and PNG grids of context, ground truth and sampled
futures; training and held-out curves; evaluation curves; the collision figures.

Plots use matplotlib's object API (:func:`figure`), never pyplot or a global backend switch.
Functions here draw what they are given (arrays, result dicts); computing it is the caller's.

Frames come in as tensors ``[T, C, H, W]`` with values in [0, 1]. Borders tell the parts apart:
green for ground truth (context and true future), red for generated frames, gold around the best
sample.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

GREEN = (40, 170, 60)
RED = (200, 40, 40)
GOLD = (235, 180, 0)
WHITE = (255, 255, 255)
PAD = 2


def to_rgb_uint8(frames: torch.Tensor) -> np.ndarray:
    """``[..., C, H, W]`` in [0, 1] (C = 1 or 3) -> uint8 ``[..., H, W, 3]``."""
    x = frames.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8).cpu()
    if x.shape[-3] == 1:
        x = x.expand(*x.shape[:-3], 3, *x.shape[-2:])
    return x.movedim(-3, -1).numpy()


def _bordered(img: np.ndarray, color: tuple[int, int, int]) -> np.ndarray:
    h, w, _ = img.shape
    out = np.empty((h + 2 * PAD, w + 2 * PAD, 3), dtype=np.uint8)
    out[:] = color
    out[PAD:-PAD, PAD:-PAD] = img
    return out


def _label_strip(labels: Sequence[str], cell_w: int, height: int = 12) -> np.ndarray:
    strip = Image.new("RGB", (cell_w * len(labels), height), WHITE)
    draw = ImageDraw.Draw(strip)
    for i, text in enumerate(labels):
        draw.text((i * cell_w + 3, 0), text, fill=(0, 0, 0))
    return np.asarray(strip)


def video_frames(
    context: torch.Tensor,
    truth: torch.Tensor,
    samples: torch.Tensor,
    best: int | None = None,
    notes: Sequence[str] | None = None,
) -> list[np.ndarray]:
    """One image per time step: ground truth, then each sample, side by side.

    ``context [P, C, H, W]``, ``truth [F, C, H, W]``, ``samples [K, F, C, H, W]``. During the
    context every panel shows the context frame (green); afterwards the first panel shows the
    true future (green) and the others their samples (red; gold for sample ``best``).
    ``notes``: a second label line per panel (truth first), e.g. its identity frames.
    """
    ctx, tru, smp = to_rgb_uint8(context), to_rgb_uint8(truth), to_rgb_uint8(samples)
    labels = ["truth"] + [f"sample {k + 1}" + (" *" if k == best else "") for k in range(len(smp))]
    cell_w = ctx.shape[2] + 2 * PAD
    strip = _label_strip(labels, cell_w)
    if notes is not None:
        if len(notes) != len(labels):
            raise ValueError(f"need {len(labels)} notes (truth and each sample), got {len(notes)}")
        strip = np.concatenate([strip, _label_strip(list(notes), cell_w)], 0)
    out = []
    for t in range(len(ctx) + len(tru)):
        if t < len(ctx):
            panels = [_bordered(ctx[t], GREEN)] * (1 + len(smp))
        else:
            f = t - len(ctx)
            panels = [_bordered(tru[f], GREEN)] + [
                _bordered(smp[k, f], GOLD if k == best else RED) for k in range(len(smp))
            ]
        out.append(np.concatenate([strip, np.concatenate(panels, 1)], 0))
    return out


def save_gif(path: str | Path, images: Sequence[np.ndarray], fps: float = 4.0) -> Path:
    """Write uint8 ``[H, W, 3]`` images as a looping GIF (an image of equal shape per frame)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pil = [Image.fromarray(im) for im in images]
    pil[0].save(path, save_all=True, append_images=pil[1:], duration=int(1000 / fps), loop=0)
    return path


def stack_rows(blocks: Sequence[np.ndarray], gap: int = 4) -> np.ndarray:
    """Stack images of equal width vertically with white gaps."""
    width = max(b.shape[1] for b in blocks)
    parts = []
    for b in blocks:
        pad = np.full((b.shape[0], width - b.shape[1], 3), 255, dtype=np.uint8)
        parts += [np.concatenate([b, pad], 1), np.full((gap, width, 3), 255, dtype=np.uint8)]
    return np.concatenate(parts[:-1], 0)


def sample_grid(
    context: torch.Tensor,
    truth: torch.Tensor,
    samples: torch.Tensor,
    best: int | None = None,
) -> np.ndarray:
    """A paper-style grid: a row for the ground truth, then a row per sample.

    Every row starts with the context (green); the ground-truth row continues with the true
    future (green), each sample row with its frames (red; the ``best`` row in gold).
    """
    ctx, tru, smp = to_rgb_uint8(context), to_rgb_uint8(truth), to_rgb_uint8(samples)
    ctx_cells = [_bordered(f, GREEN) for f in ctx]
    blank = np.full_like(ctx_cells[0], 255) if ctx_cells else None
    rows = [np.concatenate(ctx_cells + [_bordered(f, GREEN) for f in tru], 1)]
    for k in range(len(smp)):
        color = GOLD if k == best else RED
        lead = ctx_cells if k == best else [blank] * len(ctx_cells)
        rows.append(np.concatenate(lead + [_bordered(f, color) for f in smp[k]], 1))
    return stack_rows(rows, gap=2)


LABEL_W = 64


def label_rows(grid: np.ndarray, labels: list[str], row_h: int, gap: int) -> np.ndarray:
    """Prepend a white column naming each row of a :func:`svg_pyro.viz.sample_grid` image."""
    col = Image.new("RGB", (LABEL_W, grid.shape[0]), (255, 255, 255))
    draw = ImageDraw.Draw(col)
    for r, text in enumerate(labels):
        lines = text.count("\n") + 1
        draw.text((3, r * (row_h + gap) + row_h // 2 - 5 * lines), text, fill=(0, 0, 0))
    return np.concatenate([np.asarray(col), grid], 1)


def frame_header(width: int, n_past: int, n_future: int, cell: int, height: int = 12) -> np.ndarray:
    """A strip of frame numbers over the grid's columns (1-based; context 1..n_past)."""
    strip = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(strip)
    for t in range(n_past + n_future):
        mark = "t=" if t == 0 else ""
        draw.text((LABEL_W + t * cell + 3, 0), f"{mark}{t + 1}", fill=(0, 0, 0))
    return np.asarray(strip)


def labelled_grid(
    context: torch.Tensor,
    truth: torch.Tensor,
    samples: torch.Tensor,
    rows: Sequence[str] | None = None,
    best: int | None = None,
) -> np.ndarray:
    """:func:`sample_grid` with each row named (``rows``: the truth's, then each sample's;
    default ``truth``, ``sample 1`` ...) and the frame numbers above the columns (``t=1`` ...,
    the context first): ``context [P, C, H, W]``, ``truth [F, C, H, W]``, ``samples [K, F, C,
    H, W]`` in [0, 1]."""
    if rows is None:
        rows = ["truth"] + [f"sample {k + 1}" for k in range(len(samples))]
    cell = context.shape[-1] + 2 * PAD
    grid = label_rows(sample_grid(context, truth, samples, best), list(rows), cell, gap=2)
    header = frame_header(grid.shape[1], len(context), len(truth), cell)
    return np.concatenate([header, grid], 0)


def save_png(path: str | Path, image: np.ndarray) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return path


def read_metrics(run: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """The one reader of a run's ``metrics.jsonl`` (``run`` is the run folder or the file): the
    ``train`` rows and the held-out ``eval`` rows (``"eval": true``), each as ``{column: values}``
    (``step``, ``seconds`` and the logged terms; a value a row lacks is NaN). Held-out rows that
    say which BatchNorm statistics scored them also get ``rollout_bn`` (1 for ``"rollout"``, 0 for
    ``"running"``). Lines cut short by a crash are skipped."""
    path = Path(run)
    if path.is_dir():
        path = path / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{run} has no metrics.jsonl (not a run folder?)")
    rows: dict[str, list[dict]] = {"train": [], "eval": []}
    for line in path.read_text().splitlines():
        try:
            r = json.loads(line)
        except ValueError:
            continue  # a line cut short by a crash
        if isinstance(r, dict):
            if "bn_statistics" in r:
                r["rollout_bn"] = float(r["bn_statistics"] == "rollout")
            rows["eval" if r.get("eval") else "train"].append(r)
    out: dict[str, dict[str, np.ndarray]] = {}
    for kind, rs in rows.items():
        keys = sorted(
            {k for r in rs for k, v in r.items() if isinstance(v, (int, float)) and k != "eval"}
        )
        out[kind] = {
            k: np.array([np.nan if r.get(k) is None else float(r[k]) for r in rs]) for k in keys
        }
    return out


def plot_metrics(run: str | Path, out_png: str | Path) -> Path:
    """A run's curves against the step: the training rows' ``loss``, ``recon`` and ``kl`` and,
    when the run scored held-out sequences (``--eval-every``), the held-out best-of-K SSIM with
    copy-last and blank beside it. ``run`` is the run folder or its ``metrics.jsonl``."""
    curves = read_metrics(run)
    train, held = curves["train"], curves["eval"]
    if "step" not in train:
        raise ValueError(f"{run} has no training rows to plot")
    panels = [
        ("loss", "objective: recon + beta KL", True),
        ("recon", "recon: sum_t mean-pixel MSE", True),
        ("kl", "KL (nats, sum over t)", False),
    ]
    has_eval = "ssim_best" in held and bool(np.isfinite(held["ssim_best"]).any())
    fig = figure(figsize=(4 * (len(panels) + has_eval), 3.2))
    axes = fig.subplots(1, len(panels) + has_eval)
    for ax, (key, title, log) in zip(axes, panels):
        if key in train:
            ax.plot(train["step"], train[key], lw=1.2)
            if log and np.nanmin(train[key]) > 0:
                ax.set_yscale("log")
        ax.set_title(title, fontsize=9)
    if has_eval:
        ax = axes[-1]
        for rows, suffix, marker in _segments(held, "eval"):
            ax.plot(held["step"][rows], held["ssim_best"][rows], marker=marker, ms=3, lw=1.2,
                    label="model" + suffix)  # fmt: skip
        for key, ls, label in (("copy_last_ssim", ":", "copy-last"), ("blank_ssim", "--", "blank")):
            if key in held and np.isfinite(held[key]).any():
                ax.axhline(np.nanmean(held[key]), color="gray", ls=ls, label=label)
        ax.set_xlim(axes[0].get_xlim())  # the training panels' steps, even for one point
        ax.set_title("held-out best-of-K SSIM", fontsize=9)
        ax.legend(fontsize=7)
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, out_png)


def _segments(d: dict[str, np.ndarray], kind: str) -> list[tuple[np.ndarray, str, str | None]]:
    """The rows of one curve, split where held-out scores switch BatchNorm statistics (a run
    resumed across ``TrainConfig.heldout_bn``): ``(row mask, label suffix, marker)`` each."""
    n = len(next(iter(d.values())))
    if kind != "eval":
        return [(np.ones(n, bool), "", None)]
    rollout = d.get("rollout_bn", np.zeros(n)) == 1
    if rollout.all() or not rollout.any():
        return [(np.ones(n, bool), " (rollout BN)" if rollout.any() else "", "o")]
    return [(~rollout, "", "o"), (rollout, " (rollout BN)", "s")]


# (row kind, column, panel title, log scale)
RUN_PANELS = (
    ("train", "loss", "train objective (recon + beta KL)", True),
    ("train", "kl", "train KL (nats, sum over t)", True),
    ("eval", "ssim_best", "held-out best-of-K SSIM", False),
    ("eval", "test_elbo_per_frame", "held-out ELBO (nats / frame)", False),
)


def plot_runs(runs: Sequence[str | Path], out_png: str | Path) -> Path:
    """Training and held-out curves of one or several runs, against the step (top row) and the
    wall time (bottom row), one colour per run; held-out SSIM panels also show copy-last and blank
    (dotted, dashed) of the first run that has them."""
    if not runs:
        raise ValueError("plot-run needs at least one run folder")
    curves = [(Path(r), read_metrics(r)) for r in runs]
    names = [p.name for p, _ in curves]
    labels = names if len(set(names)) == len(names) else [str(p) for p, _ in curves]
    fig = figure(figsize=(4.2 * len(RUN_PANELS), 6.4))
    axes = fig.subplots(2, len(RUN_PANELS))
    for row, (xkey, xlabel, xscale) in enumerate(
        (("step", "step", 1.0), ("seconds", "wall time (min)", 1 / 60))
    ):
        for col, (kind, key, title, log) in enumerate(RUN_PANELS):
            ax = axes[row, col]
            for i, (_, c) in enumerate(curves):
                d = c[kind]
                if key in d and xkey in d and np.isfinite(d[key]).any():
                    for rows, suffix, marker in _segments(d, kind):
                        ax.plot(d[xkey][rows] * xscale, d[key][rows], color=f"C{i}", lw=1.3,
                                label=labels[i] + suffix, marker=marker, ms=3)  # fmt: skip
            if key == "ssim_best":
                ref = next((c["eval"] for _, c in curves if "copy_last_ssim" in c["eval"]), None)
                if ref is not None:
                    ax.axhline(ref["copy_last_ssim"][0], color="gray", ls=":", label="copy-last")
                    ax.axhline(ref["blank_ssim"][0], color="gray", ls="--", label="blank")
            if log and ax.lines:
                ax.set_yscale("log")
            ax.set_title(title, fontsize=9)
            ax.set_xlabel(xlabel)
            ax.grid(alpha=0.3)
    for ax in (axes[0, 0], axes[0, 2]):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, out_png)


def figure(**kwargs: Any) -> Any:
    """A matplotlib ``Figure`` made with the object API: no pyplot state, no global backend
    switch (``savefig`` picks the Agg canvas for PNGs), nothing to close."""
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def save_figure(fig: Any, out_png: str | Path, dpi: int = 110) -> Path:
    """Write a matplotlib figure to ``out_png`` (parent folders created)."""
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=dpi)
    return out_png


def plot_eval_curves(results: dict[str, Any], out_png: str | Path) -> Path:
    """Per-frame SSIM and PSNR of every method in ``svg-pyro evaluate``'s ``results``: best-of-K
    with its 95% band (solid), mean of K (dashed, with band); deterministic methods as one line."""
    from matplotlib.ticker import MaxNLocator

    p = results["n_past"]
    fig = figure(figsize=(11, 3.8))
    axes = fig.subplots(1, 2)
    for ax, metric, label in zip(axes, ("ssim", "psnr"), ("SSIM", "PSNR (dB)")):
        for i, (name, res) in enumerate(results["methods"].items()):
            block = res[metric]
            x = np.arange(p + 1, p + 1 + len(block["best"]))
            color = f"C{i}"
            stochastic = res.get("samples", 1) > 1
            curves = (("best", "-"), ("mean", "--")) if stochastic else (("best", "-"),)
            for key, style in curves:
                y = np.array([np.nan if v is None else v for v in block[key]], dtype=float)
                ci = np.array([np.nan if v is None else v for v in block[f"ci95_{key}"]], float)
                tag = name if not stochastic else f"{name} ({key} of {res['samples']})"
                ax.plot(x, y, style, color=color, lw=1.4, label=tag)
                ax.fill_between(x, y - ci, y + ci, color=color, alpha=0.18, lw=0)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel(f"frame (context: 1..{p})")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(
        f"{results['n_sequences']} sequences, {results['n_past']} -> {results['n_future']} frames,"
        f" {results['n_samples']} samples; bands: 95% interval over sequences",
        fontsize=9,
    )
    fig.tight_layout()
    return save_figure(fig, out_png)


def plot_collision_sigma(
    sigma: Any,
    bounces: Any,
    hits: np.ndarray,
    valid: np.ndarray,
    out_png: str | Path,
    lag: int = 1,
    n_show: int = 4,
    title: str | None = None,
) -> Path:
    """The paper's Figure 6: prior sigma over time for ``n_show`` sequences, hits marked.

    ``sigma [N, T-1]`` is plotted at frame ``t - lag`` for ``z_t`` (so, with ``lag=1``, at the
    last frame the prior saw) and every frame with a wall hit (``bounces``) gets a dashed line; a
    last panel compares the distributions of sigma at hit and other steps over all N sequences
    (``hits``, ``valid`` ``[N, T-1]``: :func:`svg_pyro.analysis.collision_labels`); returns the
    PNG's path.
    """
    sigma = np.asarray(sigma, dtype=np.float64)
    hit_frames = np.asarray(bounces).astype(bool)
    if hit_frames.ndim == 3:
        hit_frames = hit_frames.any(-1)
    n_show = min(n_show, len(sigma))
    fig = figure(figsize=(8, 1.8 * n_show + 2.4), layout="constrained")
    axes = fig.subplots(n_show + 1, 1, gridspec_kw={"height_ratios": [1] * n_show + [1.3]})
    x = np.arange(1, sigma.shape[1] + 1) - lag
    for i in range(n_show):
        ax = axes[i]
        ax.plot(x, sigma[i], marker="o", ms=3, color="tab:blue")
        for f in np.flatnonzero(hit_frames[i]):
            ax.axvline(f, color="tab:red", ls="--", lw=1)
        ax.set_ylabel(f"seq {i}\nprior sigma")
        ax.set_xlim(min(x.min(), 0) - 0.5, hit_frames.shape[1] - 0.5)
    axes[n_show - 1].set_xlabel(
        f"frame f (sigma of the prior for z_(f+{lag}); dashed: a digit hits a wall)"
        if lag
        else "frame f (sigma of the prior for z_f; dashed: a digit hits a wall)"
    )
    ax = axes[-1]
    s_hit, s_other = sigma[valid & hits], sigma[valid & ~hits]
    bins = np.linspace(sigma[valid].min(), sigma[valid].max(), 40)
    ax.hist(s_other, bins=bins, density=True, alpha=0.6, label=f"other steps ({len(s_other)})")
    ax.hist(s_hit, bins=bins, density=True, alpha=0.6, label=f"after a hit ({len(s_hit)})")
    ax.set_xlabel("prior sigma (mean over latent dimensions)")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return save_figure(fig, out_png, dpi=100)


def plot_sigma_maps(
    frames: np.ndarray, maps: np.ndarray, labels: np.ndarray, out_png: str | Path
) -> Path:
    """Frames ``t = 1..T-1`` of ``frames [n, T, C, H, W]`` with the prior's sigma map
    ``maps [n, T-1, H, W]`` over them (a row per sequence; a red title marks the steps whose
    ``labels [n, T-1]`` are collisions)."""
    n, steps = maps.shape[:2]
    fig = figure(figsize=(1.1 * steps, 1.2 * n + 0.4))
    axes = fig.subplots(n, steps, squeeze=False)
    vmax = float(maps.max())
    for i in range(n):
        for t in range(steps):
            ax = axes[i, t]
            ax.imshow(frames[i, t + 1, 0], cmap="gray", vmin=0, vmax=1)
            ax.imshow(maps[i, t], cmap="inferno", alpha=0.55, vmin=0, vmax=vmax)
            ax.set_xticks([]), ax.set_yticks([])
            hit = bool(labels[i, t])
            ax.set_title(
                f"t={t + 1}" + (" hit" if hit else ""), fontsize=7, color="red" if hit else "black"
            )
    fig.suptitle("learned prior sigma over the frame (brighter = less certain)", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, out_png, dpi=100)
