"""The SVG generative model as a Pyro program, with a forecast horizon.

``model(frames, n_future=F)`` with ``frames [B, P, C, H, W]`` (values in [0, 1]). For the P
observed frames, t = 1..P-1, it is the model the paper trains::

    z_t ~ p(z_t | x_{1:t-1})                      site "z_{t}", KL-scaled (absent if deterministic)
    g_t = LSTM_theta(Enc(x_{t-1}), z_t)           the frame predictor
    x_t ~ Normal(Dec(g_t, skip), obs_sigma)       site "x_{t}", observed

and after them, t = P..P+F-1, the paper's generation::

    z_t ~ p(z_t | x_{1:P-1}, x_hat_{P:t-1})       site "z_{t}", from the prior
    x_hat_t = Dec(LSTM_theta(Enc(x_hat_{t-1}), z_t), skip)    site "x_hat_{t}", deterministic
    x_t ~ Normal(x_hat_t, obs_sigma)              site "x_{t}", not observed

(``x_hat_{P-1}`` is the last observed frame.) The decoded *mean* is fed back, as the paper
generates. The observed frames are teacher-forced: every input of their recurrences is known, so
the encoder runs once on all frames, the prior's and the predictor's LSTMs once over the whole
sequence, and the decoder once on all predicted frames. Only the future frames step through time,
one :func:`frame_step` each. With ``n_future=0`` (training) the model is exactly the batched
teacher-forced one.

Skip maps: with ``n_future=0`` the decoder takes the skips that :func:`~svg_pyro.models.networks.
skip_index` names for
the configured ``n_past`` (training); with ``n_future > 0`` the observed frames are the context
and the skips are those of a context of P frames, as :meth:`svg_pyro.SVG.generate` uses them.

The model takes its networks as its first argument (any :class:`~svg_pyro.models.networks.
Networks`, such as :class:`svg_pyro.SVG`, whose ``model`` method binds them); training choices
such as free-running training (:class:`svg_pyro.elbo.SVGLoss`) are handlers around it, so this
is the paper's model whatever the training.

The latent sites sit under ``poutine.scale(config.kl_scale)``, which with the Normal likelihood
reproduces the paper's ``beta`` (see :attr:`svg_pyro.config.SVGConfig.kl_scale`). Forecasting
with the guide (it covers ``z_1..z_{P-1}``) is the paper's sampling scheme::

    Predictive(svg.model, guide=svg.guide, num_samples=K, return_sites=["x_hat_5", ...])(
        context, n_future=F)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.infer.util import is_validation_enabled
from pyro.ops.provenance import (
    ProvenanceTensor,
    detach_provenance,
    get_provenance,
    track_provenance,
)

from svg_pyro.models.batching import fold, leading_shape, outer_plate_shape, tile, unfold_dist
from svg_pyro.models.networks import (
    Networks,
    check_frames,
    decode,
    encode,
    skip_index,
    skips_follow_frames,
)
from svg_pyro.skipshare import decode_with_skip_terms, skip_terms

MODEL_NETWORKS = ("encoder", "decoder", "predictor", "prior")


@dataclass
class Carry:
    """What the frame loop carries from frame ``t - 1`` to frame ``t``, for N sequences.

    ``h_prev`` is ``Enc(x_{t-1})`` ``[N, 1, g_dim(, s, s)]``; ``skip`` the decoder's skip maps
    ``[N, c, h, w]``; ``terms``, when not ``None``, their precomputed share of the decoder
    (:func:`svg_pyro.skipshare.skip_terms`, ``[n, ...]`` for any n dividing N sample-major), used
    in place of ``skip``; the two LSTM states (``None``: zeros); ``site_shape``, when not
    ``None``, the batch shape ``[*S, B]`` (``N = prod(S) * B``, sample-major) that the sites
    take under Pyro's leading plates (:mod:`svg_pyro.models.batching`).
    """

    h_prev: torch.Tensor
    skip: list[torch.Tensor]
    terms: list[torch.Tensor] | None = None
    prior_state: Any = None
    predictor_state: Any = None
    site_shape: tuple[int, ...] | None = None


def context_carry(
    nets: Networks,
    h: torch.Tensor,
    skips: list[torch.Tensor],
    prior_state: Any = None,
    predictor_state: Any = None,
    n_samples: int = 1,
    site_shape: tuple[int, ...] | None = None,
) -> Carry:
    """The carry after a context of P frames: ``h [B, P, ...]`` and ``skips [B, P, ...]`` of the
    context, the LSTM states after it (for ``n_samples * B`` sequences). The skip maps are those
    of frame :func:`~svg_pyro.models.networks.skip_index` ``(P, P)``; with ``share_skips`` and a
    fixed skip frame, their share of the decoder is computed once, on the B sequences, for all
    samples."""
    p = h.shape[1]
    skip = [s[:, skip_index(nets.config, p, p)] for s in skips]
    terms = None
    if nets.share_skips and not skips_follow_frames(nets.config):  # same skips throughout
        terms = skip_terms(nets.decoder, skip)

    def tile(x: torch.Tensor) -> torch.Tensor:  # [B, ...] -> [K*B, ...], sample-major
        if n_samples == 1:
            return x
        return x.unsqueeze(0).expand(n_samples, *x.shape).reshape(-1, *x.shape[1:])

    return Carry(
        tile(h[:, -1:]), [tile(s) for s in skip], terms, prior_state, predictor_state, site_shape
    )


def frame_step(nets: Networks, t: int, carry: Carry, pixel_site: bool = True) -> torch.Tensor:
    """Generate frame ``t`` of N sequences; returns ``x_hat_t [N, C, H, W]`` and advances
    ``carry`` to frame ``t + 1`` (the mean is encoded and fed back).

    Sites: ``z_t`` from the prior (KL-scaled; absent if deterministic), ``x_hat_t``
    (deterministic), and with ``pixel_site`` ``x_t ~ Normal(x_hat_t, obs_sigma)``, not observed
    (a handler such as ``poutine.condition`` observes it: free-running training does).
    Call it under a ``pyro.plate("sequences", N)``, or with ``carry.site_shape = (*S, B)`` under
    the plates of those sizes (the sites then have batch ``[*S, B]``). This is the one frame
    loop: the model's forecast and :meth:`svg_pyro.SVG.generate` both run it.
    """
    shape = carry.site_shape
    inp = carry.h_prev
    if nets.prior is not None:
        steps, carry.prior_state = nets.prior(carry.h_prev, carry.prior_state)
        with poutine.scale(scale=nets.config.kl_scale):
            z = pyro.sample(f"z_{t}", unfold_dist(steps[0], shape))
        if shape is not None:
            z = fold(z, shape[:-1], shape[-1], len(nets.config.latent_shape))
        inp = torch.cat([inp, z[:, None].to(inp.dtype)], 2)
    g, carry.predictor_state = nets.predictor(inp, carry.predictor_state)
    if carry.terms is not None:
        x = decode_with_skip_terms(nets.decoder, g[:, 0], carry.terms)
    else:
        x = nets.decoder(g[:, 0], carry.skip)
    if shape is not None:
        x = x.reshape(*shape, *x.shape[1:])
    x = pyro.deterministic(f"x_hat_{t}", x, event_dim=3)
    if pixel_site:
        pyro.sample(f"x_{t}", dist.Normal(x.float(), nets.config.obs_sigma).to_event(3))
    return x if shape is None else fold(x, shape[:-1], shape[-1], 3)


def feed_back(nets: Networks, x: torch.Tensor, carry: Carry) -> None:
    """Encode the generated mean ``x [N, C, H, W]`` as the next step's input (and, with
    ``skip_source="previous"``, take its skip maps)."""
    h, skips = nets.encoder(x)
    carry.h_prev = h[:, None]
    if skips_follow_frames(nets.config):  # skip_index(t + 1) = t: this frame's maps
        carry.skip, carry.terms = skips, None


def rollout(
    nets: Networks,
    carry: Carry,
    first: int,
    n_future: int,
    pixel_sites: bool = True,
) -> list[torch.Tensor]:
    """Frames ``first .. first + n_future - 1`` by :func:`frame_step`: a list of ``[N, C, H, W]``
    means (the last one is not encoded: nothing reads it)."""
    out = []
    for t in range(first, first + n_future):
        out.append(frame_step(nets, t, carry, pixel_site=pixel_sites))
        if t + 1 < first + n_future:
            feed_back(nets, out[-1], carry)
    return out


def frame_means(x_mean: torch.Tensor, z: list[torch.Tensor]) -> list[torch.Tensor]:
    """The teacher-forced means ``x_mean [..., L, C, H, W]`` as L frames ``[..., C, H, W]``.

    The networks run over all L frames in one call, so under Pyro's provenance tracking
    (:func:`pyro.infer.inspect.get_dependencies`, :func:`pyro.render_model`) every frame's mean
    would carry every latent ``z_1..z_L``. The recurrence is causal (frame t reads the latents
    ``z_1..z_t`` and frames before t, nothing later), so while the latents are tracked each
    frame's mean keeps the batched result's provenance less that of the later latents. Outside
    tracking (training, sampling) this is plain indexing. (BatchNorm in training mode normalises
    over all frames of a batch, which couples them numerically as it couples the sequences of a
    plate; the probability model is the eval-mode one, where frame t reads nothing later.)
    """
    # one view per frame: unbind's backward stacks the frames' gradients once, where indexing
    # each frame would zero-fill and copy a whole-sequence gradient per frame
    frames = list(x_mean.unbind(-4))
    if not any(isinstance(v, ProvenanceTensor) for v in z):
        return frames
    everything = get_provenance(x_mean)
    later = [frozenset().union(*(get_provenance(v) for v in z[t + 1 :])) for t in range(len(z))]
    return [
        track_provenance(detach_provenance(x), everything - later[t]) for t, x in enumerate(frames)
    ]


def model(nets: Networks, frames: torch.Tensor, n_future: int = 0) -> torch.Tensor:
    """Score ``frames [B, P, C, H, W]`` and forecast ``n_future`` frames after them.

    Returns the means of frames ``1..P+F-1``: ``[*S, B, P-1+F, C, H, W]`` (teacher-forced for
    the observed frames, generated after them). ``S`` is empty unless the model runs under
    Pyro's leading plates (``Predictive(parallel=True)``, ``vectorize_particles=True``): then the
    latents are ``[*S, B, ...]`` and the networks run on ``prod(S) * B`` sequences at once
    (:mod:`svg_pyro.models.batching`).
    """
    if n_future < 0:
        raise ValueError(f"need n_future >= 0, got {n_future}")
    check_frames(
        nets.config, frames, check_values=is_validation_enabled(), min_frames=1 if n_future else 2
    )
    nets.register_with_pyro(*MODEL_NETWORKS)
    batch, steps = frames.shape[0], frames.shape[1]
    h, skips = encode(nets, frames)
    n_past = steps if n_future else None  # forecasting: the observed frames are the context
    h_prev = h[:, :-1]
    prior_state = predictor_state = None
    event = len(nets.config.latent_shape)
    lead: tuple[int, ...] = ()  # the latents' leading dims S: the networks run on S x B
    with pyro.plate("sequences", batch):
        z = []
        if steps > 1 and nets.prior is not None:
            prior_steps, prior_state = nets.prior(h_prev)
            with poutine.scale(scale=nets.config.kl_scale):
                z = [pyro.sample(f"z_{t}", prior_steps[t - 1]) for t in range(1, steps)]
            lead = leading_shape(z, event)
        if n_future and nets.prior is not None:  # the forecast's latents fill the outer plates
            lead = tuple(torch.broadcast_shapes(lead, outer_plate_shape()))
        if steps > 1:  # the observed frames, teacher-forced
            inp = tile(h_prev, lead)
            if z:
                z_flat = torch.stack([fold(v, lead, batch, event) for v in z], 1)
                inp = torch.cat([inp, z_flat.to(h.dtype)], 2)
            g, predictor_state = nets.predictor(inp)
            x_mean = decode(nets, g, [tile(s, lead) for s in skips], first_target=1, n_past=n_past)
            x_mean = x_mean.reshape(*lead, batch, *x_mean.shape[1:])
            sigma = nets.config.obs_sigma
            for t, mean in enumerate(frame_means(x_mean.float(), z), start=1):
                pyro.sample(f"x_{t}", dist.Normal(mean, sigma).to_event(3), obs=frames[:, t])
        if not n_future:
            return x_mean
        if lead and steps > 1 and nets.prior is not None:  # its state for the S x B rollouts
            _, prior_state = nets.prior(tile(h_prev, lead))
        carry = context_carry(
            nets, h, skips, prior_state, predictor_state, math.prod(lead), (*lead, batch)
        )
        future = torch.stack(rollout(nets, carry, steps, n_future), 1)
        future = future.reshape(*lead, batch, *future.shape[1:])
    return torch.cat([x_mean, future], -4) if steps > 1 else future
