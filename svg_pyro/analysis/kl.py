"""KL per frame: how many nats each latent step ``z_t`` carries, teacher-forced on true frames.

KL(q(z_t | x_{0:t}) || p(z_t | x_{0:t-1})) is what the model pays, per frame, to encode what its
prior could not foresee. A collapsed posterior shows as a KL near zero at every frame (and in
every latent dimension); a working one as a KL that rises where the future is uncertain (after
a wall hit, say).

* :func:`step_distributions`: q and p of every latent step, read off traces of ``svg.guide`` and
  ``svg.model`` (any prior, guide or network; the ArviZ export uses it too).
* :func:`step_kl`: their KL per step (closed form where one exists, else a one-draw Monte Carlo
  estimate), optionally per latent dimension.
* :func:`kl_per_frame`: both over a set of sequences in batches; :func:`run_kl` is the
  ``svg-pyro analyze kl`` experiment on a test set.

Indexing: frames are ``x_0..x_{T-1}``; latents ``z_1..z_{T-1}``, ``z_t`` explains frame ``t``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from pyro import poutine
from torch.distributions import Distribution, Independent, kl_divergence

from svg_pyro import viz
from svg_pyro.analysis._common import eval_context, require_latent
from svg_pyro.checkpoint import check_testset
from svg_pyro.data.testsets import load_testset, to_float
from svg_pyro.loaded import load_trained
from svg_pyro.svg import SVG

__all__ = ["ACTIVE_NATS", "kl_per_frame", "plot_kl", "run_kl", "step_distributions", "step_kl"]

#: Mean KL (nats) below which a latent dimension counts as inactive (``active_dimensions``).
ACTIVE_NATS = 0.01


def step_distributions(
    svg: SVG, frames: torch.Tensor
) -> tuple[list[Distribution], list[Distribution]]:
    """q(z_t | x_{0:t}) and p(z_t | x_{0:t-1}) for t = 1..T-1 of ``frames [B, T, C, H, W]``.

    The guide draws one z per step and the model is replayed on it, so a prior that depends on
    earlier latents sees the guide's draws, as in training: every frame is a true frame.
    """
    with svg.shared_encoding():
        guide_tr = poutine.trace(svg.guide).get_trace(frames)
        model_tr = poutine.trace(poutine.replay(svg.model, trace=guide_tr)).get_trace(frames)
    t_total = frames.shape[1]
    post = [guide_tr.nodes[f"z_{t}"]["fn"] for t in range(1, t_total)]
    prior = [model_tr.nodes[f"z_{t}"]["fn"] for t in range(1, t_total)]
    return post, prior


def _dimension_kl(q: Distribution, p: Distribution) -> torch.Tensor | None:
    """KL per latent dimension of two ``Independent`` distributions whose base families have a
    closed form (``None`` otherwise)."""
    if not (isinstance(q, Independent) and isinstance(p, Independent)):
        return None
    try:
        return kl_divergence(q.base_dist, p.base_dist)
    except NotImplementedError:
        return None


def step_kl(
    post: list[Distribution],
    prior: list[Distribution],
    z: torch.Tensor | None = None,
    by_dimension: bool = False,
) -> tuple[torch.Tensor, set[str]] | tuple[torch.Tensor, set[str], torch.Tensor | None]:
    """KL(q_t || p_t) per step: ``[*batch, T-1]`` in nats and the methods used.

    ``"analytic"`` where torch knows the closed form, else ``"monte-carlo"``: ``log q(z) - log
    p(z)`` at ``z [*batch, T-1, *latent]`` (drawn from q here when not given). With
    ``by_dimension``, also the KL per latent dimension ``[*batch, T-1, *latent]`` where every
    step is an ``Independent`` of a family with a closed form (else ``None``).
    """
    cols, methods = [], set()
    for i, (q, p) in enumerate(zip(post, prior)):
        try:
            cols.append(kl_divergence(q, p))
            methods.add("analytic")
        except NotImplementedError:
            zi = q.sample() if z is None else z[(..., i) + (slice(None),) * len(q.event_shape)]
            cols.append(q.log_prob(zi) - p.log_prob(zi))
            methods.add("monte-carlo")
    kl = torch.stack(torch.broadcast_tensors(*cols), -1)
    if not by_dimension:
        return kl, methods
    dims = [_dimension_kl(q, p) for q, p in zip(post, prior)]
    per_dim = None if any(d is None for d in dims) else torch.stack(dims, len(post[0].batch_shape))
    return kl, methods, per_dim


@torch.no_grad()
def kl_per_frame(
    svg: SVG,
    frames: torch.Tensor,
    batch_size: int = 64,
    eval_mode: bool = True,
    seed: int | None = 0,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray | None, set[str]]:
    """KL per latent step of every sequence of ``frames [N, T, C, H, W]`` (values in [0, 1]).

    Returns ``kl [N, T-1]``, the KL per dimension ``[N, T-1, *latent]`` (``None`` where the
    families have no closed form per dimension) and the methods used. ``eval_mode``: BatchNorm
    with the model's saved statistics; ``seed`` fixes the guide's draws (they matter only for
    priors that see earlier latents and for Monte Carlo estimates).
    """
    from tqdm.auto import tqdm

    require_latent(svg)
    svg.check_frames(frames)
    device = next(svg.parameters()).device
    kls, dims, methods = [], [], set()
    devices = [device] if device.type == "cuda" else []
    with (
        torch.random.fork_rng(devices=devices, enabled=seed is not None),
        eval_context(svg, eval_mode),
    ):
        if seed is not None:
            torch.manual_seed(seed)
        for start in tqdm(range(0, len(frames), batch_size), disable=not progress, desc="KL"):
            x = frames[start : start + batch_size].to(device).float()
            post, prior = step_distributions(svg, x)
            kl, used, per_dim = step_kl(post, prior, by_dimension=True)
            kls.append(kl.cpu())
            dims.append(None if per_dim is None else per_dim.cpu())
            methods |= used
    kl_np = torch.cat(kls, 0).double().numpy()
    dims_np = None if any(d is None for d in dims) else torch.cat(dims, 0).double().numpy()
    return kl_np, dims_np, methods


def run_kl(
    checkpoint: str | Path,
    testset: str | Path,
    sequences: int | None = None,
    frames: int | None = None,
    batch_size: int = 64,
    seed: int = 0,
    device: str = "auto",
    progress: bool = True,
    plot: str | Path | None = None,
) -> dict[str, Any]:
    """The ``analyze kl`` report of a model on a test set (``svg-pyro data ...`` .npz).

    The KL of the model's ELBO on the first ``frames`` frames of each sequence (default: the
    model's training length), every frame a true one (the model is the paper's, however it was
    trained), BatchNorm in eval mode.
    Reports the KL per frame averaged over everything (``kl_per_frame``), per latent step
    (``kl_by_time``, mean and 95% interval over sequences), per latent dimension
    (``kl_by_dimension``) and ``active_dimensions``: how many have a mean KL above
    ``ACTIVE_NATS`` (a collapsed posterior has none). ``plot`` draws ``kl_by_time`` (PNG).
    """
    x = load_testset(testset)["frames"]  # uint8 [N, T, C, H, W]
    if sequences is not None:
        if sequences < 1:
            raise ValueError(f"--sequences must be >= 1, got {sequences}")
        x = x[:sequences]
    run = load_trained(checkpoint, device)
    svg = run.svg
    x = check_testset(x, svg, name=testset)  # before any work
    require_latent(svg)
    frames = svg.config.seq_len if frames is None else frames
    if not 2 <= frames <= x.shape[1]:
        raise ValueError(f"--frames must be in 2..{x.shape[1]} (the test set's), got {frames}")
    x = to_float(x[:, :frames], "cpu")
    kl, per_dim, methods = kl_per_frame(svg, x, batch_size, seed=seed, progress=progress)
    n = len(kl)
    half = 1.96 * kl.std(0, ddof=1) / np.sqrt(n) if n > 1 else np.zeros(kl.shape[1])
    report: dict[str, Any] = {
        "checkpoint": str(checkpoint),
        "checkpoint_step": run.step,
        "variant": svg.config.variant,
        "prior": svg.config.prior,
        "testset": str(testset),
        "sequences": n,
        "frames": frames,
        "seed": seed,
        "setting": "teacher-forced on the true frames, BatchNorm in eval mode (saved statistics)",
        "method": "+".join(sorted(methods)),
        "kl_per_frame": float(kl.mean()),
        "kl_per_sequence": float(kl.sum(1).mean()),
        "kl_by_time": {
            "time": list(range(1, frames)),
            "mean": kl.mean(0).round(6).tolist(),
            "ci95": half.round(6).tolist(),
        },
    }
    if per_dim is not None:
        by_dim = per_dim.reshape(n, frames - 1, -1).mean((0, 1))
        report["kl_by_dimension"] = by_dim.round(6).tolist()
        report["active_dimensions"] = int((by_dim > ACTIVE_NATS).sum())
        report["active_nats"] = ACTIVE_NATS
    if plot is not None:
        report["plot"] = str(plot_kl(report, plot))
    return report


def plot_kl(report: dict[str, Any], path: str | Path) -> Path:
    """Draw ``report["kl_by_time"]`` (mean with its 95% interval) to ``path`` (PNG)."""
    t = np.asarray(report["kl_by_time"]["time"])
    mean = np.asarray(report["kl_by_time"]["mean"])
    ci = np.asarray(report["kl_by_time"]["ci95"])
    fig = viz.figure(figsize=(6, 3.2))
    ax = fig.subplots()
    ax.plot(t, mean, marker="o", ms=3)
    ax.fill_between(t, mean - ci, mean + ci, alpha=0.3)
    ax.set_xlabel("frame t (z_t explains x_t)")
    ax.set_ylabel("KL(q || p), nats")
    ax.set_title(
        f"{report['variant']}: KL per frame, {report['sequences']} sequences "
        f"(mean {report['kl_per_frame']:.2f})"
    )
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return viz.save_figure(fig, path)
