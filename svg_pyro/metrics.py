"""Frame metrics (SSIM, MSE, PSNR), proper scores of K samples (CRPS, energy score) and the
best / mean / worst-of-K summaries of evaluation.

SSIM is the one later video-prediction papers use (see REFERENCE.md): an 11x11 Gaussian window
with sigma 1.5, no padding (the map covers only the "valid" 54x54 positions of a 64x64 frame),
data range 1, K1 = 0.01, K2 = 0.03, population (not sample) covariances, averaged over the map and
the channels. Two interchangeable backends compute it, batched on the tensors' device:

- ``"msssim"``: ``pytorch_msssim.ssim`` (a valid, separable Gaussian convolution) with every one
  of those arguments passed explicitly. The default on CUDA.
- ``"matmul"``: the same valid separable filtering written as two matrix products with a banded
  (Toeplitz) matrix, ``G_h X G_w^T``; PyTorch's one-channel convolution is ~8x slower than this
  on CPU, so it is the default there.

Both agree with ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=1)`` to ~1e-7 in float32 (tests/test_metrics.py).

PSNR is ``10 log10(1 / MSE)`` with the MSE of one frame (mean over channels and pixels). A frame
identical to its target has MSE 0 and infinite PSNR; :func:`psnr` caps it at ``max_db``
(``PSNR_CAP_DB`` = 100 dB, i.e. MSE floored at 1e-10, by default in ``svg-pyro evaluate``) so that
averages stay finite; pass ``max_db=None`` for the uncapped value.
"""

from __future__ import annotations

import math

import torch
from pyro.ops.stats import crps_empirical, energy_score_empirical
from pytorch_msssim import ssim as _ms_ssim

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K = (0.01, 0.03)
PSNR_CAP_DB = 100.0
Z95 = 1.959963984540054  # the 0.975 quantile of N(0, 1)


def gaussian_window(
    size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """The normalised 1-D Gaussian ``[size]`` (taps at -size//2..size//2), as scikit-image's."""
    x = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-(x**2) / (2.0 * sigma**2))
    return (g / g.sum()).to(dtype)


