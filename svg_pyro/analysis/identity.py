"""Do the digits stay digits? Each digit's own image found again in forecast frames.

A Stochastic Moving MNIST test sequence is drawn from known digit images (replayed from the test
set's seed by :func:`digit_images`). A digit is *recognisable* in a frame when its image
correlates with some 32x32 window of the frame at least ``threshold`` (Pearson correlation of
the pixels, the best window: a forecast may put the digit elsewhere than the truth does). A
blurred blob, a digit morphed into another or a missing digit correlates poorly with the image.

The threshold is calibrated on the true future frames (:func:`calibrate`): the correlation of
each digit's own image (genuine) against that of a digit image of another sequence (impostor),
set so that impostors pass ``false_match`` of the time (5%). :func:`identity_frames` counts, per
forecast, the predicted frames from the first on in which every digit is recognisable.

Frames are ``[..., 64, 64]`` or ``[..., 1, 64, 64]``, values in [0, 1]; digit images
``[D, 32, 32]``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pyro import poutine

from svg_pyro import viz
from svg_pyro.checkpoint import check_testset
from svg_pyro.data.moving_mnist import DIGIT_SIZE, StochasticMovingMNIST
from svg_pyro.data.testsets import load_testset
from svg_pyro.loaded import load_trained
from svg_pyro.svg import sampling_mode

EPS = 1e-6  # a window with less pixel variance than this (blank) matches nothing


def best_match(frames: torch.Tensor, glyphs: torch.Tensor) -> torch.Tensor:
    """The best correlation of each digit image with a window of each frame.

    ``frames [N, T, (1,) H, W]`` (sequence ``n``'s frames), ``glyphs [N, D, 32, 32]`` (its digit
    images) -> ``[N, T, D]`` in [-1, 1]: the Pearson correlation of the digit image with the
    frame's 32x32 window where it is largest (0 where the window is blank).
    """
    if frames.dim() == 5:
        frames = frames.squeeze(2)
    n, t, h, w = frames.shape
    d = glyphs.shape[1]
    k = DIGIT_SIZE * DIGIT_SIZE
    x = frames.float().transpose(0, 1)  # [T, N, H, W]: sequences as channels, one group each
    g = glyphs.float().reshape(n * d, 1, DIGIT_SIZE, DIGIT_SIZE)
    g = g - g.mean((2, 3), keepdim=True)
    g_norm = g.flatten(1).norm(dim=1).clamp_min(EPS)  # [N*D]
    num = F.conv2d(x, g, groups=n)  # [T, N*D, h', w']: sum over the window of x (g - mean g)
    s1 = F.avg_pool2d(x, DIGIT_SIZE, stride=1) * k
    s2 = F.avg_pool2d(x * x, DIGIT_SIZE, stride=1) * k
    var = (s2 - s1 * s1 / k).clamp_min(0.0)  # [T, N, h', w']: the window's sum of squares
    x_norm = var.repeat_interleave(d, dim=1).sqrt()
    r = torch.where(x_norm > EPS, num / (x_norm * g_norm[None, :, None, None]).clamp_min(EPS), 0)
    best = r.flatten(2).amax(2)  # [T, N*D]
    return best.reshape(t, n, d).transpose(0, 1)


def identity_frames(match: torch.Tensor, threshold: float) -> torch.Tensor:
    """``match [..., T, D]`` (from :func:`best_match` on forecast frames) -> ``[...]`` long:
    the number of frames from the first on in which every digit matches at least ``threshold``."""
    ok = (match >= threshold).all(-1).long()  # [..., T]
    return ok.cumprod(-1).sum(-1)


def calibrate(
    frames: torch.Tensor, glyphs: torch.Tensor, false_match: float = 0.05
) -> dict[str, float]:
    """The threshold at which another sequence's digit image matches the true ``frames`` (``[N,
    T, (1,) H, W]``, the future frames) in ``false_match`` of the cases.

    Impostors: sequence ``n`` scored with the digit images of sequence ``n + 1`` (mod N).
    Returns ``threshold``, ``genuine_rate`` (the share of true digits in true frames that pass
    it) and ``impostor_rate`` (the share of impostors that pass it, about ``false_match``).
    """
    if frames.shape[0] < 2:
        raise ValueError("calibration needs at least 2 sequences (impostors come from the next)")
    genuine = best_match(frames, glyphs)
    impostor = best_match(frames, glyphs.roll(-1, dims=0))
    threshold = float(torch.quantile(impostor.flatten().double(), 1.0 - false_match))
    return {
        "threshold": threshold,
        "genuine_rate": float((genuine >= threshold).float().mean()),
        "impostor_rate": float((impostor >= threshold).float().mean()),
    }


def digit_images(path: str | Path, mnist_root: str | None = None) -> torch.Tensor:
    """The digit images of every sequence of a stored SM-MNIST test set (``svg-pyro data
    smmnist-testset``), replayed from its seed: ``[N, D, 32, 32]`` in [0, 1].

    ``mnist_root`` must be given for a set drawn from the full MNIST files (its ``meta`` says
    ``"digits": "mnist"``). The images are checked against the stored first frame.
    """
    return _replayed_images(load_testset(path), path, mnist_root)


def _replayed_images(
    data: dict[str, np.ndarray], path: str | Path, mnist_root: str | None
) -> torch.Tensor:
    """:func:`digit_images` of the test set ``data`` already read from ``path``."""
    if "meta" not in data:
        raise ValueError(f"{path} has no 'meta' (not an SM-MNIST test set of this package)")
    meta = json.loads(str(data["meta"]))
    if meta.get("dataset") != "smmnist":
        raise ValueError(f"{path} is a {meta.get('dataset')!r} test set, not SM-MNIST")
    if meta.get("digits") == "mnist" and mnist_root is None:
        raise ValueError(f"{path} was drawn from the full MNIST files: pass mnist_root")
    frames = data["frames"]
    n, t = frames.shape[:2]
    ds = StochasticMovingMNIST(
        num_digits=int(meta["num_digits"]),
        seq_len=t,
        deterministic=bool(meta.get("deterministic", False)),
        split="test",
        seed=int(meta["seed"]),
        length=n,
        mnist_root=mnist_root if meta.get("digits") == "mnist" else None,
    )
    glyphs = torch.from_numpy(np.stack([ds.glyphs(i) for i in range(n)]))
    first = ds[0]["frames"][0, 0].numpy()
    if np.abs(first - frames[0, 0, 0] / 255.0).max() > 1.0 / 255:
        raise ValueError(f"{path}'s first frame is not the one its seed draws: other digits?")
    return glyphs


@torch.no_grad()
def testset_identity(
    testset: str | Path,
    n_past: int,
    mnist_root: str | None = None,
    false_match: float = 0.05,
) -> tuple[torch.Tensor, float]:
    """``(digit images [N, D, 32, 32], threshold)`` of a stored SM-MNIST test set: what scoring
    one forecast of sequence ``n`` needs (``identity_frames(best_match(forecast, images[n]),
    threshold)``), the threshold calibrated on the whole set's future frames as
    :func:`run_identity` calibrates it."""
    data = load_testset(testset)
    glyphs = _replayed_images(data, testset, mnist_root)
    future = torch.from_numpy(data["frames"][:, n_past:]).float() / 255.0
    return glyphs, calibrate(future, glyphs, false_match)["threshold"]


@dataclass
class IdentityLabels:
    """The identity frames of forecasts of a stored SM-MNIST test set, one sequence at a time:
    what labels the pictures of ``svg-pyro sample --identity``
    (:func:`svg_pyro.sample.run_sampling`). ``glyphs [N, D, 32, 32]`` are the set's digit
    images, ``threshold`` the correlation a digit must reach (calibrated on the whole set's
    future frames, :func:`testset_identity`)."""

    glyphs: torch.Tensor
    threshold: float

    @classmethod
    def of_testset(
        cls, testset: str | Path, n_past: int, mnist_root: str | None = None
    ) -> IdentityLabels:
        """The labels of the test set ``testset`` forecast from ``n_past`` context frames."""
        return cls(*testset_identity(testset, n_past, mnist_root))

    @torch.no_grad()
    def label(
        self, index: int, truth: torch.Tensor, samples: torch.Tensor
    ) -> tuple[list[str], dict[str, Any]]:
        """Sequence ``index``'s ``truth [F, 1, 64, 64]`` and ``samples [K, F, 1, 64, 64]`` ->
        one note per picture row (the truth's, then each sample's: ``"id n/F"``) and the record
        ``{"identity_frames": [K], "truth_identity_frames": n}``."""
        g = self.glyphs[index : index + 1].to(samples.device)
        kept_truth = int(identity_frames(best_match(truth[None], g), self.threshold)[0])
        kept = identity_frames(
            best_match(samples, g.expand(samples.shape[0], -1, -1, -1)), self.threshold
        ).tolist()
        notes = [f"id {n}/{truth.shape[0]}" for n in [kept_truth, *kept]]
        return notes, {"identity_frames": kept, "truth_identity_frames": kept_truth}


@torch.no_grad()
def forecast_matches(
    svg,
    frames: torch.Tensor,
    glyphs: torch.Tensor,
    n_past: int = 5,
    n_samples: int = 20,
    batch_size: int = 16,
    seed: int = 0,
    return_ink: bool = False,
    bn_train_mode: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """:func:`best_match` of a model's sampled forecasts: ``frames [N, T, 1, 64, 64]`` in [0, 1]
    (the first ``n_past`` are the context, the rest are forecast), ``glyphs [N, D, 32, 32]`` ->
    ``[n_samples, N, T - n_past, D]``. :func:`identity_frames` of it counts each sample's
    frames in which the digits keep their identity. With ``return_ink``, also each forecast
    frame's :func:`ink` ``[n_samples, N, T - n_past]``. BatchNorm uses its running statistics,
    or with ``bn_train_mode`` the batch's, as the original release samples
    (:func:`svg_pyro.svg.sampling_mode`)."""
    device = next(svg.parameters()).device
    n_future = frames.shape[1] - n_past
    torch.manual_seed(seed)
    out, inks = [], []
    for i in range(0, frames.shape[0], batch_size):
        x = frames[i : i + batch_size].to(device)
        with sampling_mode(svg, bn_train_mode):
            samples = svg.generate(x[:, :n_past], n_future, n_samples).float().cpu()  # [K, B, F]
        _score(samples, glyphs[i : i + batch_size], out, inks)
    return (torch.cat(out, 1), torch.cat(inks, 1)) if return_ink else torch.cat(out, 1)


def _score(samples: torch.Tensor, glyphs: torch.Tensor, out: list, inks: list) -> None:
    """Append :func:`best_match` ``[K, B, F, D]`` and :func:`ink` ``[K, B, F]`` of ``samples
    [K, B, F, 1, 64, 64]`` (K draws of B sequences, whose digit images are ``glyphs [B, D, 32,
    32]``) to ``out`` and ``inks``."""
    k, b, f = samples.shape[:3]
    g = glyphs.repeat(k, 1, 1, 1)
    out.append(best_match(samples.flatten(0, 1), g).reshape(k, b, f, -1))
    inks.append(ink(samples))


def ink(frames: torch.Tensor) -> torch.Tensor:
    """The mean pixel value of each frame ``[..., 1, 64, 64]`` -> ``[...]``: how much of the
    digits is drawn. A forecast whose ink falls below the truth's fades to black; the black
    frame scores well on SSIM (most of an SM-MNIST frame is background), so fading can raise
    SSIM while the digits are lost."""
    return frames.mean((-3, -2, -1))


@torch.no_grad()
def teacher_forced_means(svg, frames: torch.Tensor, latents: str = "posterior") -> torch.Tensor:
    """One draw of the model's teacher-forced means of ``frames [B, T, C, 64, 64]`` after its
    ``n_past``: ``[B, T - n_past, C, 64, 64]`` (float32), latents from the guide
    (``"posterior"``) or the prior (``"prior"``), in the module's current mode. Every input is
    a true frame."""
    if latents == "posterior":
        guide_tr = poutine.trace(svg.guide).get_trace(frames)
        means = poutine.replay(svg.model, trace=guide_tr)(frames)
    else:
        means = svg.model(frames)
    return means[:, svg.config.n_past - 1 :].float()  # the model returns frames 1..T-1


@torch.no_grad()
def identity_grid(
    svg,
    frames: torch.Tensor,
    n_past: int = 5,
    teacher_forced: bool = False,
    bn_train_mode: bool = False,
    seed: int = 0,
    draw: int | None = None,
) -> np.ndarray:
    """A picture of where the digits go: for each sequence of ``frames [N, T, 1, 64, 64]`` (the
    first ``draw`` of them, default all), the truth (context and future, green), then with
    ``teacher_forced`` the teacher-forced means (posterior z; the deterministic model's own),
    then one sampled forecast (red). The networks run on all N sequences at once, so that with
    ``bn_train_mode`` the batch statistics are those of N sequences, not of the few drawn. An
    RGB image ``[height, width, 3]`` (uint8) for :func:`svg_pyro.viz.save_png`."""
    if teacher_forced and n_past != svg.config.n_past:
        raise ValueError(f"teacher-forced means follow the model's n_past={svg.config.n_past}")
    device = next(svg.parameters()).device
    x = frames.to(device)
    rows = []
    with torch.random.fork_rng(), sampling_mode(svg):
        torch.manual_seed(seed)
        if teacher_forced:
            latents = "posterior" if svg.prior is not None else "prior"
            rows.append(teacher_forced_means(svg, x, latents).cpu())
    with torch.random.fork_rng(), sampling_mode(svg, bn_train_mode):
        torch.manual_seed(seed)
        rows.append(svg.generate(x[:, :n_past], frames.shape[1] - n_past, 1)[0].float().cpu())
    blocks = [
        viz.sample_grid(frames[i, :n_past], frames[i, n_past:], torch.stack([r[i] for r in rows]))
        for i in range(frames.shape[0] if draw is None else min(draw, frames.shape[0]))
    ]
    return viz.stack_rows(blocks, gap=8)


@torch.no_grad()
def teacher_forced_matches(
    svg,
    frames: torch.Tensor,
    glyphs: torch.Tensor,
    latents: str = "posterior",
    n_samples: int = 20,
    batch_size: int = 16,
    seed: int = 0,
    return_ink: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """:func:`best_match` of the model's teacher-forced means of the frames after its ``n_past``
    (``svg.config.n_past``): every input is a true frame, as in training, so no error compounds.
    ``latents="posterior"`` draws each ``z_t`` from the guide, which has seen frame t (the
    model's reconstruction: what the decoder can render when told everything); ``"prior"`` draws
    it from the prior (one step ahead of the true past). The deterministic model has no
    latents: use ``"prior"`` (there is nothing to draw). ``frames [N, T, 1, 64, 64]``,
    ``glyphs [N, D, 32, 32]`` -> ``[n_samples, N, T - n_past, D]``, like
    :func:`forecast_matches`: set beside it, the two say whether a digit is lost in the
    rendering (already in the reconstruction) or in the rollout. With ``return_ink``, also
    each frame's :func:`ink` ``[n_samples, N, T - n_past]``."""
    if latents not in ("posterior", "prior"):
        raise ValueError(f"latents must be 'posterior' or 'prior', got {latents!r}")
    if latents == "posterior" and svg.prior is None:
        raise ValueError("the deterministic model (prior='none') has no posterior to draw from")
    n_past = svg.config.n_past
    if not 0 < n_past < frames.shape[1]:
        raise ValueError(f"need more than n_past={n_past} frames, got {frames.shape[1]}")
    device = next(svg.parameters()).device
    out, inks = [], []
    with torch.random.fork_rng(), sampling_mode(svg):
        torch.manual_seed(seed)
        for i in range(0, frames.shape[0], batch_size):
            x = frames[i : i + batch_size].to(device)
            draws = [teacher_forced_means(svg, x, latents).cpu() for _ in range(n_samples)]
            _score(torch.stack(draws), glyphs[i : i + batch_size], out, inks)
    return (torch.cat(out, 1), torch.cat(inks, 1)) if return_ink else torch.cat(out, 1)


def summarize_identity(
    match: torch.Tensor, threshold: float, inks: torch.Tensor | None = None
) -> dict[str, Any]:
    """``match [K, N, F, D]`` -> the identity frames' mean over samples and sequences, the mean
    over sequences of the best sample's, and per predicted frame the share of forecasts in which
    every digit is recognisable; with the frames' :func:`ink` ``[K, N, F]``, also its mean per
    predicted frame."""
    ids = identity_frames(match, threshold).float()  # [K, N]
    rate = (match >= threshold).all(-1).float().mean((0, 1))  # [F]
    out = {
        "identity_frames_mean": float(ids.mean()),
        "identity_frames_best": float(ids.amax(0).mean()),
        "recognisable_by_frame": [round(v, 4) for v in rate.tolist()],
    }
    if inks is not None:
        out["ink_by_frame"] = [round(v, 5) for v in inks.mean((0, 1)).tolist()]
    return out


def run_identity(
    checkpoint: str | Path,
    testset: str | Path,
    sequences: int | None = None,
    n_past: int = 5,
    n_samples: int = 20,
    seed: int = 0,
    false_match: float = 0.05,
    batch_size: int = 16,
    device: str = "auto",
    mnist_root: str | None = None,
    teacher_forced: bool = False,
    bn_train_mode: bool = False,
    plot: str | Path | None = None,
    plot_sequences: int = 2,
) -> dict[str, Any]:
    """The ``analyze identity`` report of a model on an SM-MNIST test set: the calibration on the
    set's true future frames, and :func:`summarize_identity` of the model's ``n_samples``
    forecasts, of the true future and of copy-last (its last context frame repeated). With
    ``teacher_forced``, also of :func:`teacher_forced_matches`: ``"teacher-forced posterior"``
    and ``"teacher-forced prior"`` (``"teacher-forced"`` alone for the deterministic model).
    ``bn_train_mode`` samples the forecasts with BatchNorm in training mode. With ``plot``, also
    writes :func:`identity_grid` of the first ``plot_sequences`` sequences there (PNG), run on
    a batch of ``batch_size`` sequences."""
    data = load_testset(testset)
    svg = load_trained(checkpoint, device).svg
    check_testset(data, svg, name=testset)  # before any work
    glyphs = _replayed_images(data, testset, mnist_root)
    frames = torch.from_numpy(data["frames"]).float() / 255.0
    if sequences is not None:
        if sequences < 2:
            raise ValueError(f"--sequences must be >= 2, got {sequences}")
        frames, glyphs = frames[:sequences], glyphs[:sequences]
    if not 0 < n_past < frames.shape[1]:
        raise ValueError(f"--n-past must be in 1..{frames.shape[1] - 1}, got {n_past}")
    future = frames[:, n_past:]
    calibration = calibrate(future, glyphs, false_match)
    threshold = calibration["threshold"]
    if teacher_forced and n_past != svg.config.n_past:
        raise ValueError(
            f"teacher-forced means follow the model's n_past={svg.config.n_past}: "
            f"use --n-past {svg.config.n_past}"
        )
    model, model_ink = forecast_matches(
        svg, frames, glyphs, n_past, n_samples, batch_size, seed, True, bn_train_mode
    )
    last = frames[:, n_past - 1 : n_past].expand_as(future)
    extra = {}
    if teacher_forced:
        kinds = ["posterior", "prior"] if svg.prior is not None else ["prior"]
        for kind in kinds:
            name = f"teacher-forced {kind}" if svg.prior is not None else "teacher-forced"
            k = n_samples if svg.prior is not None else 1
            m, m_ink = teacher_forced_matches(
                svg, frames, glyphs, kind, k, batch_size, seed, return_ink=True
            )
            extra[name] = summarize_identity(m, threshold, m_ink)
    drawn = {}
    if plot:
        batch = frames[: max(plot_sequences, batch_size)]  # a batch as the scores ran
        grid = identity_grid(
            svg, batch, n_past, teacher_forced, bn_train_mode, seed, draw=plot_sequences
        )
        drawn["plot"] = str(viz.save_png(plot, grid))
    return {
        "checkpoint": str(checkpoint),
        "testset": str(testset),
        "sequences": int(frames.shape[0]),
        "n_past": n_past,
        "n_future": int(future.shape[1]),
        "n_samples": n_samples,
        "seed": seed,
        "bn_train_mode": bn_train_mode,
        "calibration": {"false_match": false_match, **calibration},
        "methods": {
            "model": summarize_identity(model, threshold, model_ink),
            "truth": summarize_identity(
                best_match(future, glyphs)[None], threshold, ink(future)[None]
            ),
            "copy-last": summarize_identity(
                best_match(last, glyphs)[None], threshold, ink(last)[None]
            ),
            **extra,
        },
        **drawn,
    }
