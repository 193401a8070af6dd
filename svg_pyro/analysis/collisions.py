"""The collision study: does the learned prior's standard deviation rise when a Stochastic Moving
MNIST digit hits a wall (the paper's Figure 6, quantified)?

* :func:`prior_scale` gives the standard deviation of p(z_t | x_{0:t-1}) per frame: what the
  model thinks it does not know about the next frame; :func:`sigma_maps` the same over the
  frame for ConvLSTM models.
* :func:`collision_analysis` scores that sigma against the recorded wall hits
  (:func:`collision_labels`, :func:`collision_scores`) as a ROC AUC (:func:`roc_auc`, the
  Mann-Whitney statistic); :func:`run_collisions` is the whole experiment on a checkpoint,
  which ``svg-pyro analyze collisions`` (:mod:`svg_pyro.commands.analyze`) runs.

Indexing: frames are ``x_0..x_{T-1}``; latents ``z_1..z_{T-1}``, ``z_t`` explains frame ``t``
and its prior has seen ``x_0..x_{t-1}``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from svg_pyro import viz
from svg_pyro.analysis._common import eval_context, require_latent
from svg_pyro.data import smmnist_test_sequences
from svg_pyro.loaded import load_trained
from svg_pyro.svg import SVG

__all__ = [
    "DEFAULT_LAGS",
    "collision_analysis",
    "collision_labels",
    "collision_scores",
    "plot_collisions",
    "plot_sigma_heatmap",
    "prior_scale",
    "roc_auc",
    "run_collisions",
    "sigma_maps",
    "smmnist_collision_data",
]

#: The lags at which :func:`collision_analysis` also reports the AUC (``auc_by_lag``).
DEFAULT_LAGS = (0, 1, 2)


def _step_scale(d: torch.distributions.Distribution) -> torch.Tensor:
    """Standard deviation of one step's distribution ``[B, z]``; the scale where it is infinite."""
    try:
        std = d.stddev
        if torch.isfinite(std).all():
            return std
    except NotImplementedError:
        pass
    base = d
    while hasattr(base, "base_dist"):
        base = base.base_dist
    if not hasattr(base, "scale"):
        raise ValueError(f"cannot read a scale off {type(d).__name__}: no finite stddev or .scale")
    return base.scale.expand(d.batch_shape + d.event_shape)


@torch.no_grad()
def prior_scale(svg: SVG, frames: torch.Tensor, eval_mode: bool = True) -> torch.Tensor:
    """Std of p(z_t | x_{0:t-1}): ``frames [B, T, C, H, W]`` -> ``[B, T-1, *latent_shape]``.

    Column ``t - 1`` belongs to ``z_t`` (t = 1..T-1), teacher-forced on the true frames. For
    families with infinite variance the distribution's ``scale`` is used. Raises ``ValueError``
    for the deterministic model and for a prior without parameters (the fixed N(0, I): its sigma
    is the same for every frame, so it cannot tell frames apart).
    """
    require_latent(svg)
    svg.check_frames(frames)
    if not any(p.requires_grad for p in svg.prior.parameters()):
        raise ValueError(
            f"prior {svg.config.prior!r} has no learned parameters: its sigma is constant over "
            "frames (use a learned prior, e.g. --prior learned)"
        )
    with eval_context(svg, eval_mode):
        h, _ = svg.encode(frames)
        steps, _ = svg.prior(h[:, :-1])
        return torch.stack([_step_scale(d) for d in steps], 1).float()


# -- ROC AUC --------------------------------------------------------------------------------------
def roc_auc(scores: Any, labels: Any) -> float:
    """Area under the ROC curve of ``scores`` for binary ``labels`` (any equal shapes).

    The Mann-Whitney statistic: the probability that a random positive scores higher than a
    random negative, ties counted one half. Computed from average ranks in O(n log n).
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).astype(bool).ravel()
    if s.shape != y.shape:
        raise ValueError(f"scores and labels differ in size: {s.size} vs {y.size}")
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite")
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"need both classes, got {n_pos} positives and {n_neg} negatives")
    order = np.argsort(s, kind="mergesort")
    sorted_s = s[order]
    ranks = np.empty(len(s), dtype=np.float64)
    # Average rank (1-based) over each run of equal scores.
    boundaries = np.flatnonzero(np.diff(sorted_s)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(s)]])
    avg = (starts + ends + 1) / 2.0  # mean of ranks starts+1 .. ends
    ranks[order] = np.repeat(avg, ends - starts)
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


# -- collisions -----------------------------------------------------------------------------------
def collision_labels(bounces: Any, lag: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Which latent steps follow a wall hit: ``bounces [B, T(, K)]`` -> two ``[B, T-1]`` masks.

    ``bounces[b, f]`` is True when a digit hit a wall in frame ``f`` (any of K digits). Latent
    step ``z_t`` (column ``t - 1``) is labelled with frame ``f = t - lag``: with the default
    ``lag=1`` that is the last frame the prior saw, so a hit at frame ``f`` should raise the
    sigma of the prior for ``z_{f+1}``, the frame whose motion the hit made unpredictable.
    Returns ``(hits, valid)``; ``valid`` is False where ``t - lag`` is not a frame.
    """
    hit = np.asarray(bounces).astype(bool)
    if hit.ndim == 3:
        hit = hit.any(-1)
    if hit.ndim != 2 or hit.shape[1] < 2:
        raise ValueError(f"bounces must be [B, T>=2] or [B, T, K], got shape {hit.shape}")
    b, t_total = hit.shape
    frame = np.arange(1, t_total) - lag  # frame that labels z_t, per column
    valid = (frame >= 0) & (frame < t_total)
    hits = np.zeros((b, t_total - 1), dtype=bool)
    hits[:, valid] = hit[:, frame[valid]]
    return hits, np.broadcast_to(valid, hits.shape).copy()


