"""``svg-pyro sample``: pictures of sampled futures, a GIF and a PNG grid per test sequence.

Each picture shows the context, the ground truth and K sampled futures, a row each, with the
sample whose time-averaged SSIM against the truth is highest marked (gold border, ``*``).
Sequences come from a stored test set (``--testset``) or are drawn from the checkpoint's dataset
(test split; SM-MNIST only). ``DIR/samples.json`` lists, per sequence, every sample's mean SSIM
and PSNR and which one is best. With ``--identity`` (a stored SM-MNIST test set) each row is also
labelled with its *identity frames*: the predicted frames, from the first on, in which both
digits are still recognisable (:mod:`svg_pyro.analysis.identity`), also in ``samples.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyro
from PIL import Image, ImageDraw
from tqdm.auto import tqdm

from svg_pyro import data, options
from svg_pyro.analysis.identity import best_match, identity_frames, testset_identity
from svg_pyro.checkpoint import eval_protocol, load_model
from svg_pyro.data import load_frames, to_float
from svg_pyro.device import resolve_device
from svg_pyro.metrics import psnr, ssim
from svg_pyro.rollout_bn import warn_if_statistics_of_true_frames
from svg_pyro.svg import sampling_mode
from svg_pyro.viz import PAD, sample_grid, save_gif, save_png, video_frames

LABEL_W = 64


def dataset_frames(
    train_config: dict[str, Any], n_sequences: int, n_frames: int, seed: int = 0
) -> np.ndarray:
    """``n_sequences`` test-split sequences uint8 ``[N, n_frames, C, 64, 64]`` of the dataset
    the checkpoint was trained on (SM-MNIST only; other datasets need ``--testset``)."""
    dataset = train_config.get("dataset", "smmnist")
    if dataset != "smmnist":
        raise ValueError(f"the {dataset} checkpoint needs --testset (only smmnist is generated)")
    return data.dataset_frames(
        "smmnist",
        "test",
        n_sequences,
        seed,
        n_frames,
        train_config.get("num_digits", 2),
        train_config.get("deterministic_motion", False),
        train_config.get("mnist_root"),
    )


def label_rows(grid: np.ndarray, labels: list[str], row_h: int, gap: int) -> np.ndarray:
    """Prepend a white column naming each row of a :func:`svg_pyro.viz.sample_grid` image."""
    col = Image.new("RGB", (LABEL_W, grid.shape[0]), (255, 255, 255))
    draw = ImageDraw.Draw(col)
    for r, text in enumerate(labels):
        lines = text.count("\n") + 1
        draw.text((3, r * (row_h + gap) + row_h // 2 - 5 * lines), text, fill=(0, 0, 0))
    return np.concatenate([np.asarray(col), grid], 1)


def header(width: int, n_past: int, n_future: int, cell: int, height: int = 12) -> np.ndarray:
    """A strip of frame numbers over the grid's columns (1-based; context 1..n_past)."""
    strip = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(strip)
    for t in range(n_past + n_future):
        mark = "t=" if t == 0 else ""
        draw.text((LABEL_W + t * cell + 3, 0), f"{mark}{t + 1}", fill=(0, 0, 0))
    return np.asarray(strip)


