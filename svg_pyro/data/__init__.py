"""Datasets (knows nothing of the model): Stochastic Moving MNIST, KTH, BAIR and test sets."""

import functools
from typing import Any

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


@functools.lru_cache(maxsize=4)
def dataset_frames(
    dataset: str, split: str, n: int, seed: int, n_frames: int, num_digits: int = 2,
    deterministic: bool = False, mnist_root: str | None = None, data_root: str | None = None,
) -> np.ndarray:  # fmt: skip
    """``n`` sequences of ``split`` drawn with ``seed``, uint8 ``[n, n_frames, C, H, W]`` (cached:
    the array is shared, do not modify it). SM-MNIST's test split is the stored test sets'."""
    if dataset == "smmnist":
        if split == "test":
            out = smmnist_test_sequences(n, n_frames, num_digits, seed, deterministic, mnist_root)
            return out["frames"]
        ds: Any = StochasticMovingMNIST(num_digits, n_frames, deterministic, split, seed, n,
                                        mnist_root)  # fmt: skip
    elif dataset in VIDEO_DATASETS:
        if not data_root:
            raise ValueError(f"dataset {dataset!r} needs --data-root (the folder with its files)")
        cls, _ = VIDEO_DATASETS[dataset]
        ds = cls(data_root, split=split, seq_len=n_frames, length=n, seed=seed)
    else:
        raise ValueError(f"unknown dataset {dataset!r}")
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
