"""The inference network q(z_t | x_{1:t}) and the Pyro guide built on it."""

from __future__ import annotations

from typing import Any

import pyro
import torch
from pyro import poutine
from pyro.infer.util import is_validation_enabled
from torch import nn

from svg_pyro.config import SVGConfig
from svg_pyro.models.networks import Networks, check_frames, encode
from svg_pyro.models.priors import gaussian_rnn, gaussian_steps

GUIDE_NETWORKS = ("encoder", "posterior")


class Posterior(nn.Module):
    """LSTM_phi over ``h_t = Enc(x_t)`` ``[B, L, g_dim]`` -> L Normals over ``z_t``, and state."""

    def __init__(self, config: SVGConfig):
        super().__init__()
        self.net = gaussian_rnn(config, config.posterior_layers)

    def forward(self, h: torch.Tensor, state: Any = None) -> tuple[list, Any]:
        mu, logvar, state = self.net(h, state)
        return gaussian_steps(mu, logvar), state


def posterior_latents(nets: Networks, h_next: torch.Tensor) -> list[torch.Tensor]:
    """Sites ``z_1..z_L`` from q(z_t | x_{1:t}) given ``h_next = Enc(x_{1:L})`` ``[N, L, ...]``;
    returns the L draws ``[N, *latent_shape]``. Call it under ``pyro.plate("sequences", N)``."""
    steps, _ = nets.posterior(h_next)
    with poutine.scale(scale=nets.config.kl_scale):
        return [pyro.sample(f"z_{t}", steps[t - 1]) for t in range(1, h_next.shape[1] + 1)]


def guide(nets: Networks, frames: torch.Tensor, n_future: int = 0) -> None:
    """Sample ``z_1..z_{P-1}`` from q(z_t | x_{1:t}) for the observed ``frames [B, P, C, H, W]``.

    Same sites, plate and KL scale as :func:`svg_pyro.models.model`; the latents of the
    ``n_future`` forecast frames are left to the model's prior (so that ``Predictive(model,
    guide=guide)`` is the paper's sampling scheme). The deterministic model has no latent, so its
    guide samples nothing.
    """
    if nets.posterior is None:
        return
    check_frames(
        nets.config, frames, check_values=is_validation_enabled(), min_frames=1 if n_future else 2
    )
    nets.register_with_pyro(*GUIDE_NETWORKS)
    if frames.shape[1] < 2:
        return
    h, _ = encode(nets, frames)
    with pyro.plate("sequences", frames.shape[0]):
        posterior_latents(nets, h[:, 1:])
