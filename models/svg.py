"""The SVG generative model as a Pyro program.

For a batch of sequences ``frames [B, T, C, H, W]`` (values in [0, 1]) and every frame after
the first, t = 1..T-1::

    z_t ~ p(z_t | x_{1:t-1})                      site "z_{t}", KL-scaled (absent if deterministic)
    g_t = LSTM_theta(Enc(x_{t-1}), z_t)           the frame predictor
    x_t ~ Normal(Dec(g_t, skip), obs_sigma)       site "x_{t}", observed

This is teacher-forced, as the paper trains it: every input of the recurrences is an encoded
ground-truth frame or a sampled latent, so the encoder runs once on all frames, the prior's and
the predictor's LSTMs each run over the whole sequence in one call, and the decoder runs once on
all predicted frames. The sites are still one ``z_t`` and one ``x_t`` per frame. The latent sites
sit under ``poutine.scale(config.kl_scale)``, which with the Normal likelihood reproduces the
paper's ``beta`` (see :attr:`svg_pyro.config.SVGConfig.kl_scale`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.infer.util import is_validation_enabled

if TYPE_CHECKING:
    from svg_pyro.svg import SVG


def model(svg: SVG, frames: torch.Tensor) -> torch.Tensor:
    """Score ``frames [B, T, C, H, W]``; returns the predicted means ``[B, T-1, C, H, W]``."""
    svg.check_frames(frames, check_values=is_validation_enabled())
    batch, steps = frames.shape[0], frames.shape[1]
    h, skips = svg.encode(frames)
    h_prev = h[:, :-1]
    with pyro.plate("sequences", batch):
        if svg.prior is not None:
            prior_steps, _ = svg.prior(h_prev)
            with poutine.scale(scale=svg.config.kl_scale):
                z = [pyro.sample(f"z_{t}", prior_steps[t - 1]) for t in range(1, steps)]
            g, _ = svg.predictor(torch.cat([h_prev, torch.stack(z, 1).to(h.dtype)], 2))
        else:
            g, _ = svg.predictor(h_prev)
        x_mean = svg.decode(g, skips, first_target=1)
        x_mean_fp32 = x_mean.float()
        for t in range(1, steps):
            pyro.sample(
                f"x_{t}",
                dist.Normal(x_mean_fp32[:, t - 1], svg.config.obs_sigma).to_event(3),
                obs=frames[:, t],
            )
    return x_mean
