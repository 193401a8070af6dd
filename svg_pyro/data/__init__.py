"""Datasets (knows nothing of the model): Stochastic Moving MNIST, KTH, BAIR and test sets."""

from __future__ import annotations

import functools
from typing import Any, Protocol

import numpy as np
import torch

from svg_pyro.data.bair import BAIR, write_bair_testset
from svg_pyro.data.digits import load_digits
from svg_pyro.data.kth import KTH, write_kth_testset
from svg_pyro.data.moving_mnist import StochasticMovingMNIST
from svg_pyro.data.srvp import srvp_testset, write_srvp_testset
from svg_pyro.data.testsets import (
    TestSet,
    load_frames,
    load_testset,
    smmnist_test_sequences,
    to_float,
    write_smmnist_testset,
)

#: Datasets read from files under ``TrainConfig.data_root``: name -> (Dataset class, channels).
VIDEO_DATASETS: dict[str, tuple[type, int]] = {"kth": (KTH, 1), "bair": (BAIR, 3)}


class _Spec(Protocol):
    """What :func:`dataset_frames` reads of a data spec (:class:`svg_pyro.config.DataSpec`,
    which this package does not import: it knows nothing of the rest)."""

    dataset: str
    num_digits: int
    deterministic_motion: bool
    mnist_root: str | None
    data_root: str | None


@functools.lru_cache(maxsize=4)
def dataset_frames(spec: _Spec, split: str, n: int, seed: int, length: int) -> np.ndarray:
    """``n`` sequences of ``length`` frames of the data ``spec`` describes (a
    :class:`svg_pyro.config.DataSpec`), from ``split`` and drawn with ``seed``: uint8
    ``[n, length, C, H, W]``. SM-MNIST's test split is the stored test sets'. Cached by its
    arguments: the array is shared, do not modify it."""
    if spec.dataset == "smmnist":
        if split == "test":
            out = smmnist_test_sequences(n, length, spec.num_digits, seed,
                                         spec.deterministic_motion, spec.mnist_root)  # fmt: skip
            return out["frames"]
        ds: Any = StochasticMovingMNIST(spec.num_digits, length, spec.deterministic_motion, split,
                                        seed, n, spec.mnist_root)  # fmt: skip
    elif spec.dataset in VIDEO_DATASETS:
        if not spec.data_root:
            raise ValueError(
                f"dataset {spec.dataset!r} needs --data-root (the folder with its files)"
            )
        cls, _ = VIDEO_DATASETS[spec.dataset]
        ds = cls(spec.data_root, split=split, seq_len=length, length=n, seed=seed)
    else:
        raise ValueError(f"unknown dataset {spec.dataset!r}")
    x = torch.stack([torch.as_tensor(ds[i]["frames"]) for i in range(n)])
    return x.mul(255).round().clamp(0, 255).to(torch.uint8).numpy()


__all__ = [
    "BAIR",
    "KTH",
    "StochasticMovingMNIST",
    "VIDEO_DATASETS",
    "TestSet",
    "dataset_frames",
    "load_digits",
    "load_frames",
    "load_testset",
    "smmnist_test_sequences",
    "srvp_testset",
    "to_float",
    "write_bair_testset",
    "write_kth_testset",
    "write_smmnist_testset",
    "write_srvp_testset",
]
