"""Posterior analysis: ArviZ export, the learned prior's sigma, and the collision experiment.

* :func:`to_inference_data` turns a model and a batch of sequences into an
  :class:`arviz.InferenceData` (posterior and prior draws of ``z``, reconstructions,
  log-likelihood, per-frame KL), so ``az.summary``, ``az.plot_forest`` and friends work on it.
* :func:`prior_scale` gives the standard deviation of p(z_t | x_{1:t-1}) per frame: what the
  model thinks it does not know about the next frame.
* :func:`collision_analysis` / ``svg-pyro analyze collisions`` measure how well that sigma picks
  out the frames where a Stochastic Moving MNIST digit hits a wall (the paper's Figure 6), as a
  ROC AUC (:func:`roc_auc`, the Mann-Whitney statistic).

Indexing: frames are ``x_0..x_{T-1}``; latents ``z_1..z_{T-1}``, ``z_t`` explains frame ``t``
and its prior has seen ``x_0..x_{t-1}``.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from pyro import poutine
from torch.distributions import kl_divergence

from svg_pyro import options, signals, viz
from svg_pyro.checkpoint import atomic_write_json, load_model
from svg_pyro.data import smmnist_test_sequences
from svg_pyro.device import resolve_device
from svg_pyro.svg import SVG, sampling_mode

if TYPE_CHECKING:
    import arviz

DEFAULT_LAGS = (0, 1, 2)


# -- helpers --------------------------------------------------------------------------------------
def _mode(svg: SVG, eval_mode: bool) -> contextlib.AbstractContextManager[SVG]:
    """BatchNorm with running statistics inside the block (:func:`svg_pyro.svg.sampling_mode`),
    or, with ``eval_mode=False``, the module in whatever mode it is in."""
    return sampling_mode(svg) if eval_mode else contextlib.nullcontext(svg)


def _require_latent(svg: SVG) -> None:
    if svg.prior is None:
        raise ValueError(
            "the deterministic model (prior='none') has no latent z: nothing to analyse"
        )


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


# -- ArviZ export ---------------------------------------------------------------------------------
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
      true frames (teacher-forced, as in training).
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
    import arviz as az

    _require_latent(svg)
    svg.check_frames(frames)
    if n_draws < 1 or chains < 1:
        raise ValueError(f"need n_draws >= 1 and chains >= 1, got {n_draws}, {chains}")
    if predictive not in ("auto", "frames", "summary"):
        raise ValueError(f"predictive must be auto, frames or summary, got {predictive!r}")
    b, t_total = frames.shape[:2]
    length, n = t_total - 1, chains * n_draws
    if forecast_context is not None and not 1 <= forecast_context < t_total:
        raise ValueError(
            f"forecast_context must lie in 1..{t_total - 1} (frames has {t_total}), "
            f"got {forecast_context}"
        )
    pixel_dims = tuple(frames.shape[2:])
    if predictive == "auto":
        forecast_frames = 0 if forecast_context is None else t_total - forecast_context
        size = n * b * (length + forecast_frames) * int(np.prod(pixel_dims))
        predictive = "frames" if size <= max_predictive_values else "summary"

    devices = [frames.device] if frames.device.type == "cuda" else []
    with (
        torch.random.fork_rng(devices=devices, enabled=seed is not None),
        _mode(svg, eval_mode),
    ):
        if seed is not None:
            torch.manual_seed(seed)
        # q and p of every step from the Pyro program itself (any prior, guide or network).
        with svg.shared_encoding():
            guide_tr = poutine.trace(svg.guide).get_trace(frames)
            model_tr = poutine.trace(poutine.replay(svg.model, trace=guide_tr)).get_trace(frames)
        post_steps = [guide_tr.nodes[f"z_{t}"]["fn"] for t in range(1, t_total)]
        prior_steps = [model_tr.nodes[f"z_{t}"]["fn"] for t in range(1, t_total)]
        latent_shape = tuple(post_steps[0].event_shape)
        z_post = torch.stack([q.sample((n,)) for q in post_steps], 2)  # [n, B, L, *latent]
        z_prior = torch.stack([p.sample((n,)) for p in prior_steps], 2)
        kl_cols, methods = [], set()
        for i, (q, p) in enumerate(zip(post_steps, prior_steps)):
            try:
                kl_cols.append(kl_divergence(q, p).expand(n, b))
                methods.add("analytic")
            except NotImplementedError:
                z = z_post[:, :, i]
                kl_cols.append(q.log_prob(z) - p.log_prob(z))
                methods.add("monte-carlo")
        kl = torch.stack(kl_cols, 2)  # [n, B, L]

        # Reconstructions and log-likelihood: the model conditioned on the posterior draws, run
        # on k copies of the batch at a time.
        per_chunk = max(1, chunk_frames // (b * length))
        target = frames[:, 1:].float()
        log_lik, recon = [], []
        for start in range(0, n, per_chunk):
            k = min(per_chunk, n - start)
            rep = frames.unsqueeze(0).expand(k, *frames.shape).reshape(k * b, *frames.shape[1:])
            z = z_post[start : start + k]
            data = {
                f"z_{t}": z[:, :, t - 1].reshape(k * b, *latent_shape) for t in range(1, t_total)
            }
            tr = poutine.trace(poutine.condition(svg.model, data=data)).get_trace(rep)
            x_sites = [tr.nodes[f"x_{t}"] for t in range(1, t_total)]
            lp = torch.stack([x["fn"].log_prob(x["value"]) for x in x_sites], 1)  # [k*B, L]
            log_lik.append(lp.view(k, b, length).float().cpu())
            x_hat = torch.stack([x["fn"].mean for x in x_sites], 1).float()
            x_hat = x_hat.view(k, b, length, *pixel_dims)
            if predictive == "frames":
                recon.append(x_hat.cpu())
            else:
                recon.append((x_hat - target).pow(2).flatten(3).mean(-1).cpu())
        if forecast_context is not None:
            forecast = _forecasts(svg, frames, forecast_context, n, chunk_frames)
            if predictive == "summary":
                truth = frames[:, forecast_context:].float().cpu()
                forecast = (forecast - truth).pow(2).flatten(3).mean(-1)

    def draws(x: torch.Tensor) -> np.ndarray:  # [n, ...] -> [chains, n_draws, ...]
        return x.detach().float().cpu().reshape(chains, n_draws, *x.shape[1:]).numpy()

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
    recon_t = torch.cat(recon, 0)
    if predictive == "frames":
        pp, pp_dims = {"x": draws(recon_t)}, {"x": step + pixels}
    else:
        pp, pp_dims = {"x_mse": draws(recon_t)}, {"x_mse": step}
    if forecast_context is not None:
        coords["forecast_time"] = np.arange(forecast_context, t_total)
        name = "x_forecast" if predictive == "frames" else "x_forecast_mse"
        pp[name] = draws(forecast)
        pp_dims[name] = ["sequence", "forecast_time"] + (pixels if predictive == "frames" else [])
    dims = {
        "z": [*step, *latent_dims],
        "kl": step,
        "x": step + pixels,
        "x_0": ["sequence", *pixels],
        **pp_dims,
    }
    frames_np = frames.detach().float().cpu().numpy()
    idata = az.from_dict(
        posterior={"z": draws(z_post)},
        prior={"z": draws(z_prior)},
        posterior_predictive=pp,
        observed_data={"x": frames_np[:, 1:]},
        constant_data={"x_0": frames_np[:, 0]},
        log_likelihood={"x": draws(torch.cat(log_lik, 0))},
        sample_stats={"kl": draws(kl)},
        coords=coords,
        dims=dims,
        attrs={
            "inference_library": "pyro",
            "model": f"svg-pyro {svg.config.variant}",
            "prior": svg.config.prior,
            "obs_sigma": float(svg.config.obs_sigma),
            "kl_method": "+".join(sorted(methods)),
            "posterior_predictive": predictive,
            "forecast_context": -1 if forecast_context is None else int(forecast_context),
            "log_likelihood": "log N(x_t | decoder mean given z ~ q, obs_sigma), summed over "
            "pixels, nats, beta = 1",
        },
    )
    return idata


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


# -- the learned prior's sigma --------------------------------------------------------------------
@torch.no_grad()
def prior_scale(svg: SVG, frames: torch.Tensor, eval_mode: bool = True) -> torch.Tensor:
    """Std of p(z_t | x_{0:t-1}): ``frames [B, T, C, H, W]`` -> ``[B, T-1, *latent_shape]``.

    Column ``t - 1`` belongs to ``z_t`` (t = 1..T-1), teacher-forced on the true frames. For
    families with infinite variance the distribution's ``scale`` is used. Raises ``ValueError``
    for the deterministic model and for a prior without parameters (the fixed N(0, I): its sigma
    is the same for every frame, so it cannot tell frames apart).
    """
    _require_latent(svg)
    svg.check_frames(frames)
    if not any(p.requires_grad for p in svg.prior.parameters()):
        raise ValueError(
            f"prior {svg.config.prior!r} has no learned parameters: its sigma is constant over "
            "frames (use a learned prior, e.g. --prior learned)"
        )
    with _mode(svg, eval_mode):
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
    svg, ckpt = load_model(checkpoint, resolve_device(device))
    _require_latent(svg)
    if heatmap is not None and svg.config.rnn != "conv":
        raise ValueError("--heatmap needs a ConvLSTM model (rnn='conv'): its z_t is a map")
    train = ckpt.get("train_config", {})
    if train.get("dataset", "smmnist") != "smmnist":
        raise ValueError(
            f"collisions need Stochastic Moving MNIST; {checkpoint} was trained on "
            f"{train.get('dataset')!r}"
        )
    frames = svg.config.seq_len if frames is None else frames
    if frames < 3:
        raise ValueError(f"--frames must be >= 3, got {frames}")
    num_digits = int(train.get("num_digits", 2)) if num_digits is None else num_digits
    if deterministic is None:
        deterministic = bool(train.get("deterministic_motion", False))
    x, bounces = smmnist_collision_data(
        sequences, frames, num_digits, deterministic, seed, mnist_root
    )
    result = collision_analysis(
        svg, x, bounces, lag=lag, burn_in=burn_in, batch_size=batch_size, progress=progress
    )
    sigma = result.pop("sigma")
    report = {
        "checkpoint": str(checkpoint),
        "checkpoint_step": int(ckpt.get("step", -1)),
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


def run(args: argparse.Namespace) -> int:
    """``svg-pyro analyze ANALYSIS`` (the one analysis: ``collisions``)."""
    return {"collisions": run_collisions_command}[args.analyze_command](args)


def run_collisions_command(args: argparse.Namespace) -> int:
    try:
        return _collisions_and_write(args)
    except signals.Interrupted as err:  # one pass over the data: no partial result to keep
        print(
            f"svg-pyro analyze collisions: stopped by {signals.signal_name(err.signum)}; "
            f"no report was written ({args.json} untouched)",
            file=sys.stderr,
        )
        return err.exit_status


def _collisions_and_write(args: argparse.Namespace) -> int:
    report, sigma, bounces = options.call_with_args(run_collisions, args)
    if args.plot:
        report["plot"] = str(
            plot_collisions(
                sigma,
                bounces,
                args.plot,
                lag=args.lag,
                title=f"{report['variant']}: prior sigma vs wall hits (AUC {report['auc']:.3f})",
            )
        )
    out = atomic_write_json(report, args.json, indent=2)
    print(
        f"AUC {report['auc']:.4f} (lag {args.lag}); mean sigma at hits "
        f"{report['mean_sigma_hit']:.4f} vs others {report['mean_sigma_other']:.4f} "
        f"({report['n_hit']} / {report['n_other']} steps) -> {out}",
        file=sys.stderr,
    )
    return 0


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``analyze collisions`` to the CLI's subcommands."""
    p = sub.add_parser("analyze", help="posterior and prior analyses of a trained model")
    kinds = p.add_subparsers(dest="analyze_command", required=True, metavar="ANALYSIS")
    q = kinds.add_parser(
        "collisions",
        help="does the learned prior's sigma rise when a digit hits a wall? (ROC AUC)",
        description="Run SM-MNIST test sequences with recorded wall hits through the model and "
        "score how well the learned prior's standard deviation predicts the steps after a hit.",
    )
    options.add_checkpoint(q, "checkpoint.pt of a learned-prior model")
    q.add_argument("--sequences", type=int, default=512, help="test sequences (default 512)")
    q.add_argument("--json", required=True, help="where to write the report")
    q.add_argument("--plot", default=None, help="also draw sigma over time (PNG)")
    q.add_argument(
        "--heatmap", default=None, help="ConvLSTM models: draw sigma maps over the frames (PNG)"
    )
    q.add_argument(
        "--frames", type=int, default=None, help="frames per sequence (default: training length)"
    )
    q.add_argument("--num-digits", type=int, default=None, help="default: the training data's")
    q.add_argument(
        "--deterministic",
        default=None,
        action=argparse.BooleanOptionalAction,
        help="deterministic bounces (default: the training data's)",
    )
    q.add_argument("--seed", type=int, default=0, help="test-sequence seed (default 0)")
    q.add_argument(
        "--lag",
        type=int,
        default=1,
        help="score z_t against a hit in frame t - LAG (default 1: the last frame its prior saw)",
    )
    q.add_argument(
        "--burn-in", type=int, default=0, help="leave out the first N latent steps (default 0)"
    )
    q.add_argument("--batch-size", type=int, default=64)
    options.add_device(q)
    q.add_argument("--mnist-root", default=None, help="folder with MNIST/raw IDX files")
    options.add_no_progress(q)
    return p
