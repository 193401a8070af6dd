"""The importance-weighted (IWAE) bound on log p(future | context), per test sequence.

``svg-pyro evaluate --iwae K`` reports it (:func:`iwae_summary`) beside the sample scores; see
:func:`log_weights` for exactly what it conditions on. Only the model and guide are run (Pyro
traces): nothing here samples futures or scores pictures.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyro
import torch
from pyro import poutine
from tqdm.auto import tqdm

from svg_pyro.data import to_float
from svg_pyro.metrics import mean_ci95
from svg_pyro.svg import SVG


@contextlib.contextmanager
def config_override(svg: SVG, **changes: Any) -> Iterator[SVG]:
    """Temporarily replace fields of ``svg.config`` (e.g. ``n_past``, ``obs_sigma``)."""
    changes = {k: v for k, v in changes.items() if v is not None}
    old = svg.config
    svg.config = dataclasses.replace(old, **changes) if changes else old
    try:
        yield svg
    finally:
        svg.config = old


@torch.no_grad()
def log_weights(
    svg: SVG,
    frames: torch.Tensor,
    n_past: int,
    n_particles: int,
    obs_sigma: float | None = None,
    max_frames: int = 4096,
) -> torch.Tensor:
    """Importance log-weights ``[K, B]`` (nats) of the future frames of ``frames [B, P+F, ...]``.

    Each particle k runs the guide and then the model replayed on it (Pyro traces, scale 1: the
    KL weight ``beta`` plays no part) over ``K * B`` copies of the batch at once, chunked so that
    at most ``max_frames`` frames are in flight (at least one particle), and returns::

        log w_k = sum_{t=P}^{P+F-1} [ log N(x_t; x_hat_t, obs_sigma)
                                      + log p(z_t | x_{<t}) - log q(z_t | x_{<=t}) ]

    with frames indexed from 0 (context 0..P-1). The context latents ``z_1..z_{P-1}`` are drawn
    from the posterior q, exactly as generation draws them, so their terms cancel: w_k is an
    unbiased estimate of ``p~(future | context) = E_{z_{1:P-1} ~ q} p(x_{P:} | x_{:P}, z_{1:P-1})``
    and ``logmeanexp_k log w_k`` is a lower bound on ``log p~`` that tightens as K grows. ``p~`` is
    the predictive density of the model that generation samples from, with Normal pixel noise on
    every frame (generation feeds back and shows the noise-free means).
    Skip connections come from the frame :meth:`SVG.skip_index` picks for ``n_past``.
    ``obs_sigma`` overrides the checkpoint's likelihood scale. The deterministic model has no
    latent: its single weight is the exact conditional log-likelihood.
    """
    b, t_total = frames.shape[:2]
    if not 1 <= n_past < t_total:
        raise ValueError(f"need 1 <= n_past < {t_total} frames, got n_past={n_past}")
    if n_particles < 1:
        raise ValueError(f"need at least one particle, got {n_particles}")
    per_call = max(1, max_frames // (b * t_total))
    out = []
    with config_override(svg, n_past=n_past, obs_sigma=obs_sigma), pyro.validation_enabled(False):
        done = 0
        while done < n_particles:
            k = min(per_call, n_particles - done)
            rep = frames.unsqueeze(0).expand(k, *frames.shape).reshape(k * b, *frames.shape[1:])
            with svg.shared_encoding():
                guide_tr = poutine.trace(svg.guide).get_trace(rep)
                model_tr = poutine.trace(poutine.replay(svg.model, trace=guide_tr)).get_trace(rep)
            lw = torch.zeros(k * b, dtype=torch.float64, device=frames.device)
            for t in range(n_past, t_total):
                x_site = model_tr.nodes[f"x_{t}"]
                lw += x_site["fn"].log_prob(x_site["value"]).double()
                if svg.prior is not None:
                    p_site, q_site = model_tr.nodes[f"z_{t}"], guide_tr.nodes[f"z_{t}"]
                    z = q_site["value"]
                    lw += (p_site["fn"].log_prob(z) - q_site["fn"].log_prob(z)).double()
            out.append(lw.view(k, b))
            done += k
    return torch.cat(out, 0)


def iwae_bound(log_w: torch.Tensor) -> torch.Tensor:
    """``log (1/K) sum_k exp(log_w[k])`` per sequence: ``[K, B]`` -> ``[B]``."""
    return torch.logsumexp(log_w, 0) - math.log(log_w.shape[0])


def evaluate_iwae(
    svg: SVG,
    frames: np.ndarray,
    n_past: int,
    n_future: int,
    n_particles: int,
    batch_size: int = 16,
    device: torch.device | str = "cpu",
    obs_sigma: float | None = None,
    progress: bool = True,
    desc: str = "iwae",
) -> dict[str, torch.Tensor]:
    """Per sequence ``iwae`` and ``elbo`` (mean of the K log-weights) in nats, ``[N]`` float64."""
    iwae, elbo = [], []
    k = 1 if svg.prior is None else n_particles
    with tqdm(total=len(frames), desc=desc, unit="seq", disable=not progress) as bar:
        for i in range(0, len(frames), batch_size):
            x = to_float(frames[i : i + batch_size, : n_past + n_future], device)
            lw = log_weights(svg, x, n_past, k, obs_sigma)
            iwae.append(iwae_bound(lw).cpu())
            elbo.append(lw.mean(0).cpu())
            bar.update(x.shape[0])
    return {"iwae": torch.cat(iwae), "elbo": torch.cat(elbo), "particles": k}


def iwae_summary(
    per_seq: dict[str, Any], n_future: int, dims: int, obs_sigma: float
) -> dict[str, Any]:
    """JSON block: bound and ELBO in nats per future frame and as NLL in bits per dimension."""
    out: dict[str, Any] = {
        "particles": int(per_seq["particles"]),
        "obs_sigma": float(obs_sigma),
        "dims_per_frame": int(dims),
        "beta": 1.0,
    }
    for key in ("iwae", "elbo"):
        per_frame = per_seq[key] / n_future
        bpd = -per_seq[key] / (n_future * dims * math.log(2.0))
        m, ci = mean_ci95(per_frame)
        out[f"{key}_nats_per_frame"] = {"mean": float(m), "ci95": float(ci)}
        m, ci = mean_ci95(bpd)
        out[f"{key}_bits_per_dim"] = {"mean": float(m), "ci95": float(ci)}
    return out
