"""Pictures of sampled futures, a GIF and a PNG grid per test sequence (``svg-pyro sample``,
:mod:`svg_pyro.commands.sample`, runs :func:`run_sampling`).

Each picture shows the context, the ground truth and K sampled futures, a row each, with the
sample whose time-averaged SSIM against the truth is highest marked (gold border, ``*``).
Sequences come from a stored test set (``--testset``) or are drawn from the checkpoint's dataset
(test split; SM-MNIST only). ``DIR/samples.json`` lists, per sequence, every sample's mean SSIM
and PSNR and which one is best. With ``--identity`` (a stored SM-MNIST test set) each row is also
labelled with its *identity frames*: the predicted frames, from the first on, in which both
digits are still recognisable (:mod:`svg_pyro.analysis.identity`), also in ``samples.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from svg_pyro.analysis.identity import IdentityLabels
from svg_pyro.data import to_float
from svg_pyro.loaded import Loaded, load_trained
from svg_pyro.metrics import psnr, ssim
from svg_pyro.svg import sampling_mode
from svg_pyro.viz import labelled_grid, save_gif, save_png, video_frames


def sample_frames(
    run: Loaded, testset: str | Path | None, sequences: int, data_seed: int = 0
) -> np.ndarray:
    """The sequences to sample from, uint8 ``[N, n_past + n_future, C, 64, 64]``: the first
    ``sequences`` of the stored ``testset``, or without one ``sequences`` test-split sequences of
    the model's training data drawn with ``data_seed`` (SM-MNIST only; other datasets need
    ``--testset``)."""
    if testset is not None:
        return run.testset(testset, sequences)
    if run.data.dataset != "smmnist":
        raise ValueError(
            f"the {run.data.dataset} checkpoint needs --testset (only smmnist is generated)"
        )
    return run.frames("test", sequences, data_seed)


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
    run = load_trained(checkpoint, device, n_past, n_future)
    frames = sample_frames(run, testset, sequences, data_seed)
    labels = None
    if identity:
        if testset is None:
            raise ValueError("--identity needs --testset (a stored SM-MNIST test set)")
        labels = IdentityLabels.of_testset(testset, run.n_past, mnist_root)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    run.seed(seed)
    index: dict[str, Any] = {
        "checkpoint": str(checkpoint),
        "variant": run.svg.config.variant,
        "n_past": run.n_past,
        "n_future": run.n_future,
        "n_samples": n_samples,
        "seed": seed,
        "sequences": [],
    }
    if labels is not None:
        index["identity_threshold"] = labels.threshold
    with sampling_mode(run.svg, bn_train_mode):
        for i in tqdm(range(len(frames)), desc="sample", unit="seq", disable=not progress):
            x = to_float(frames[i : i + 1], run.device)
            entry = draw_sequence(run, x[0], i, out, n_samples, fps, labels)
            index["sequences"].append(entry)
    (out / "samples.json").write_text(json.dumps(index, indent=1) + "\n")
    return index


def draw_sequence(
    run: Loaded,
    x: torch.Tensor,
    i: int,
    out: Path,
    n_samples: int,
    fps: float = 4.0,
    labels: IdentityLabels | None = None,
) -> dict[str, Any]:
    """Sample ``n_samples`` futures of sequence ``i`` (``x [n_past + n_future, C, 64, 64]``),
    write ``out/seqNNN.gif`` and ``.png`` (the best sample by mean SSIM marked; rows labelled
    with ``labels``' identity frames when given) and return its entry of ``samples.json``."""
    p, f = run.n_past, run.n_future
    samples = run.svg.generate(x[None, :p], f, n_samples)[:, 0]  # [K, F, C, H, W]
    ctx, tru = x[:p], x[p:]
    truth = tru.unsqueeze(0).expand_as(samples)
    s = ssim(samples, truth).mean(1).cpu()  # [K]
    q = psnr(samples, truth).mean(1).cpu()
    best = int(s.argmax())
    notes, found = labels.label(i, tru, samples) if labels is not None else (None, {})
    gif = save_gif(out / f"seq{i:03d}.gif", video_frames(ctx, tru, samples, best, notes), fps)
    rows = ["truth"] + [f"{k + 1}" + (" best" if k == best else "") for k in range(n_samples)]
    if notes is not None:
        rows = [f"{a}\n{b}" for a, b in zip(rows, notes)]
    png = save_png(out / f"seq{i:03d}.png", labelled_grid(ctx, tru, samples, rows, best))
    return {
        "index": i,
        "gif": gif.name,
        "png": png.name,
        "best_by_ssim": best,
        "ssim": [round(float(v), 5) for v in s],
        "psnr": [round(float(v), 3) for v in q],
        **found,
    }
