"""Stochastic Moving MNIST, generated on the fly as in the original release."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from svg_pyro.data.digits import load_digits

IMAGE_SIZE = 64
DIGIT_SIZE = 32


class StochasticMovingMNIST(Dataset):
    """Sequences of 1 or 2 MNIST digits bouncing in a 64x64 frame.

    Item ``i`` is generated from ``numpy.random.default_rng([seed, i])``, so it is the same every
    time and on every worker. Each item is a dict:

    * ``frames``    float32 ``[T, 1, 64, 64]`` in [0, 1] (digits summed, clipped at 1);
    * ``positions`` int64 ``[T, num_digits, 2]``: each digit's top-left corner (y, x) where it is
      drawn in that frame, in 0..31;
    * ``bounces``   bool ``[T, num_digits]``: True at frame t when the digit hit a wall there, so
      its velocity after frame t differs from its velocity before it.

    Motion follows the original generator: start in 0..31 per axis, velocity in -4..4 per axis.
    At a wall the position is clamped; ``deterministic=True`` negates that velocity component,
    otherwise a new component pointing away from the wall (1..4 in size) and a fresh one
    (-4..4) on the other axis are drawn.
    """

    def __init__(
        self,
        num_digits: int = 2,
        seq_len: int = 20,
        deterministic: bool = False,
        split: str = "train",
        seed: int = 0,
        length: int = 1_000_000,
        mnist_root: str | None = None,
    ):
        if num_digits not in (1, 2):
            raise ValueError(f"num_digits must be 1 or 2, got {num_digits}")
        if seq_len < 1:
            raise ValueError(f"seq_len must be >= 1, got {seq_len}")
        self.num_digits = num_digits
        self.seq_len = seq_len
        self.deterministic = deterministic
        self.split = split
        self.seed = seed
        self.length = length
        self.digits = load_digits(split, mnist_root)

    def __len__(self) -> int:
        return self.length

    def trajectory(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One digit's ``positions [T, 2]`` (y, x), ``bounces [T]`` and ``velocities [T, 2]``.

        ``velocities[t]`` is the (dy, dx) that moves the digit from frame t to frame t+1.
        """
        limit = IMAGE_SIZE - DIGIT_SIZE  # positions live in 0..limit-1
        sx, sy = int(rng.integers(limit)), int(rng.integers(limit))
        dx, dy = int(rng.integers(-4, 5)), int(rng.integers(-4, 5))
        positions = np.zeros((self.seq_len, 2), dtype=np.int64)
        bounces = np.zeros(self.seq_len, dtype=bool)
        velocities = np.zeros((self.seq_len, 2), dtype=np.int64)
        for t in range(self.seq_len):
            if sy < 0 or sy >= limit:
                low = sy < 0
                sy = 0 if low else limit - 1
                if self.deterministic:
                    dy = -dy
                else:
                    dy = int(rng.integers(1, 5)) if low else int(rng.integers(-4, 0))
                    dx = int(rng.integers(-4, 5))
                bounces[t] = True
            if sx < 0 or sx >= limit:
                low = sx < 0
                sx = 0 if low else limit - 1
                if self.deterministic:
                    dx = -dx
                else:
                    dx = int(rng.integers(1, 5)) if low else int(rng.integers(-4, 0))
                    dy = int(rng.integers(-4, 5))
                bounces[t] = True
            positions[t] = (sy, sx)
            velocities[t] = (dy, dx)
            sy += dy
            sx += dx
        return positions, bounces, velocities

    def _draw(self, index: int) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
        """Item ``index``'s digit images (``num_digits`` of ``[32, 32]``), ``positions`` and
        ``bounces``: every random draw of the item, in the order ``__getitem__`` makes them."""
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} sequences")
        rng = np.random.default_rng([self.seed, index])
        digits = []
        positions = np.zeros((self.seq_len, self.num_digits, 2), dtype=np.int64)
        bounces = np.zeros((self.seq_len, self.num_digits), dtype=bool)
        for n in range(self.num_digits):
            digits.append(self.digits[int(rng.integers(len(self.digits)))])
            positions[:, n], bounces[:, n], _ = self.trajectory(rng)
        return digits, positions, bounces

    def glyphs(self, index: int) -> np.ndarray:
        """The digit images of item ``index``: float32 ``[num_digits, 32, 32]`` in [0, 1]."""
        return np.stack(self._draw(index)[0]).astype(np.float32)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        digits, positions, bounces = self._draw(index)
        frames = np.zeros((self.seq_len, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
        for n, digit in enumerate(digits):
            for t, (y, x) in enumerate(positions[:, n]):
                frames[t, y : y + DIGIT_SIZE, x : x + DIGIT_SIZE] += digit
        np.minimum(frames, 1.0, out=frames)
        return {
            "frames": torch.from_numpy(frames[:, None]),
            "positions": torch.from_numpy(positions),
            "bounces": torch.from_numpy(bounces),
        }
