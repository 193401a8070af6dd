"""SSIM / PSNR against scikit-image, and the best / mean / worst summaries."""

import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from svg_pyro.metrics import (
    PSNR_CAP_DB,
    Z95,
    band_matrix,
    best_mean_worst,
    gaussian_window,
    mean_ci95,
    mse,
    psnr,
    ssim,
)


def sk_ssim(x: torch.Tensor, y: torch.Tensor) -> float:
    """scikit-image's SSIM of one image pair [C, H, W], configured as REFERENCE.md says."""
    a, b = x.double().numpy(), y.double().numpy()
    return structural_similarity(
        a,
        b,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=1.0,
        K1=0.01,
        K2=0.03,
        channel_axis=0,
    )


def structured_pairs(gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """[6, 1, 64, 64] pairs: shifted squares, gradients, a noisy copy, blank vs blob, ..."""
    xs, ys = [], []
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    # a digit-like blob on black, and the same shifted by 3 pixels
    blob = ((yy - 30) ** 2 / 80 + (xx - 28) ** 2 / 30 < 1).float() * 0.9
    xs.append(blob)
    ys.append(torch.roll(blob, shifts=(3, -2), dims=(0, 1)))
    # a linear gradient vs a sine pattern
    xs.append(xx / 63)
    ys.append(0.5 + 0.5 * torch.sin(xx / 5) * torch.cos(yy / 7))
    # a noisy copy, clipped to [0, 1]
    base = torch.rand(64, 64, generator=gen)
    xs.append(base)
    ys.append((base + 0.05 * torch.randn(64, 64, generator=gen)).clamp(0, 1))
    # blank vs a square (constant regions: variance terms vanish)
    sq = torch.zeros(64, 64)
    sq[20:40, 10:30] = 1.0
    xs.append(torch.zeros(64, 64))
    ys.append(sq)
    # sparse bright strokes in both, at different places
    a, b = torch.zeros(64, 64), torch.zeros(64, 64)
    a[10:50, 30:33] = torch.rand(40, 3, generator=gen)
    b[30:33, 5:60] = torch.rand(3, 55, generator=gen)
    xs.append(a)
    ys.append(b)
    # a checkerboard vs its inverse
    cb = ((xx // 4 + yy // 4) % 2).float()
    xs.append(cb)
    ys.append(1 - cb)
    return torch.stack(xs)[:, None], torch.stack(ys)[:, None]


def test_window_matches_scipy_truncation():
    w = gaussian_window(dtype=torch.float64)
    x = torch.arange(-5.0, 6.0, dtype=torch.float64)
    expected = torch.exp(-(x**2) / 4.5)
    assert torch.allclose(w, expected / expected.sum())
    assert w.shape == (11,)


BACKENDS = ["msssim", "matmul"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("channels", [1, 3])
def test_ssim_matches_skimage_on_random_images(channels, backend):
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(5, channels, 64, 64, generator=gen)
    y = torch.rand(5, channels, 64, 64, generator=gen)
    y[2:] = (x[2:] + 0.1 * torch.randn(3, channels, 64, 64, generator=gen)).clamp(0, 1)
    ours = ssim(x, y, backend=backend)
    ref = torch.tensor([sk_ssim(x[i], y[i]) for i in range(5)])
    assert ours.shape == (5,)
    assert torch.allclose(ours.double(), ref, atol=2e-6, rtol=0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_ssim_matches_skimage_on_structured_images(backend):
    x, y = structured_pairs(torch.Generator().manual_seed(1))
    ours = ssim(x, y, backend=backend)
    ref = torch.tensor([sk_ssim(x[i], y[i]) for i in range(len(x))])
    assert torch.allclose(ours.double(), ref, atol=2e-6, rtol=0)
    # and in float64 the agreement is to rounding
    assert torch.allclose(ssim(x.double(), y.double(), backend=backend), ref, atol=1e-12, rtol=0)
    # the pairs span a wide range of values, so the check is not of one trivial case
    assert ref.min() < 0 and ref.max() > 0.5


def test_ssim_batches_over_leading_dims_and_chunks():
    gen = torch.Generator().manual_seed(2)
    x = torch.rand(3, 2, 4, 1, 64, 64, generator=gen)  # [K, B, F, C, H, W]
    y = torch.rand(3, 2, 4, 1, 64, 64, generator=gen)
    full = ssim(x, y)
    assert full.shape == (3, 2, 4)
    assert torch.allclose(full, ssim(x, y, chunk=5))
    assert torch.allclose(full, ssim(x, y, backend="msssim"), atol=1e-6)
    assert math.isclose(float(full[1, 0, 2]), sk_ssim(x[1, 0, 2], y[1, 0, 2]), abs_tol=2e-6)


def test_ssim_of_identical_images_is_one():
    x = torch.rand(4, 1, 64, 64)
    assert torch.allclose(ssim(x, x), torch.ones(4), atol=1e-6)


def test_ssim_errors():
    with pytest.raises(ValueError, match="shapes differ"):
        ssim(torch.rand(2, 1, 64, 64), torch.rand(3, 1, 64, 64))
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8))
    with pytest.raises(ValueError, match="backend"):
        ssim(torch.rand(2, 1, 64, 64), torch.rand(2, 1, 64, 64), backend="fft")


def test_band_matrix_is_valid_filtering():
    v = torch.rand(64, dtype=torch.float64)
    expected = torch.stack([(v[i : i + 11] * gaussian_window(dtype=torch.float64)).sum()
                            for i in range(54)])  # fmt: skip
    assert band_matrix(64, torch.float64).shape == (54, 64)
    assert torch.allclose(band_matrix(64, torch.float64) @ v, expected)


def test_psnr_matches_hand_computation_and_skimage():
    gen = torch.Generator().manual_seed(3)
    x = torch.rand(2, 3, 1, 64, 64, generator=gen)
    y = (x + 0.1 * torch.randn(2, 3, 1, 64, 64, generator=gen)).clamp(0, 1)
    ours = psnr(x, y)
    assert ours.shape == (2, 3)
    err = ((x.double() - y.double()) ** 2).mean(dim=(-3, -2, -1))
    assert torch.allclose(ours.double(), 10 * torch.log10(1 / err), atol=1e-4)
    ref = peak_signal_noise_ratio(y[1, 2].double().numpy(), x[1, 2].double().numpy(), data_range=1)
    assert math.isclose(float(ours[1, 2]), ref, abs_tol=1e-4)
    assert torch.allclose(mse(x, y).double(), err, atol=1e-7)


def test_psnr_of_an_exact_copy_is_capped_or_infinite():
    x = torch.rand(3, 1, 64, 64)
    assert torch.all(psnr(x, x) == PSNR_CAP_DB)
    assert torch.all(torch.isinf(psnr(x, x, max_db=None)))
    assert torch.all(psnr(x, x, max_db=42.0) == 42.0)


def test_best_mean_worst_by_hand():
    # K=3 samples, N=2 sequences, F=2 frames
    scores = torch.tensor(
        [
            [[0.9, 0.1], [0.5, 0.5]],
            [[0.4, 0.4], [0.2, 0.9]],
            [[0.3, 0.2], [0.6, 0.6]],
        ]
    )
    out = best_mean_worst(scores)
    # sequence 0: time averages 0.5, 0.4, 0.25 -> best sample 0, worst 2
    # sequence 1: 0.5, 0.55, 0.6 -> best sample 2, worst 0
    assert out["best_index"].tolist() == [0, 2]
    assert out["worst_index"].tolist() == [2, 0]
    assert torch.allclose(out["best"], torch.tensor([[0.9, 0.1], [0.6, 0.6]]))
    assert torch.allclose(out["worst"], torch.tensor([[0.3, 0.2], [0.5, 0.5]]))
    assert torch.allclose(out["mean"], scores.mean(0))
    # the best curve is the best *on average*: at frame 1 of sequence 0 it is below the mean
    assert out["best"][0, 1] < out["mean"][0, 1]
    low = best_mean_worst(scores, higher_is_better=False)
    assert low["best_index"].tolist() == [2, 0]


def test_best_mean_worst_ordering_of_time_averages():
    gen = torch.Generator().manual_seed(4)
    scores = torch.rand(7, 50, 6, generator=gen)
    out = best_mean_worst(scores)
    best, mean, worst = (out[k].mean(1) for k in ("best", "mean", "worst"))
    assert torch.all(best >= mean) and torch.all(mean >= worst)
    assert torch.allclose(best, scores.mean(2).max(0).values)
    with pytest.raises(ValueError):
        best_mean_worst(torch.rand(3, 4))


def test_mean_ci95_matches_numpy():
    gen = torch.Generator().manual_seed(5)
    values = torch.randn(40, 3, generator=gen)
    mean, ci = mean_ci95(values)
    v = values.double().numpy()
    assert np.allclose(mean.numpy(), v.mean(0))
    assert np.allclose(ci.numpy(), Z95 * v.std(0, ddof=1) / math.sqrt(40))
    m1, c1 = mean_ci95(values[:1])
    assert torch.all(c1 == 0) and torch.allclose(m1, values[0].double())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_ssim_psnr_on_gpu_match_cpu():
    gen = torch.Generator().manual_seed(6)
    x = torch.rand(4, 5, 1, 64, 64, generator=gen)
    y = torch.rand(4, 5, 1, 64, 64, generator=gen)
    for backend in BACKENDS:
        assert torch.allclose(
            ssim(x.cuda(), y.cuda(), backend=backend).cpu(), ssim(x, y), atol=1e-5
        )
    assert torch.allclose(psnr(x.cuda(), y.cuda()).cpu(), psnr(x, y), atol=1e-4)
