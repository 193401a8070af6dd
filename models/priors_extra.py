"""Two worked examples of new learned priors: a Gaussian mixture and heavier-tailed ones.

Each is a :class:`~svg_pyro.models.priors.Prior` registered by name, so that
``SVGConfig(prior=name)`` and ``svg-pyro train --prior name`` use it without any other change:

* ``"mixture"`` -- p(z_t | x_{1:t-1}) is a mixture of :attr:`MixturePrior.components` diagonal
  Gaussians whose weights, means and variances an LSTM over ``h_{t-1}`` predicts. It can put
  probability on several distinct futures (say, "the digit bounces left or right").
* ``"laplace"`` -- a learned diagonal Laplace, parameterised by its variance as the Gaussian one
  is (scale ``b = sigma / sqrt(2)``).
* ``"student-t"`` -- a learned diagonal Student-t with ``df = 2 + softplus(raw_df)`` per latent
  dimension (a trained parameter, initial df 5), scaled so that its variance is the predicted
  ``sigma^2``: its tails are heavier than the Gaussian's at the same variance.

The KL from the Gaussian posterior to the Laplace has a closed form (PyTorch registers it); to the
mixture and to the Student-t it has none, so :class:`svg_pyro.elbo.SVGELBO` estimates it by Monte
Carlo, ``log q(z) - log p(z)`` at the ``z`` that the guide sampled. That estimate is unbiased and
differentiable (the guide's ``z`` is reparameterised), but noisier than the closed form.

See ``docs/extending_priors.md`` for the interface and how to write your own.
"""

from __future__ import annotations

import dataclasses
import math

import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import nn

from svg_pyro.config import SVGConfig
from svg_pyro.models.priors import Prior, gaussian_rnn, register_prior
from svg_pyro.nets import init_weights


@register_prior("mixture")
class MixturePrior(Prior):
    """A learned mixture of ``components`` diagonal Gaussians per step.

    The prior's recurrent net (an LSTM, or a ConvLSTM with ``rnn="conv"``) over ``h_{t-1}``
    gives, for each step, K means and log-variances of the latent's shape and K mixture logits
    (K extra output channels, averaged over map locations for the ConvLSTM). Each step's
    distribution is a :class:`pyro.distributions.MixtureSameFamily` with batch ``[B]`` and event
    ``latent_shape``. Subclass and change ``components`` for another K::

        @register_prior("mixture8")
        class Mixture8(MixturePrior):
            components = 8
    """

    components: int = 4

    def __init__(self, config: SVGConfig):
        super().__init__(config)
        k, z = self.components, config.z_dim
        wide = dataclasses.replace(config, z_dim=k * z + k)  # K means (and K logits) per step
        self.net = gaussian_rnn(wide, config.prior_layers)
        self.apply(init_weights)
        # With every weight near zero the components would start on top of each other; give
        # their means fixed standard-normal offsets so that they can specialise.
        with torch.no_grad():
            offsets = torch.randn(k * z, generator=torch.Generator().manual_seed(0))
            self.net.mu.bias[: k * z].copy_(offsets)

    def forward(self, h_prev, state=None):
        out, logvar, state = self.net(h_prev, state)  # [B, L, K*z + K, *map]
        b, length = out.shape[:2]
        k, kz = self.components, self.components * self.z_dim
        shape = (b, length, k, *self.latent_shape)
        mu = out[:, :, :kz].float().reshape(shape)
        std = logvar[:, :, :kz].float().mul(0.5).exp().reshape(shape)
        logits = out[:, :, kz:].float()
        if logits.dim() > 3:  # ConvLSTM: [B, L, K, s, s] -> average over map locations
            logits = logits.flatten(3).mean(-1)
        event = len(self.latent_shape)
        steps = [
            dist.MixtureSameFamily(
                dist.Categorical(logits=logits[:, i]),
                dist.Normal(mu[:, i], std[:, i]).to_event(event),
            )
            for i in range(length)
        ]
        return steps, state


@register_prior("laplace")
class LaplacePrior(Prior):
    """A learned diagonal Laplace per step: location ``mu``, scale ``sigma / sqrt(2)``.

    The same LSTM and heads as the Gaussian learned prior; only the family differs, so its
    variance is the predicted ``sigma^2`` and a trained Gaussian prior's weights fit it as they
    are. The KL from the Gaussian posterior is analytic.
    """

    def __init__(self, config: SVGConfig):
        super().__init__(config)
        self.net = gaussian_rnn(config, config.prior_layers)
        self.apply(init_weights)

    def forward(self, h_prev, state=None):
        mu, logvar, state = self.net(h_prev, state)
        mu, scale = mu.float(), logvar.float().mul(0.5).exp() / math.sqrt(2.0)
        event = mu.dim() - 2
        steps = [dist.Laplace(mu[:, i], scale[:, i]).to_event(event) for i in range(mu.shape[1])]
        return steps, state


@register_prior("student-t")
class StudentTPrior(Prior):
    """A learned diagonal Student-t per step with a trained ``df > 2`` per latent channel.

    ``mu`` and ``sigma`` come from an LSTM as in the Gaussian prior; the Student-t's scale is
    ``sigma * sqrt((df - 2) / df)``, so its variance is ``sigma^2`` whatever ``df`` is. ``df``
    starts at 5. The KL from the Gaussian posterior has no closed form: the ELBO uses Monte Carlo.
    """

    initial_df: float = 5.0

    def __init__(self, config: SVGConfig):
        super().__init__(config)
        self.net = gaussian_rnn(config, config.prior_layers)
        self.apply(init_weights)
        raw = math.log(math.expm1(self.initial_df - 2.0))  # softplus^-1(df - 2)
        self.raw_df = nn.Parameter(torch.full((config.z_dim,), raw))  # one per latent channel

    @property
    def df(self) -> torch.Tensor:
        """Degrees of freedom ``[z_dim]``, each > 2 (finite variance)."""
        return 2.0 + F.softplus(self.raw_df.float())

    def forward(self, h_prev, state=None):
        mu, logvar, state = self.net(h_prev, state)
        mu = mu.float()
        event = mu.dim() - 2
        df = self.df.view(-1, *([1] * (event - 1))).expand_as(mu)  # [z] over [B, L, z, *map]
        scale = logvar.float().mul(0.5).exp() * ((df - 2.0) / df).sqrt()
        steps = [
            dist.StudentT(df[:, i], mu[:, i], scale[:, i]).to_event(event)
            for i in range(mu.shape[1])
        ]
        return steps, state
