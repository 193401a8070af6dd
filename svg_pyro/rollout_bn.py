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
forecast depends on its own sequence only, and no learned weight changes. :func:`recalibrated`
does it for the length of a block (the trainer's held-out evaluation, ``TrainConfig.heldout_bn``),
and ``svg-pyro recalibrate-bn`` (:mod:`svg_pyro.commands.recalibrate_bn`) writes a checkpoint
with them (what a shipped model of this kind stores). A model whose skips stay on a context
frame does not need it: see ``docs/evaluation.md``.

The model records which statistics it holds: ``svg.bn_statistics``, a
:class:`BatchNormStatistics` (of true frames, or of its forecasts with the calibration's
details), set where a model is loaded (:func:`record_statistics`, which warns once when the
model needs recalibrating) and by :func:`recalibrate`.
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

from svg_pyro.data import to_float
from svg_pyro.svg import FORECASTS, SVG, BatchNormStatistics, batchnorms

#: Default size of the calibration: training sequences, forecasts per sequence, batch.
CALIBRATION_SEQUENCES = 128
CALIBRATION_SAMPLES = 4
CALIBRATION_BATCH = 16
CALIBRATION_SEED = 12345  # the training-split sequences drawn for it (not the run's seed)


def needs_recalibration(svg: SVG) -> bool:
    """The rule: a model that takes its skips from the frames it generates (``skip_source=
    "previous"``) needs BatchNorm statistics of its own forecasts to forecast in eval mode."""
    return svg.skips_follow_frames and not svg.bn_statistics.of_forecasts


def record_statistics(svg: SVG, checkpoint: dict[str, Any], warn: bool = True) -> SVG:
    """Set ``svg.bn_statistics`` to those of ``checkpoint`` (the one it was loaded from) and,
    with ``warn``, warn once if it :func:`needs_recalibration`: in eval mode its forecasts may
    fade to black. Returns ``svg``."""
    svg.bn_statistics = BatchNormStatistics.of_checkpoint(checkpoint)
    if warn and needs_recalibration(svg):
        warnings.warn(
            "this model takes its skips from the previous frame and its BatchNorm statistics are "
            "those of true frames: in eval mode its forecasts may fade to black (which raises "
            "SSIM on SM-MNIST). Recalibrate it first: svg-pyro recalibrate-bn "
            "(docs/evaluation.md); --bn-train-mode samples with batch statistics instead.",
            stacklevel=3,
        )
    return svg


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


@torch.no_grad()
def recalibrate(
    svg: SVG,
    contexts: Iterable[torch.Tensor],
    n_future: int,
    n_samples: int = CALIBRATION_SAMPLES,
    **details: Any,
) -> int:
    """Replace every BatchNorm's running statistics by those of forecasts from ``contexts``.

    ``contexts``: batches ``[batch, n_past, C, H, W]`` in [0, 1] (training-split frames, on the
    model's device). Each is forecast ``n_future`` frames ahead, ``n_samples`` times, with
    BatchNorm in training mode and momentum ``None`` (a plain average over all the batches);
    context and generated frames both count, as both reach the encoder when it forecasts.
    Returns the number of forecasts, and records them in ``svg.bn_statistics`` (with
    ``details``, e.g. the contexts' ``seed``). The module's mode and momenta are restored; so
    are the old statistics if no context came or the forecast raised.
    """
    norms = batchnorms(svg)
    momenta = [m.momentum for m in norms]
    was_training = svg.training
    saved = _snapshot(norms)
    n = n_past = 0
    try:
        for m in norms:
            m.reset_running_stats()
            m.momentum = None
        svg.train()
        with pyro.validation_enabled(False):
            for context in contexts:
                svg.generate(context, n_future, n_samples)
                n += context.shape[0] * n_samples
                n_past = context.shape[1]
        if n == 0:
            raise ValueError("recalibrate: no context batches were given")
    except BaseException:
        _restore(norms, saved)
        raise
    finally:
        for m, mom in zip(norms, momenta):
            m.momentum = mom
        svg.train(was_training)
    record = dict(statistics="rollout", forecasts=n, sequences=n // n_samples, samples=n_samples,
                  n_past=n_past, n_future=n_future, **details)  # fmt: skip
    svg.bn_statistics = BatchNormStatistics(FORECASTS, record)
    return n


@contextlib.contextmanager
def recalibrated(
    svg: SVG,
    contexts: Iterable[torch.Tensor],
    n_future: int,
    n_samples: int = CALIBRATION_SAMPLES,
) -> Iterator[int]:
    """Inside the block ``svg`` holds BatchNorm statistics of its own forecasts
    (:func:`recalibrate`; ``as`` gets the number of forecasts) and ``svg.bn_statistics`` says so;
    on exit its previous statistics, counters and record are put back."""
    norms = batchnorms(svg)
    saved, before = _snapshot(norms), svg.bn_statistics
    try:
        yield recalibrate(svg, contexts, n_future, n_samples)
    finally:
        _restore(norms, saved)
        svg.bn_statistics = before


def context_batches(
    frames: np.ndarray, n_past: int, batch_size: int, device: torch.device | str
) -> Iterator[torch.Tensor]:
    """``frames`` uint8 ``[N, T, C, H, W]`` as float batches ``[batch, n_past, C, H, W]``."""
    for i in range(0, len(frames), batch_size):
        yield to_float(frames[i : i + batch_size, :n_past], device)
