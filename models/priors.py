"""Priors over the per-frame latent ``z_t``: the pluggable part of the generative model.

A prior is an ``nn.Module`` with one method that the model calls::

    forward(h_prev, state=None) -> (dists, state)

``h_prev`` is ``[B, L, g_dim]``: the encodings of the frames *before* L consecutive latent steps
(``h_{t-1}`` for ``z_t``). ``dists`` is a list of L Pyro distributions over ``z_t``, each with
batch shape ``[B]`` and event shape ``[z_dim]``. ``state`` is whatever the prior carries between
calls (``None`` at the start of a sequence): training calls it once with the whole sequence,
generation once per frame. ``h_prev`` never contains ``x_t``, so a prior cannot peek at the frame
its latent explains.

To add a prior, subclass :class:`Prior`, take the :class:`~svg_pyro.config.SVGConfig` in the
constructor, and register it under a name; ``SVGConfig(prior=name)`` and ``--prior name`` then
use it::

    @register_prior("my-laplace")
    class MyLaplacePrior(Prior):
        def __init__(self, config):
            super().__init__(config)
            self.net = GaussianLSTM(config.g_dim, config.z_dim, config.rnn_size, 1)

        def forward(self, h_prev, state=None):
            mu, log_b, state = self.net(h_prev, state)
            return [dist.Laplace(mu[:, i], log_b[:, i].exp()).to_event(1)
                    for i in range(h_prev.shape[1])], state

Where the KL between the posterior's Normal and the prior has no closed form, the ELBO
estimates it by Monte Carlo from the sampled ``z_t``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyro.distributions as dist
import torch
from torch import nn

from svg_pyro.config import SVGConfig
from svg_pyro.nets import GaussianConvLSTM, GaussianLSTM, init_weights

#: The registered priors by name (``SVGConfig(prior=NAME)``), filled by :func:`register_prior`.
PRIORS: dict[str, type[Prior]] = {}


def register_prior(name: str) -> Callable[[type[Prior]], type[Prior]]:
    """Class decorator: make a :class:`Prior` subclass available as ``SVGConfig(prior=name)``."""

    if name == "none":
        raise ValueError("'none' is reserved for the deterministic model")

    def decorate(cls: type[Prior]) -> type[Prior]:
        PRIORS[name] = cls
        return cls

    return decorate


def build_prior(config: SVGConfig) -> Prior:
    """Instantiate the prior that ``config.prior`` names."""
    try:
        cls = PRIORS[config.prior]
    except KeyError:
        known = sorted([*PRIORS, "none"])
        raise ValueError(f"unknown prior {config.prior!r}; choose from {known}") from None
    return cls(config)


def gaussian_steps(mu: torch.Tensor, logvar: torch.Tensor) -> list[dist.Distribution]:
    """``mu``, ``logvar`` ``[B, L, *latent_shape]`` -> L diagonal Normals over ``z_t`` (batch
    ``[B]``, event ``latent_shape``; parameters kept in fp32)."""
    mu, std = mu.float(), logvar.float().mul(0.5).exp()
    event = mu.dim() - 2
    return [dist.Normal(m, s).to_event(event) for m, s in zip(mu.unbind(1), std.unbind(1))]


def gaussian_rnn(config: SVGConfig, n_layers: int) -> nn.Module:
    """The recurrent net that maps encodings ``[B, L, g_dim(, s, s)]`` to ``(mu, logvar, state)``:
    an LSTM, or a ConvLSTM when ``config.rnn == "conv"``."""
    cls = GaussianConvLSTM if config.rnn == "conv" else GaussianLSTM
    return cls(config.g_dim, config.z_dim, config.rnn_size, n_layers)


class Prior(nn.Module):
    """Base class of priors p(z_t | x_{1:t-1}); see the module docstring for the interface."""

    def __init__(self, config: SVGConfig):
        super().__init__()
        self.z_dim = config.z_dim
        self.latent_shape = config.latent_shape

    def forward(self, h_prev: torch.Tensor, state: Any = None) -> tuple[list, Any]:
        raise NotImplementedError


@register_prior("learned")
class LearnedPrior(Prior):
    """SVG-LP: an LSTM over ``h_{t-1}`` gives N(mu_psi, sigma_psi) for ``z_t``."""

    def __init__(self, config: SVGConfig):
        super().__init__(config)
        self.net = gaussian_rnn(config, config.prior_layers)
        self.apply(init_weights)

    def forward(self, h_prev, state=None):
        mu, logvar, state = self.net(h_prev, state)
        return gaussian_steps(mu, logvar), state


@register_prior("fixed")
class FixedPrior(Prior):
    """SVG-FP: N(0, I) at every step, whatever came before."""

    def forward(self, h_prev, state=None):
        loc = torch.zeros(h_prev.shape[0], *self.latent_shape, device=h_prev.device)
        step = dist.Normal(loc, torch.ones_like(loc)).to_event(len(self.latent_shape))
        return [step] * h_prev.shape[1], None
