"""The inference network q(z_t | x_{1:t}) and the Pyro guide built on it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyro
import torch
from pyro import poutine
from pyro.infer.util import is_validation_enabled
from torch import nn

from svg_pyro.config import SVGConfig
from svg_pyro.models.priors import gaussian_rnn, gaussian_steps

if TYPE_CHECKING:
    from svg_pyro.svg import SVG


class Posterior(nn.Module):
    """LSTM_phi over ``h_t = Enc(x_t)`` ``[B, L, g_dim]`` -> L Normals over ``z_t``, and state."""

    def __init__(self, config: SVGConfig):
        super().__init__()
        self.net = gaussian_rnn(config, config.posterior_layers)

    def forward(self, h: torch.Tensor, state: Any = None) -> tuple[list, Any]:
        mu, logvar, state = self.net(h, state)
        return gaussian_steps(mu, logvar), state


def guide(svg: SVG, frames: torch.Tensor) -> None:
    """Sample ``z_1..z_{T-1}`` from q(z_t | x_{1:t}) for ``frames [B, T, C, H, W]``.

    Same sites, plate and KL scale as :func:`svg_pyro.models.model`; the deterministic model has
    no latent, so its guide samples nothing.
    """
    if svg.posterior is None:
        return
    svg.check_frames(frames, check_values=is_validation_enabled())
    h, _ = svg.encode(frames)
    steps, _ = svg.posterior(h[:, 1:])
    with pyro.plate("sequences", frames.shape[0]), poutine.scale(scale=svg.config.kl_scale):
        for t in range(1, frames.shape[1]):
            pyro.sample(f"z_{t}", steps[t - 1])
