"""SRVP's fixed Stochastic Moving MNIST test set, rebuilt from a user's MNIST test files.

Later papers (SRVP, Franceschi et al. 2020, and those that compare with it) score SM-MNIST on
one fixed set of 5000 two-digit sequences of 25 frames. This module rebuilds it exactly from
the MNIST test split (nothing is downloaded), following SRVP's ``make_test_set.py``: NumPy's
legacy global generator seeded with 42, a permutation of the 10,000 test digits, native 28x28
digits, float positions in [0, 36] with reflections at the walls, and a fresh random velocity at
each wall hit (see ``../shared/REFERENCE.md``, "SRVP's SM-MNIST test set").

The file is written in SRVP's layout, time-major: ``sequences`` uint8 ``[25, 5000, 64, 64]``,
plus ``latents`` float32 ``[25, 5000, 2, 4]`` (per frame and digit: row, column, row speed,
column speed, as recorded), ``labels`` int64 ``[5000, 2]`` and ``digits`` int64 ``[5000, 2]``
(indices into the MNIST test split). :func:`svg_pyro.data.load_testset` reads it as
``frames [5000, 25, 1, 64, 64]``, so ``svg-pyro evaluate --testset`` takes it as it is.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

SRVP_SEED = 42
FRAME = 64
DIGIT = 28
LIMIT = FRAME - DIGIT  # positions lie in [0, 36]
EPS = 1e-8


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped): uint8 ``[N, ...]`` as its header says."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    data = np.frombuffer(raw, dtype=np.uint8, offset=offset)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path}: header says {dims}, found {data.size} values")
    return data.reshape(dims)


def _find(raw: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (raw / name).is_file():
            return raw / name
    raise FileNotFoundError(f"no {stem}[.gz] under {raw} (the MNIST test files are needed)")


def load_mnist_test(mnist_root: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """The MNIST test split in torchvision's order: images uint8 ``[10000, 28, 28]``, labels.

    Reads ``MNIST_ROOT/MNIST/raw/t10k-{images-idx3,labels-idx1}-ubyte[.gz]``.
    """
    raw = Path(mnist_root) / "MNIST" / "raw"
    if not raw.is_dir():
        raise FileNotFoundError(f"no MNIST IDX files under {raw}")
    images = read_idx(_find(raw, "t10k-images-idx3-ubyte"))
    labels = read_idx(_find(raw, "t10k-labels-idx1-ubyte"))
    if images.ndim != 3 or images.shape[1:] != (DIGIT, DIGIT) or len(labels) != len(images):
        raise ValueError(f"unexpected MNIST test arrays: {images.shape}, {labels.shape}")
    return images, labels.astype(np.int64)


def _flags(sx: float, sy: float) -> tuple[bool, bool, bool, bool]:
    """(left, upper, right, bottom): which walls the position is past."""
    return sx < -EPS, sy < -EPS, sx > LIMIT + EPS, sy > LIMIT + EPS


def _inside(v: float) -> bool:
    return -EPS <= v <= LIMIT + EPS


def trajectory(length: int, deterministic: bool = False) -> np.ndarray:
    """One digit's path ``[length, 4]`` (row, column, row speed, column speed), drawn from
    NumPy's global generator exactly as SRVP's test-set script does."""
    sx = float(np.random.randint(0, LIMIT + 1))
    sy = float(np.random.randint(0, LIMIT + 1))
    dx = int(np.random.randint(-4, 5))
    dy = int(np.random.randint(-4, 5))
    out = np.zeros((length, 4), dtype=np.float32)
    for t in range(length):
        left, upper, right, bottom = _flags(sx, sy)
        while left or upper or right or bottom:
            cx, cy = sx, sy
            if dx == 0:
                cx, cy = (sx, 0.0) if upper else (sx, float(LIMIT))
            elif dy == 0:
                cx, cy = (0.0, sy) if left else (float(LIMIT), sy)
            else:
                a = dy / dx
                b = sy - a * sx
                if left:
                    if _inside(b):
                        cx, cy = 0.0, b
                    else:
                        left = False
                if right:
                    y = a * LIMIT + b
                    if _inside(y):
                        cx, cy = float(LIMIT), y
                    else:
                        right = False
                if upper:
                    x = -b / a
                    if _inside(x):
                        cx, cy = x, 0.0
                    else:
                        upper = False
                if bottom:
                    x = (LIMIT - b) / a
                    if _inside(x):
                        cx, cy = x, float(LIMIT)
                    else:
                        bottom = False
            p = (sx - cx) / dx if dx != 0 else (sy - cy) / dy
            if not deterministic:
                dx = int(np.random.randint(-4, 5))
                dy = int(np.random.randint(-4, 5))
            if left:
                dx = abs(dx)
            if right:
                dx = -abs(dx)
            if upper:
                dy = abs(dy)
            if bottom:
                dy = -abs(dy)
            sx, sy = cx + dx * p, cy + dy * p
            left, upper, right, bottom = _flags(sx, sy)
        out[t] = (int(round(sx)), int(round(sy)), dx, dy)
        sy += dy
        sx += dx
    return out


def render(digits: np.ndarray, paths: np.ndarray) -> np.ndarray:
    """Draw ``digits`` uint8 ``[D, 28, 28]`` along ``paths [D, T, 4]`` -> uint8 ``[T, 64, 64]``
    (sums clipped at 255; the path's first value is the row)."""
    length = paths.shape[1]
    x = np.zeros((length, FRAME, FRAME), dtype=np.float32)
    for digit, path in zip(digits, paths):
        for t in range(length):
            r, c = int(path[t, 0]), int(path[t, 1])
            x[t, r : r + DIGIT, c : c + DIGIT] += digit
    x[x > 255] = 255
    return x.astype(np.uint8)


def srvp_testset(
    images: np.ndarray,
    labels: np.ndarray,
    sequences: int = 5000,
    frames: int = 25,
    num_digits: int = 2,
    deterministic: bool = False,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """SRVP's test set from the MNIST test split (``images [10000, 28, 28]`` uint8, in order).

    Returns SRVP's arrays (see the module docstring). The global NumPy generator is seeded with
    42 and left in the state the script leaves it in.
    """
    if sequences * num_digits > len(images):
        raise ValueError(
            f"{sequences} sequences of {num_digits} digits need {sequences * num_digits} digits; "
            f"the test split has {len(images)}"
        )
    np.random.seed(SRVP_SEED)
    idx = np.random.permutation(len(images))
    seq = np.zeros((frames, sequences, FRAME, FRAME), dtype=np.uint8)
    lat = np.zeros((frames, sequences, num_digits, 4), dtype=np.float32)
    dig = np.zeros((sequences, num_digits), dtype=np.int64)
    for i in tqdm(range(sequences), disable=not progress, desc="srvp test set", unit="seq"):
        chosen = idx[num_digits * i : num_digits * (i + 1)]
        paths = np.stack([trajectory(frames, deterministic) for _ in chosen])
        seq[:, i] = render(images[chosen], paths)
        lat[:, i] = paths.transpose(1, 0, 2)
        dig[i] = chosen
    return {"sequences": seq, "latents": lat, "labels": labels[dig], "digits": dig}


def write_srvp_testset(
    mnist_root: str | Path,
    out: str | Path,
    sequences: int = 5000,
    frames: int = 25,
    deterministic: bool = False,
    progress: bool = True,
) -> Path:
    """Build SRVP's SM-MNIST test set from ``MNIST_ROOT/MNIST/raw`` and write it to ``out``."""
    images, labels = load_mnist_test(mnist_root)
    data = srvp_testset(images, labels, sequences, frames, 2, deterministic, progress)
    meta = {
        "dataset": "smmnist",
        "protocol": "srvp",
        "seed": SRVP_SEED,
        "num_digits": 2,
        "deterministic": deterministic,
        "layout": "time-major sequences [T, N, 64, 64] (SRVP)",
    }
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as f:
        np.savez_compressed(f, **data, meta=np.array(json.dumps(meta)))
    return out
