"""A trained model opened for one use: what every command that reads a checkpoint does first.

:func:`load_trained` loads a checkpoint (a file, or a shipped model's name) onto the device,
checks it (a model that needs BatchNorm statistics of its own forecasts and lacks them is warned
about once, :func:`svg_pyro.checkpoint.load_model`), and settles the evaluation protocol
(:func:`svg_pyro.config.eval_protocol`) and the data the model was trained on
(:class:`svg_pyro.config.DataSpec`). The :class:`Loaded` it returns gives the frames (a stored
test set, or sequences drawn from that data) and seeds the samplers, so that ``sample``,
``evaluate``, ``recalibrate-bn`` and the analyses write that sequence once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyro
import torch

from svg_pyro.checkpoint import load_model
from svg_pyro.config import DataSpec, eval_protocol
from svg_pyro.data import dataset_frames, load_frames
from svg_pyro.device import resolve_device
from svg_pyro.svg import SVG


@dataclass
class Loaded:
    """A model loaded from ``source`` with what a use of it needs: the model (``svg``, on
    ``device``), its ``checkpoint`` dict, the ``data`` it was trained on and the protocol
    (``n_past`` context frames, ``n_future`` predicted ones)."""

    source: str | Path
    svg: SVG
    checkpoint: dict[str, Any]
    device: torch.device
    data: DataSpec
    n_past: int
    n_future: int

    @property
    def length(self) -> int:
        """Frames of a sequence under the protocol: ``n_past + n_future``."""
        return self.n_past + self.n_future

    @property
    def step(self) -> int:
        """The training step the checkpoint was saved at (-1 if it does not say)."""
        return int(self.checkpoint.get("step", -1))

    def testset(
        self, path: str | Path, sequences: int | None = None, length: int | None = None
    ) -> np.ndarray:
        """The first ``sequences`` (default all) of a stored test set, ``length`` frames each
        (default :attr:`length`): uint8 ``[N, length, C, 64, 64]``, checked against the model's
        channels (:func:`svg_pyro.data.load_frames`)."""
        n = self.length if length is None else length
        return load_frames(path, n, sequences, self.svg.config.channels)

    def frames(self, split: str, n: int, seed: int, length: int | None = None) -> np.ndarray:
        """``n`` sequences of the model's training data (:attr:`data`) from ``split``, drawn
        with ``seed``, ``length`` frames each (default :attr:`length`): uint8 ``[n, length, C,
        64, 64]`` (:func:`svg_pyro.data.dataset_frames`; shared, do not modify it)."""
        return dataset_frames(self.data, split, n, seed, self.length if length is None else length)

    def seed(self, seed: int) -> None:
        """Seed every random number generator the samplers draw from (torch, NumPy, Python)."""
        pyro.set_rng_seed(seed)


def load_trained(
    checkpoint: str | Path,
    device: str | torch.device = "auto",
    n_past: int | None = None,
    n_future: int | None = None,
    *,
    warn: bool = True,
    mnist_root: str | None = None,
    data_root: str | None = None,
) -> Loaded:
    """Load ``checkpoint`` onto ``device`` (``"auto"``, ``"cpu"``, ``"cuda"`` or a
    :class:`torch.device`) for a use: the protocol is ``n_past`` / ``n_future`` where given,
    else the training dataset's; ``warn`` (default) warns about a model whose BatchNorm
    statistics need recalibrating; ``mnist_root`` / ``data_root`` read the training data from
    other folders than the run's."""
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    svg, ckpt = load_model(checkpoint, dev, warn)
    saved = ckpt.get("train_config") or {}
    p, f = eval_protocol(svg.config, saved.get("dataset"), n_past, n_future)
    data = DataSpec.from_dict(saved).with_roots(mnist_root, data_root)
    return Loaded(checkpoint, svg, ckpt, dev, data, p, f)
