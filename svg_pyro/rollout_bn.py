"""BatchNorm statistics of the model's own forecasts ("rollout statistics").

A model whose decoder takes its skip connections from the previous frame (``skip_source=
"previous"``, the original release's ``--last_frame_skip``) encodes its own generated frames
while it forecasts. Training shows the encoder only true frames, so BatchNorm's running
statistics are those of true frames. In eval mode the features of a slightly dimmer generated
frame come out dimmer still, the next frame is dimmer again, and the forecast fades to black
within a few frames (on SM-MNIST its SSIM then *rises*: a black frame scores well). The
original release samples with BatchNorm in training mode (batch statistics), which hides the
fade but makes each sequence's forecast depend on the others in its batch.

:func:`recalibrate` re-estimates every running mean and variance on free-running forecasts
from training-split contexts, as a cumulative average over all of them ("precise BatchNorm"):
eval mode then normalises generated frames with statistics that have seen generated frames, each
forecast depends on its own sequence only, and no learned weight changes. The trainer's held-out
evaluation does this on a copy of the statistics for such models (``TrainConfig.heldout_bn``),
and ``svg-pyro recalibrate-bn`` (:mod:`svg_pyro.rollout_bn_cli`) writes a checkpoint with them
(what a shipped model of this kind stores). A model whose skips stay on a context frame does
not need it (and measures slightly worse with it): see ``docs/evaluation.md``.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import pyro
import torch
from torch import nn

from svg_pyro.data import dataset_frames, to_float
from svg_pyro.svg import SVG

#: Default size of the calibration: training sequences, forecasts per sequence, batch.
CALIBRATION_SEQUENCES = 128
CALIBRATION_SAMPLES = 4
CALIBRATION_BATCH = 16
CALIBRATION_SEED = 12345  # the training-split sequences drawn for it (not the run's seed)


def batchnorms(svg: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """Every BatchNorm layer of ``svg`` (encoder and decoder)."""
    return [m for m in svg.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def rollout_calibration(checkpoint: dict[str, Any]) -> dict[str, Any] | None:
    """The calibration a checkpoint's ``meta`` records (``svg-pyro recalibrate-bn``), if its
    BatchNorm statistics are rollout statistics; else ``None``."""
    batchnorm = (checkpoint.get("meta") or {}).get("batchnorm") or {}
    return batchnorm if batchnorm.get("statistics") == "rollout" else None


def warn_if_statistics_of_true_frames(
    svg: SVG, checkpoint: dict[str, Any], bn_train_mode: bool = False
) -> bool:
    """Warn (and return True) when ``svg`` takes its skips from generated frames but its
    BatchNorm statistics are those of true frames (``checkpoint`` has no rollout calibration in
    its ``meta``) and it is about to forecast in eval mode: its forecasts may fade to black."""
    if not svg.skips_follow_frames or bn_train_mode:
        return False
    if rollout_calibration(checkpoint) is not None:
        return False
    warnings.warn(
        "this model takes its skips from the previous frame and its BatchNorm statistics are "
        "those of true frames: in eval mode its forecasts may fade to black (which raises SSIM on "
        "SM-MNIST). Recalibrate it first: svg-pyro recalibrate-bn (docs/evaluation.md).",
        stacklevel=2,
    )
    return True


def _snapshot(norms: list[nn.modules.batchnorm._BatchNorm]) -> list[list[torch.Tensor]]:
    return [
        [b.detach().clone() for b in (m.running_mean, m.running_var, m.num_batches_tracked)]
        for m in norms
    ]


@torch.no_grad()
def _restore(norms: list[nn.modules.batchnorm._BatchNorm], saved: list[list[torch.Tensor]]) -> None:
    for m, (mean, var, count) in zip(norms, saved):
        m.running_mean.copy_(mean)
        m.running_var.copy_(var)
        m.num_batches_tracked.copy_(count)


@contextlib.contextmanager
def saved_statistics(svg: nn.Module) -> Iterator[None]:
    """Every BatchNorm's running statistics and counter are put back on exit."""
    norms = batchnorms(svg)
    saved = _snapshot(norms)
    try:
        yield
    finally:
        _restore(norms, saved)


@torch.no_grad()
def recalibrate(
    svg: SVG,
    contexts: Iterable[torch.Tensor],
    n_future: int,
    n_samples: int = CALIBRATION_SAMPLES,
) -> int:
    """Replace every BatchNorm's running statistics by those of forecasts from ``contexts``.

    ``contexts``: batches ``[batch, n_past, C, H, W]`` in [0, 1] (training-split frames, on the
    model's device). Each is forecast ``n_future`` frames ahead, ``n_samples`` times, with
    BatchNorm in training mode and momentum ``None`` (a plain average over all the batches);
    context and generated frames both count, as both reach the encoder when it forecasts.
    Returns the number of forecasts. The module's mode and momenta are restored; so are the old
    statistics if no context came or the forecast raised.
    """
    norms = batchnorms(svg)
    momenta = [m.momentum for m in norms]
    was_training = svg.training
    saved = _snapshot(norms)
    n = 0
    try:
        for m in norms:
            m.reset_running_stats()
            m.momentum = None
        svg.train()
        with pyro.validation_enabled(False):
            for context in contexts:
                svg.generate(context, n_future, n_samples)
                n += context.shape[0] * n_samples
        if n == 0:
            raise ValueError("recalibrate: no context batches were given")
    except BaseException:
        _restore(norms, saved)
        raise
    finally:
        for m, mom in zip(norms, momenta):
            m.momentum = mom
        svg.train(was_training)
    return n


def context_batches(
    frames: np.ndarray, n_past: int, batch_size: int, device: torch.device | str
) -> Iterator[torch.Tensor]:
    """``frames`` uint8 ``[N, T, C, H, W]`` as float batches ``[batch, n_past, C, H, W]``."""
    for i in range(0, len(frames), batch_size):
        yield to_float(frames[i : i + batch_size, :n_past], device)


def training_frames(
    train_config: dict[str, Any], sequences: int, n_frames: int, seed: int = CALIBRATION_SEED
) -> np.ndarray:
    """``sequences`` training-split sequences of the dataset a run trained on, uint8
    ``[N, n_frames, C, H, W]`` (``train_config``: the checkpoint's ``train_config`` dict)."""
    return dataset_frames(
        train_config.get("dataset", "smmnist"),
        "train",
        sequences,
        seed,
        n_frames,
        int(train_config.get("num_digits", 2)),
        bool(train_config.get("deterministic_motion", False)),
        train_config.get("mnist_root"),
        train_config.get("data_root"),
    )