def _flatten_frames(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if x.shape != y.shape:
        raise ValueError(f"shapes differ: {list(x.shape)} vs {list(y.shape)}")
    if x.dim() < 3:
        raise ValueError(f"expected images [..., C, H, W], got {list(x.shape)}")
    return x.reshape(-1, *x.shape[-3:]), y.reshape(-1, *y.shape[-3:])


def band_matrix(n: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``[n - 10, n]``: row i holds the Gaussian window at columns i..i+10, so ``G @ v`` is the
    valid (unpadded) Gaussian filtering of a length-n signal ``v``."""
    g = gaussian_window(dtype=torch.float64)
    m = torch.zeros(n - len(g) + 1, n, dtype=torch.float64)
    for i in range(m.shape[0]):
        m[i, i : i + len(g)] = g
    return m.to(dtype)


def _ssim_matmul(x: torch.Tensor, y: torch.Tensor, data_range: float) -> torch.Tensor:
    """``[N, C, H, W]`` pairs -> ``[N]``, with the filtering as ``G_h @ X @ G_w^T``."""
    gh = band_matrix(x.shape[-2], x.dtype).to(x.device)
    gw = band_matrix(x.shape[-1], x.dtype).to(x.device).T
    filt = lambda z: gh @ z @ gw  # noqa: E731
    c1, c2 = (SSIM_K[0] * data_range) ** 2, (SSIM_K[1] * data_range) ** 2
    mx, my = filt(x), filt(y)
    mxx, myy, mxy = mx * mx, my * my, mx * my
    vx, vy, cxy = filt(x * x) - mxx, filt(y * y) - myy, filt(x * y) - mxy
    s = ((2 * mxy + c1) * (2 * cxy + c2)) / ((mxx + myy + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1)


def _ssim_msssim(x: torch.Tensor, y: torch.Tensor, data_range: float) -> torch.Tensor:
    """``[N, C, H, W]`` pairs -> ``[N]`` with ``pytorch_msssim.ssim``, configured as above."""
    win = gaussian_window(dtype=x.dtype).to(x.device).view(1, 1, 1, -1)
    return _ms_ssim(
        x,
        y,
        data_range=data_range,
        size_average=False,
        win=win.repeat(x.shape[1], 1, 1, 1),
        K=SSIM_K,
        nonnegative_ssim=False,
    )


def ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    data_range: float = 1.0,
    chunk: int = 4096,
    backend: str = "auto",
) -> torch.Tensor:
    """SSIM of every image pair: ``x, y [..., C, H, W]`` -> ``[...]`` (mean over map, channels).

    Runs on ``x``'s device in chunks of ``chunk`` images (memory stays bounded for K x B x F
    frames), in float32 unless the inputs are float64. ``backend``: ``"msssim"``, ``"matmul"``
    or ``"auto"`` (msssim on CUDA, matmul elsewhere); see the module docstring.
    """
    xs, ys = _flatten_frames(x, y)
    h, w = xs.shape[-2:]
    if min(h, w) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs frames of at least {SSIM_WINDOW}x{SSIM_WINDOW}, got {h}x{w}")
    if backend == "auto":
        backend = "msssim" if xs.device.type == "cuda" else "matmul"
    fn = {"msssim": _ssim_msssim, "matmul": _ssim_matmul}.get(backend)
    if fn is None:
        raise ValueError(f"unknown SSIM backend {backend!r}; choose auto, msssim or matmul")
    dtype = torch.float64 if xs.dtype == torch.float64 else torch.float32
    out = torch.empty(xs.shape[0], dtype=dtype, device=xs.device)
    for i in range(0, xs.shape[0], chunk):
        out[i : i + chunk] = fn(
            xs[i : i + chunk].to(dtype), ys[i : i + chunk].to(dtype), data_range
        )
    return out.reshape(x.shape[:-3])


def mse(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error per image: ``[..., C, H, W]`` -> ``[...]`` (float32 or float64)."""
    _flatten_frames(x, y)
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    return (x.to(dtype) - y.to(dtype)).pow(2).flatten(-3).mean(-1)


def psnr(
    x: torch.Tensor,
    y: torch.Tensor,
    data_range: float = 1.0,
    max_db: float | None = PSNR_CAP_DB,
) -> torch.Tensor:
    """PSNR in dB per image, ``10 log10(data_range^2 / MSE)``: ``[..., C, H, W]`` -> ``[...]``.

    ``max_db`` caps it (identical images score ``max_db``); ``None`` leaves ``+inf``.
    """
    err = mse(x, y)
    value = 10.0 * torch.log10(data_range**2 / err)
    return value if max_db is None else value.clamp(max=max_db)


def crps(samples: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """The CRPS of K sampled frames, per pixel (:func:`pyro.ops.stats.crps_empirical`:
    ``E|X - y| - E|X - X'| / 2`` over the samples), averaged over each frame's pixels.

    ``samples [K, ..., C, H, W]``, ``truth [..., C, H, W]`` -> ``[...]`` (float64; lower is
    better; for one sample the mean absolute error).
    """
    if samples.shape[1:] != truth.shape:
        raise ValueError(f"samples {list(samples.shape)} do not match truth {list(truth.shape)}")
    return crps_empirical(samples.double(), truth.double()).flatten(-3).mean(-1)


def energy_score(samples: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """The energy score of K sampled frames, each frame one vector of C*H*W pixels
    (:func:`pyro.ops.stats.energy_score_empirical`: ``E||X - y|| - E||X - X'|| / 2``).

    ``samples [K, ..., C, H, W]``, ``truth [..., C, H, W]`` -> ``[...]`` (float64; lower is
    better; for one sample the Euclidean distance).
    """
    if samples.shape[1:] != truth.shape:
        raise ValueError(f"samples {list(samples.shape)} do not match truth {list(truth.shape)}")
    pred = samples.double().flatten(-3).movedim(0, -2)  # [..., K, C*H*W]
    return energy_score_empirical(pred, truth.double().flatten(-3))


def best_mean_worst(scores: torch.Tensor, higher_is_better: bool = True) -> dict[str, torch.Tensor]:
    """Per-sequence summaries of ``scores [K, N, F]`` (K samples, N sequences, F frames).

    ``best`` and ``worst`` are the per-frame curves ``[N, F]`` of the sample whose *time-averaged*
    score is best (worst) for that sequence, as later papers select; ``mean`` is the average over
    the K samples. Also returns ``best_index`` and ``worst_index`` ``[N]``.
    """
    if scores.dim() != 3:
        raise ValueError(f"scores must be [samples, sequences, frames], got {list(scores.shape)}")
    avg = scores.mean(-1)  # [K, N]
    pick_best, pick_worst = (
        (avg.argmax, avg.argmin) if higher_is_better else (avg.argmin, avg.argmax)
    )
    best_idx, worst_idx = pick_best(0), pick_worst(0)
    n = torch.arange(scores.shape[1], device=scores.device)
    return {
        "best": scores[best_idx, n],
        "mean": scores.mean(0),
        "worst": scores[worst_idx, n],
        "best_index": best_idx,
        "worst_index": worst_idx,
    }


def mean_ci95(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean over sequences and the half-width of its 95% interval: ``[N, ...]`` -> two ``[...]``.

    The interval is the normal approximation ``1.96 * std / sqrt(N)`` (sample std, N - 1); with
    a single sequence there is no spread to estimate and the half-width is reported as 0.
    """
    values = values.double()
    n = values.shape[0]
    if n < 1:
        raise ValueError("no sequences to average")
    mean = values.mean(0)
    if n == 1:
        return mean, torch.zeros_like(mean)
    return mean, Z95 * values.std(0, unbiased=True) / math.sqrt(n)