def collision_scores(
    sigma: Any, bounces: Any, lag: int = 1, burn_in: int = 0
) -> dict[str, float | int]:
    """ROC AUC and mean sigma at hit vs other steps.

    ``sigma [B, T-1]`` (one score per latent step z_1..z_{T-1}), ``bounces [B, T(, K)]``. The
    first ``burn_in`` latent steps are left out (the prior has seen too few frames there to know
    a digit's velocity).
    """
    sigma = np.asarray(sigma, dtype=np.float64)
    hits, valid = collision_labels(bounces, lag)
    if sigma.shape != hits.shape:
        raise ValueError(f"sigma must be [B, T-1] = {list(hits.shape)}, got {list(sigma.shape)}")
    if burn_in < 0:
        raise ValueError(f"burn_in must be >= 0, got {burn_in}")
    valid[:, :burn_in] = False
    s, y = sigma[valid], hits[valid]
    if not y.any() or y.all():
        raise ValueError(
            f"{int(y.sum())} of the {y.size} scored steps follow a wall hit (lag {lag}, burn-in "
            f"{burn_in}): need both kinds; use more sequences or frames"
        )
    return {
        "auc": roc_auc(s, y),
        "mean_sigma_hit": float(s[y].mean()),
        "mean_sigma_other": float(s[~y].mean()),
        "n_hit": int(y.sum()),
        "n_other": int((~y).sum()),
    }


@torch.no_grad()
def collision_analysis(
    svg: SVG,
    frames: torch.Tensor,
    bounces: Any,
    lag: int = 1,
    burn_in: int = 0,
    lags: tuple[int, ...] = DEFAULT_LAGS,
    batch_size: int = 64,
    progress: bool = False,
) -> dict[str, Any]:
    """Does the learned prior's sigma rise when a digit hits a wall?

    ``frames [N, T, C, H, W]``, ``bounces [N, T, K]`` (as :class:`~svg_pyro.data.
    StochasticMovingMNIST` items hold them). The score of latent step ``z_t`` is the prior's
    standard deviation averaged over the latent's dimensions (:func:`prior_scale`). Returns the
    scores of :func:`collision_scores` at ``lag`` (top level), ``auc_by_lag`` for every lag in
    ``lags`` and ``sigma`` ``[N, T-1]`` (numpy) for plotting.
    """
    from tqdm.auto import tqdm

    device = next(svg.parameters()).device
    sigma = []
    for start in tqdm(range(0, len(frames), batch_size), disable=not progress, desc="prior"):
        chunk = frames[start : start + batch_size].to(device)
        sigma.append(prior_scale(svg, chunk).flatten(2).mean(-1).cpu())
    sigma_np = torch.cat(sigma, 0).numpy()
    out: dict[str, Any] = dict(collision_scores(sigma_np, bounces, lag, burn_in))
    out["lag"], out["burn_in"] = lag, burn_in
    out["auc_by_lag"] = {
        str(k): collision_scores(sigma_np, bounces, k, burn_in)["auc"] for k in lags
    }
    out["sigma"] = sigma_np
    return out


def plot_collisions(
    sigma: Any,
    bounces: Any,
    out_png: str | Path,
    lag: int = 1,
    n_show: int = 4,
    title: str | None = None,
) -> Path:
    """The paper's Figure 6 (:func:`svg_pyro.viz.plot_collision_sigma`) for ``sigma [N, T-1]``
    and the test set's ``bounces``, with hits scored at ``lag``; returns the PNG's path."""
    hits, valid = collision_labels(bounces, lag)
    return viz.plot_collision_sigma(sigma, bounces, hits, valid, out_png, lag, n_show, title)


