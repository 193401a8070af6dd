"""Held-out evaluation while training: scores, a preview and the best checkpoint's score.

Every ``TrainConfig.eval_every`` steps the trainer calls :meth:`HeldOut.evaluate` on a fixed
set of ``eval_sequences`` test-split sequences, drawn once with ``eval_seed`` (the same set for
every run of a dataset and protocol, so runs compare). It computes, with the networks in eval
mode (BatchNorm running statistics, nothing updated) and under a fixed sampling seed:

- ``test_elbo_per_frame`` and ``test_kl_per_frame``: the training objective's ELBO and KL (the
  same :class:`~svg_pyro.elbo.SVGLoss` terms as the training rows, beta = 1 in the ELBO), on the
  first ``seq_len`` frames of each held-out sequence, per observed frame, in nats;
- ``ssim_best`` / ``psnr_best`` (and ``*_mean``): best-of-``eval_samples`` over the dataset's
  protocol (``EVAL_PROTOCOLS``, SM-MNIST 5 -> 20), scored by :func:`svg_pyro.evaluate.
  evaluate_generator` from samples of :meth:`SVG.generate`, time-averaged over future frames;
- ``copy_last_*`` and ``blank_*``: the two baselines on the same set (computed once);
- ``bn_statistics``: ``"running"``, or ``"rollout"`` when every score above was computed with
  BatchNorm statistics re-estimated on the model's own forecasts from ``2 * eval_sequences``
  fixed training-split contexts (``TrainConfig.heldout_bn``; :mod:`svg_pyro.rollout_bn`), on a
  copy: the run's own statistics are put back after.

The training RNG stream is not touched: every RNG state is saved before and restored after, so
a run with evaluation follows the same trajectory as one without, and resumes bit for bit.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyro
import torch

from svg_pyro import viz
from svg_pyro.checkpoint import rng_state, seed_everything, set_rng_state
from svg_pyro.config import SVGConfig, TrainConfig, eval_protocol
from svg_pyro.data import dataset_frames, to_float
from svg_pyro.elbo import SVGLoss
from svg_pyro.evaluate import blank, copy_last, evaluate_generator, model_generator
from svg_pyro.rollout_bn import (
    CALIBRATION_SEED,
    context_batches,
    needs_recalibration,
    recalibrated,
)
from svg_pyro.svg import SVG, sampling_mode

BEST_SCORE = "ssim_best"  # what best.pt maximises: best-of-K SSIM on the held-out set
PREVIEW_SEQUENCES = 3
PREVIEW_SAMPLES = 3


def heldout_frames(train_config: TrainConfig, n_frames: int) -> np.ndarray:
    """The fixed held-out set: uint8 ``[eval_sequences, n_frames, C, H, W]`` from the test split
    (drawn once per process and setting; the array is shared, do not modify it)."""
    c = train_config
    return dataset_frames(c.data, "test", c.eval_sequences, c.eval_seed, n_frames)


@contextlib.contextmanager
def untouched_rng(seed: int) -> Iterator[None]:
    """Run the block under ``seed``; every RNG (torch, CUDA, numpy, python) gets its state back."""
    state = rng_state()
    try:
        seed_everything(seed)
        yield
    finally:
        set_rng_state(state)


class HeldOut:
    """The held-out set of a run and the scores of a model on it (see the module docstring)."""

    def __init__(
        self,
        model_config: SVGConfig,
        train_config: TrainConfig,
        device: torch.device,
        batch_size: int = 16,
    ):
        self.model_config, self.cfg, self.device = model_config, train_config, device
        self.n_past, self.n_future = eval_protocol(model_config, train_config.dataset)
        self.elbo_frames = model_config.seq_len
        n_frames = max(self.n_past + self.n_future, self.elbo_frames)
        self.frames = heldout_frames(train_config, n_frames)
        self.batch_size = batch_size
        self._baselines: dict[str, float] | None = None

    def statistics(self, svg: SVG) -> contextlib.AbstractContextManager:
        """The BatchNorm statistics the scores use, for the length of a block
        (``TrainConfig.heldout_bn``): the model's own, or (``"rollout"``, and ``"auto"`` for a
        model that :func:`~svg_pyro.rollout_bn.needs_recalibration`) those of its forecasts from
        :meth:`calibration`'s contexts."""
        mode = self.cfg.heldout_bn
        if mode == "rollout" or (mode == "auto" and needs_recalibration(svg)):
            frames = self.calibration()
            contexts = context_batches(frames, self.n_past, self.batch_size, self.device)
            return recalibrated(svg, contexts, self.n_future)
        return contextlib.nullcontext()

    def calibration(self) -> np.ndarray:
        """The fixed training-split contexts of the rollout statistics (drawn once: cached)."""
        c = self.cfg
        return dataset_frames(c.data, "train", 2 * c.eval_sequences, CALIBRATION_SEED, self.n_past)

    def baselines(self) -> dict[str, float]:
        """copy-last and blank best scores on the held-out set (computed once)."""
        if self._baselines is None:
            out: dict[str, float] = {}
            for name, fn in (("copy_last", copy_last), ("blank", blank)):
                per_seq = evaluate_generator(
                    fn, self.frames, self.n_past, self.n_future, 1, self.batch_size,
                    self.device, progress=False,
                )  # fmt: skip
                for metric in ("ssim", "psnr"):
                    out[f"{name}_{metric}"] = float(per_seq[metric]["best"].mean())
            self._baselines = out
        return self._baselines

    @torch.no_grad()
    def evaluate(
        self, svg: SVG, step: int, preview_dir: Path | None = None
    ) -> tuple[dict[str, Any], np.ndarray | None]:
        """Scores of ``svg`` (a row for ``metrics.jsonl``) and the preview image (or ``None``).

        ``preview_dir``: also write ``step_NNNNNN.png`` and ``.gif`` there.
        """
        t0 = time.perf_counter()
        row: dict[str, Any] = {"eval": True, "step": step}
        k = self.cfg.eval_samples
        with (
            untouched_rng(self.cfg.eval_seed),
            self.statistics(svg),
            sampling_mode(svg),
            pyro.validation_enabled(False),
        ):
            rollout = svg.bn_statistics.of_forecasts
            loss_fn = SVGLoss(svg, free_running=self.cfg.free_running)  # the training objective
            neg_elbo = kl = 0.0
            for i in range(0, len(self.frames), self.batch_size):
                x = to_float(self.frames[i : i + self.batch_size, : self.elbo_frames], self.device)
                loss_fn(x)
                neg_elbo += float(loss_fn.last_terms["neg_elbo"]) * len(x)
                kl += float(loss_fn.last_terms["kl"]) * len(x)
            per = len(self.frames) * (self.elbo_frames - 1)  # observed frames x_1 .. x_{T-1}
            row["test_elbo_per_frame"] = -neg_elbo / per
            row["test_kl_per_frame"] = kl / per
            generate, k = model_generator(svg, k)
            per_seq = evaluate_generator(
                generate, self.frames, self.n_past, self.n_future, k, self.batch_size,
                self.device, progress=False,
            )  # fmt: skip
            for metric in ("ssim", "psnr"):
                for key in ("best", "mean"):
                    row[f"{metric}_{key}"] = float(per_seq[metric][key].mean())
            image = self._preview(svg, preview_dir, step) if preview_dir is not None else None
        row.update(self.baselines())
        row["bn_statistics"] = "rollout" if rollout else "running"
        row.update(
            samples=k, sequences=len(self.frames), n_past=self.n_past, n_future=self.n_future
        )
        row["eval_seconds"] = round(time.perf_counter() - t0, 3)
        return row, image

    def _preview(self, svg: SVG, out: Path, step: int) -> np.ndarray:
        """Grid (PNG) and GIF of context, truth and samples for the first few sequences."""
        p, f = self.n_past, self.n_future
        x = to_float(self.frames[:PREVIEW_SEQUENCES, : p + f], self.device)
        samples = svg.generate(x[:, :p], f, PREVIEW_SAMPLES)  # [K, B, F, C, H, W]
        grids, videos = [], []
        for b in range(x.shape[0]):
            grids.append(viz.sample_grid(x[b, :p], x[b, p:], samples[:, b]))
            videos.append(viz.video_frames(x[b, :p], x[b, p:], samples[:, b]))
        image = viz.stack_rows(grids, gap=6)
        viz.save_png(out / f"step_{step:06d}.png", image)
        frames = [viz.stack_rows([v[t] for v in videos], gap=4) for t in range(len(videos[0]))]
        viz.save_gif(out / f"step_{step:06d}.gif", frames)
        return image
