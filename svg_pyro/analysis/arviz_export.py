"""The ArviZ export: a model's latents, reconstructions, likelihoods, KL and forecasts of a batch of
sequences as an :class:`arviz.InferenceData` (:func:`to_inference_data`).

Indexing: frames are ``x_0..x_{T-1}``; latents ``z_1..z_{T-1}``, ``z_t`` explains frame ``t``
and its prior has seen ``x_0..x_{t-1}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from pyro import poutine

from svg_pyro.analysis._common import eval_context, require_latent
from svg_pyro.analysis.kl import step_distributions, step_kl
from svg_pyro.svg import SVG

if TYPE_CHECKING:
    import arviz

__all__ = ["to_inference_data"]


@torch.no_grad()
def to_inference_data(
    svg: SVG,
    frames: torch.Tensor,
    n_draws: int = 100,
    chains: int = 1,
    predictive: str = "auto",
    max_predictive_values: int = 20_000_000,
    chunk_frames: int = 2048,
    seed: int | None = None,
    eval_mode: bool = True,
    forecast_context: int | None = None,
) -> arviz.InferenceData:
    """Draws of the latents of ``frames [B, T, C, H, W]`` as an :class:`arviz.InferenceData`.

    ``chains * n_draws`` independent draws (``chain`` only splits them, so that ``az.summary`` can
    report R-hat; guide draws are exact, not MCMC). Groups, with coordinates ``sequence``
    ``0..B-1``, ``time`` ``1..T-1`` (the frames that have a latent), ``latent`` ``0..z_dim-1``
    (ConvLSTM models, whose ``z_t`` are maps, add ``latent_height`` and ``latent_width``):

    * ``posterior.z`` ``(chain, draw, sequence, time, latent)``: draws from the guide
      q(z_t | x_{0:t}).
    * ``prior.z`` (same dims): draws from the model's prior p(z_t | x_{0:t-1}) given the same,
      true frames (teacher-forced, as the paper trains).
    * ``posterior_predictive``: with ``predictive="frames"``, ``x`` ``(chain, draw, sequence,
      time, channel, height, width)``, the decoder's mean of x_t for each posterior draw (the
      reconstruction, without pixel noise); with ``"summary"``, ``x_mse`` ``(chain, draw,
      sequence, time)``, the mean-pixel squared error of that reconstruction against x_t.
      ``"auto"`` stores frames when they hold at most ``max_predictive_values`` numbers.
      With ``forecast_context = P`` (1 <= P < T) it also holds forecasts: ``x_forecast``
      ``(chain, draw, sequence, forecast_time, channel, height, width)``, frames P..T-1
      generated from the first P frames alone by ``Predictive(svg.model, guide=svg.guide)``
      (the paper's scheme: posterior latents in the context, prior latents and fed-back means
      after it; each draw its own future), or with ``"summary"`` ``x_forecast_mse``
      ``(chain, draw, sequence, forecast_time)`` against the observed frames. ``forecast_time``
      numbers frames as ``time`` does, so ``observed_data.x.sel(time=...)`` is the truth.
    * ``observed_data.x`` ``(sequence, time, channel, height, width)``: x_1..x_{T-1}, the observed
      sites; ``constant_data.x_0`` ``(sequence, channel, height, width)``: the first frame, which
      conditions everything but is not scored.
    * ``log_likelihood.x`` ``(chain, draw, sequence, time)``: log N(x_t | x_hat_t, obs_sigma)
      summed over the C*H*W pixels, in nats, where x_hat_t is decoded from the posterior draw
      (the likelihood at beta = 1: the KL weight plays no part).
    * ``sample_stats.kl`` ``(chain, draw, sequence, time)``: KL(q(z_t|.) || p(z_t|.)) in nats;
      the closed form (equal for every draw) where one exists, else the one-draw Monte Carlo
      estimate ``log q(z) - log p(z)`` at that draw (``attrs["kl_method"]`` says which).

    ``q`` and ``p`` are read off traces of ``svg.guide`` and ``svg.model``; the reconstructions
    come from ``svg.model`` conditioned on the posterior draws, run on copies of the batch with at
    most ``chunk_frames`` frames per call (no Python loop over single draws). With ``eval_mode``
    the networks use BatchNorm's running statistics (the module's mode is restored afterwards).
    """
    predictive = _check(svg, frames, n_draws, chains, predictive, forecast_context)
    if predictive == "auto":
        b, t_total = frames.shape[:2]
        forecast_frames = 0 if forecast_context is None else t_total - forecast_context
        size = chains * n_draws * b * (t_total - 1 + forecast_frames) * frames[0, 0].numel()
        predictive = "frames" if size <= max_predictive_values else "summary"
    devices = [frames.device] if frames.device.type == "cuda" else []
    with (
        torch.random.fork_rng(devices=devices, enabled=seed is not None),
        eval_context(svg, eval_mode),
    ):
        if seed is not None:
            torch.manual_seed(seed)
        d = _draw(svg, frames, chains * n_draws, predictive, chunk_frames, forecast_context)
    return _inference_data(svg, frames, d, chains, predictive, forecast_context)


def _check(
    svg: SVG,
    frames: torch.Tensor,
    n_draws: int,
    chains: int,
    predictive: str,
    forecast_context: int | None,
) -> str:
    """:func:`to_inference_data`'s arguments checked (``ValueError`` otherwise); returns
    ``predictive``."""
    require_latent(svg)
    svg.check_frames(frames)
    if n_draws < 1 or chains < 1:
        raise ValueError(f"need n_draws >= 1 and chains >= 1, got {n_draws}, {chains}")
    if predictive not in ("auto", "frames", "summary"):
        raise ValueError(f"predictive must be auto, frames or summary, got {predictive!r}")
    t_total = frames.shape[1]
    if forecast_context is not None and not 1 <= forecast_context < t_total:
        raise ValueError(
            f"forecast_context must lie in 1..{t_total - 1} (frames has {t_total}), "
            f"got {forecast_context}"
        )
    return predictive


def _draw(
    svg: SVG,
    frames: torch.Tensor,
    n: int,
    predictive: str,
    chunk_frames: int,
    forecast_context: int | None,
) -> dict[str, Any]:
    """``n`` draws of everything :func:`to_inference_data` stores, ``[n, ...]`` each (the random
    draws in a fixed order: posterior, prior, forecasts): ``z_post``, ``z_prior``, ``kl`` ``[n,
    B, T-1]`` with its ``methods``, ``log_lik``, ``recon`` and, given ``forecast_context``,
    ``forecast``."""
    b, t_total = frames.shape[:2]
    # q and p of every step from the Pyro program itself (any prior, guide or network).
    post_steps, prior_steps = step_distributions(svg, frames)
    z_post = torch.stack([q.sample((n,)) for q in post_steps], 2)  # [n, B, L, *latent]
    z_prior = torch.stack([p.sample((n,)) for p in prior_steps], 2)
    kl, methods = step_kl(post_steps, prior_steps, z=z_post)
    out = {"z_post": z_post, "z_prior": z_prior, "methods": methods}
    out["kl"] = kl.expand(n, b, t_total - 1)  # the closed form is equal for every draw
    out["log_lik"], out["recon"] = _reconstructions(svg, frames, z_post, predictive, chunk_frames)
    if forecast_context is not None:
        forecast = _forecasts(svg, frames, forecast_context, n, chunk_frames)
        if predictive == "summary":
            truth = frames[:, forecast_context:].float().cpu()
            forecast = (forecast - truth).pow(2).flatten(3).mean(-1)
        out["forecast"] = forecast
    return out


def _reconstructions(
    svg: SVG, frames: torch.Tensor, z_post: torch.Tensor, predictive: str, chunk_frames: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The log-likelihood ``[n, B, T-1]`` of ``frames [B, T, ...]`` under ``svg.model``
    conditioned on the posterior draws ``z_post [n, B, T-1, *latent]``, and the decoded means
    ``[n, B, T-1, C, H, W]`` (``predictive="frames"``) or their mean-pixel squared error
    ``[n, B, T-1]``; run on k copies of the batch at a time (CPU)."""
    n, b, length = z_post.shape[:3]
    latent_shape = tuple(z_post.shape[3:])
    per_chunk = max(1, chunk_frames // (b * length))
    target = frames[:, 1:].float()
    log_lik, recon = [], []
    for start in range(0, n, per_chunk):
        k = min(per_chunk, n - start)
        rep = frames.unsqueeze(0).expand(k, *frames.shape).reshape(k * b, *frames.shape[1:])
        z = z_post[start : start + k]
        data = {
            f"z_{t}": z[:, :, t - 1].reshape(k * b, *latent_shape) for t in range(1, length + 1)
        }
        tr = poutine.trace(poutine.condition(svg.model, data=data)).get_trace(rep)
        x_sites = [tr.nodes[f"x_{t}"] for t in range(1, length + 1)]
        lp = torch.stack([x["fn"].log_prob(x["value"]) for x in x_sites], 1)  # [k*B, L]
        log_lik.append(lp.view(k, b, length).float().cpu())
        x_hat = torch.stack([x["fn"].mean for x in x_sites], 1).float()
        x_hat = x_hat.view(k, b, length, *frames.shape[2:])
        if predictive == "frames":
            recon.append(x_hat.cpu())
        else:
            recon.append((x_hat - target).pow(2).flatten(3).mean(-1).cpu())
    return torch.cat(log_lik, 0), torch.cat(recon, 0)


def _inference_data(
    svg: SVG,
    frames: torch.Tensor,
    d: dict[str, Any],
    chains: int,
    predictive: str,
    forecast_context: int | None,
) -> arviz.InferenceData:
    """The draws ``d`` of :func:`_draw` as :func:`to_inference_data`'s groups, dims and
    coordinates."""
    import arviz as az

    b, t_total = frames.shape[:2]
    pixel_dims = tuple(frames.shape[2:])
    latent_shape = tuple(d["z_post"].shape[3:])

    def draws(x: torch.Tensor) -> np.ndarray:  # [n, ...] -> [chains, n_draws, ...]
        return x.detach().float().cpu().reshape(chains, -1, *x.shape[1:]).numpy()

    step = ["sequence", "time"]
    pixels = ["channel", "height", "width"]
    latent_dims = ["latent", "latent_height", "latent_width"][: len(latent_shape)]
    if len(latent_dims) < len(latent_shape):
        latent_dims += [f"latent_{i}" for i in range(len(latent_dims), len(latent_shape))]
    coords = {
        "sequence": np.arange(b),
        "time": np.arange(1, t_total),
        **{name: np.arange(size) for name, size in zip(latent_dims, latent_shape)},
        "channel": np.arange(pixel_dims[0]),
        "height": np.arange(pixel_dims[1]),
        "width": np.arange(pixel_dims[2]),
    }
    if predictive == "frames":
        pp, pp_dims = {"x": draws(d["recon"])}, {"x": step + pixels}
    else:
        pp, pp_dims = {"x_mse": draws(d["recon"])}, {"x_mse": step}
    if forecast_context is not None:
        coords["forecast_time"] = np.arange(forecast_context, t_total)
        name = "x_forecast" if predictive == "frames" else "x_forecast_mse"
        pp[name] = draws(d["forecast"])
        pp_dims[name] = ["sequence", "forecast_time"] + (pixels if predictive == "frames" else [])
    dims = {
        "z": [*step, *latent_dims],
        "kl": step,
        "x": step + pixels,
        "x_0": ["sequence", *pixels],
        **pp_dims,
    }
    frames_np = frames.detach().float().cpu().numpy()
    return az.from_dict(
        posterior={"z": draws(d["z_post"])},
        prior={"z": draws(d["z_prior"])},
        posterior_predictive=pp,
        observed_data={"x": frames_np[:, 1:]},
        constant_data={"x_0": frames_np[:, 0]},
        log_likelihood={"x": draws(d["log_lik"])},
        sample_stats={"kl": draws(d["kl"])},
        coords=coords,
        dims=dims,
        attrs={
            "inference_library": "pyro",
            "model": f"svg-pyro {svg.config.variant}",
            "prior": svg.config.prior,
            "obs_sigma": float(svg.config.obs_sigma),
            "kl_method": "+".join(sorted(d["methods"])),
            "posterior_predictive": predictive,
            "forecast_context": -1 if forecast_context is None else int(forecast_context),
            "log_likelihood": "log N(x_t | decoder mean given z ~ q, obs_sigma), summed over "
            "pixels, nats, beta = 1",
        },
    )


def _forecasts(
    svg: SVG, frames: torch.Tensor, n_past: int, n: int, chunk_frames: int
) -> torch.Tensor:
    """``n`` forecasts of frames ``n_past..T-1`` of ``frames [B, T, ...]`` from their first
    ``n_past`` frames, by ``Predictive`` with the guide: ``[n, B, T - n_past, C, H, W]`` (CPU).

    Each ``Predictive`` run forecasts k copies of the batch (k from ``chunk_frames``), so it
    takes ``ceil(n / k)`` runs of the model rather than ``n``.
    """
    from pyro.infer import Predictive

    b, t_total = frames.shape[:2]
    n_future = t_total - n_past
    k = max(1, min(n, chunk_frames // (b * (t_total - 1))))
    runs = -(-n // k)
    context = frames[:, :n_past]
    context = context.unsqueeze(0).expand(k, *context.shape).reshape(k * b, *context.shape[1:])
    sites = [f"x_hat_{t}" for t in range(n_past, t_total)]
    out = Predictive(svg.model, guide=svg.guide, num_samples=runs, return_sites=sites)(
        context, n_future=n_future
    )
    x = torch.stack([out[s] for s in sites], 2).float()  # [runs, k*B, F, C, H, W]
    return x.reshape(runs * k, b, n_future, *frames.shape[2:])[:n].cpu()