def run_sampling(
    checkpoint: str | Path,
    out: str | Path,
    testset: str | Path | None = None,
    sequences: int = 4,
    n_past: int | None = None,
    n_future: int | None = None,
    n_samples: int = 5,
    seed: int = 0,
    data_seed: int = 0,
    bn_train_mode: bool = False,
    fps: float = 4.0,
    identity: bool = False,
    mnist_root: str | None = None,
    device: str = "auto",
    progress: bool = True,
) -> dict[str, Any]:
    """Write ``seqNNN.gif`` and ``seqNNN.png`` for each sequence into ``out``; return the index
    that is also written to ``out/samples.json``. ``identity``: label every row with its
    identity frames (needs an SM-MNIST ``testset``; ``mnist_root`` for one drawn from MNIST)."""
    if n_samples < 1 or sequences < 1:
        raise ValueError(
            f"need --n-samples >= 1 and --sequences >= 1, got {n_samples}, {sequences}"
        )
    dev = resolve_device(device)
    svg, ckpt = load_model(checkpoint, dev)
    warn_if_statistics_of_true_frames(svg, ckpt, bn_train_mode)
    p, f = eval_protocol(ckpt, n_past, n_future)
    if testset is not None:
        frames = load_frames(testset, p + f, sequences, svg.config.channels)
    else:
        frames = dataset_frames(ckpt.get("train_config") or {}, sequences, p + f, data_seed)
    if identity:
        if testset is None:
            raise ValueError("--identity needs --testset (a stored SM-MNIST test set)")
        glyphs, threshold = testset_identity(testset, p, mnist_root)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pyro.set_rng_seed(seed)
    index: dict[str, Any] = {
        "checkpoint": str(checkpoint),
        "variant": svg.config.variant,
        "n_past": p,
        "n_future": f,
        "n_samples": n_samples,
        "seed": seed,
        "sequences": [],
    }
    if identity:
        index["identity_threshold"] = threshold
    cell = svg.config.image_size + 2 * PAD
    with sampling_mode(svg, bn_train_mode):
        for i in tqdm(range(len(frames)), desc="sample", unit="seq", disable=not progress):
            x = to_float(frames[i : i + 1], dev)
            samples = svg.generate(x[:, :p], f, n_samples)[:, 0]  # [K, F, C, H, W]
            truth = x[0, p:].unsqueeze(0).expand_as(samples)
            s = ssim(samples, truth).mean(1).cpu()  # [K]
            q = psnr(samples, truth).mean(1).cpu()
            best = int(s.argmax())
            ctx, tru = x[0, :p], x[0, p:]
            notes = None
            if identity:
                g = glyphs[i : i + 1].to(dev)
                kept_truth = int(identity_frames(best_match(tru[None], g), threshold)[0])
                kept_samples = identity_frames(
                    best_match(samples, g.expand(n_samples, -1, -1, -1)), threshold
                ).tolist()
                notes = [f"id {n}/{f}" for n in [kept_truth, *kept_samples]]
            frames_gif = video_frames(ctx, tru, samples, best, notes)
            gif = save_gif(out / f"seq{i:03d}.gif", frames_gif, fps)
            grid = sample_grid(ctx, tru, samples, best)
            labels = ["truth"] + [
                f"{k + 1}" + (" best" if k == best else "") for k in range(n_samples)
            ]
            if notes is not None:
                labels = [f"{a}\n{b}" for a, b in zip(labels, notes)]
            grid = label_rows(grid, labels, cell, gap=2)
            grid = np.concatenate([header(grid.shape[1], p, f, cell), grid], 0)
            png = save_png(out / f"seq{i:03d}.png", grid)
            index["sequences"].append(
                {
                    "index": i,
                    "gif": gif.name,
                    "png": png.name,
                    "best_by_ssim": best,
                    "ssim": [round(float(v), 5) for v in s],
                    "psnr": [round(float(v), 3) for v in q],
                    **(
                        {"identity_frames": kept_samples, "truth_identity_frames": kept_truth}
                        if identity
                        else {}
                    ),
                }
            )
    (out / "samples.json").write_text(json.dumps(index, indent=1) + "\n")
    return index


def run(args: argparse.Namespace) -> int:
    """``svg-pyro sample``: write the pictures and ``samples.json``."""
    index = options.call_with_args(run_sampling, args)
    print(f"{len(index['sequences'])} sequences -> {args.out}", file=sys.stderr)
    print(Path(args.out) / "samples.json")
    return 0


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register ``svg-pyro sample`` on the CLI's subparsers."""
    p = sub.add_parser("sample", help="GIF and PNG grid of sampled futures per test sequence")
    options.add_checkpoint(p)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--testset", default=None, help=".npz test set (default: draw sequences)")
    p.add_argument("--sequences", type=int, default=4, help="how many sequences (4)")
    options.add_protocol(p)
    p.add_argument("--n-samples", type=int, default=5, help="samples per sequence (5)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--data-seed", type=int, default=0, help="seed of drawn test sequences")
    options.add_bn_train_mode(p)
    p.add_argument("--fps", type=float, default=4.0, help="GIF frames per second")
    p.add_argument(
        "--identity",
        action="store_true",
        help="label each row with its identity frames: the predicted frames, from the first on, "
        "in which both digits are still recognisable (needs an SM-MNIST --testset)",
    )
    p.add_argument("--mnist-root", default=None, help="for a test set drawn from full MNIST")
    options.add_device(p)
    options.add_no_progress(p)
    return p