def sigma_maps(svg: SVG, frames: torch.Tensor) -> torch.Tensor:
    """The ConvLSTM prior's sigma over the frame: ``[B, T-1, H, W]`` for ``frames [B, T, ...]``.

    The ``s x s`` map of p(z_t | x_{<t})'s standard deviation, averaged over latent channels and
    upsampled (nearest) to the frame size: where in the picture the model is uncertain about
    frame t. Only for ``rnn="conv"`` models, whose latent is a map.
    """
    if svg.config.rnn != "conv":
        raise ValueError("sigma heat maps need a ConvLSTM model (rnn='conv'): its z_t is a map")
    sigma = prior_scale(svg, frames).mean(2)  # [B, T-1, s, s]
    size = frames.shape[-1]
    return torch.nn.functional.interpolate(sigma, size=(size, size), mode="nearest")


def plot_sigma_heatmap(
    svg: SVG, frames: torch.Tensor, bounces: Any, out_png: str | Path, lag: int = 1
) -> Path:
    """Frames ``t = 1..T-1`` of a few sequences with the prior's sigma map over them
    (:func:`sigma_maps`, drawn by :func:`svg_pyro.viz.plot_sigma_maps`)."""
    maps = sigma_maps(svg, frames).cpu().numpy()
    labels, _ = collision_labels(bounces, lag)
    return viz.plot_sigma_maps(frames.cpu().numpy(), maps, labels, out_png)


def smmnist_collision_data(
    sequences: int,
    frames: int,
    num_digits: int,
    deterministic: bool = False,
    seed: int = 0,
    mnist_root: str | None = None,
) -> tuple[torch.Tensor, np.ndarray]:
    """Test-split SM-MNIST sequences with their wall hits: ``frames [N, T, 1, 64, 64]`` float in
    [0, 1], ``bounces [N, T, K]``; the same sequences ``data smmnist-testset`` stores."""
    data = smmnist_test_sequences(sequences, frames, num_digits, seed, deterministic, mnist_root,
                                  quantize=False)  # fmt: skip
    return torch.from_numpy(data["frames"]), data["bounces"]


def run_collisions(
    checkpoint: str | Path,
    sequences: int = 512,
    frames: int | None = None,
    num_digits: int | None = None,
    deterministic: bool | None = None,
    seed: int = 0,
    lag: int = 1,
    burn_in: int = 0,
    batch_size: int = 64,
    device: str = "auto",
    mnist_root: str | None = None,
    progress: bool = True,
    heatmap: str | Path | None = None,
) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """The ``analyze collisions`` experiment on a checkpoint; returns ``(report, sigma, bounces)``.

    Unset settings come from the checkpoint: ``frames`` = its training sequence length,
    ``num_digits`` and ``deterministic`` = its training data's. ``heatmap`` (ConvLSTM models
    only) also draws the sigma maps of the first sequences over their frames.
    """
    if sequences < 1:
        raise ValueError(f"--sequences must be >= 1, got {sequences}")
    run = load_trained(checkpoint, device)
    svg, data = run.svg, run.data
    require_latent(svg)
    if heatmap is not None and svg.config.rnn != "conv":
        raise ValueError("--heatmap needs a ConvLSTM model (rnn='conv'): its z_t is a map")
    if data.dataset != "smmnist":
        raise ValueError(
            f"collisions need Stochastic Moving MNIST; {checkpoint} was trained on {data.dataset!r}"
        )
    frames = svg.config.seq_len if frames is None else frames
    if frames < 3:
        raise ValueError(f"--frames must be >= 3, got {frames}")
    num_digits = data.num_digits if num_digits is None else num_digits
    if deterministic is None:
        deterministic = data.deterministic_motion
    x, bounces = smmnist_collision_data(
        sequences, frames, num_digits, deterministic, seed, mnist_root
    )
    result = collision_analysis(
        svg, x, bounces, lag=lag, burn_in=burn_in, batch_size=batch_size, progress=progress
    )
    sigma = result.pop("sigma")
    report = {
        "checkpoint": str(checkpoint),
        "checkpoint_step": run.step,
        "variant": svg.config.variant,
        "sequences": sequences,
        "frames": frames,
        "num_digits": num_digits,
        "deterministic_motion": deterministic,
        "seed": seed,
        "score": "prior standard deviation of z_t, mean over latent dimensions (eval-mode BN)",
        "label": f"a digit hit a wall in frame t - {lag} (the latent z_t explains frame t)",
        **result,
        "mean_sigma_by_time": sigma.mean(0).round(6).tolist(),
    }
    if heatmap is not None:
        k = min(3, sequences)
        device = next(svg.parameters()).device
        report["heatmap"] = str(
            plot_sigma_heatmap(svg, x[:k].to(device), bounces[:k], heatmap, lag)
        )
    return report, sigma, bounces
