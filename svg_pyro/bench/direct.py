"""The SVG objective without Pyro: the benchmark's yardstick for what Pyro itself costs."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.distributions import kl_divergence

from svg_pyro.svg import SVG


class DirectSVGLoss(nn.Module):
    """The negative ELBO of :class:`svg_pyro.elbo.SVGLoss`, computed without Pyro.

    Same networks (those of ``svg``), same random draws in the same order, same value and
    gradients; the frame loop's sample sites become whole-sequence tensor operations. Used to
    measure what Pyro's tracing and per-frame sites cost. ``last_terms`` as in ``SVGLoss``.
    """

    def __init__(self, svg: SVG):
        super().__init__()
        self.svg = svg
        self.last_terms: dict[str, torch.Tensor] = {}

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        svg, cfg = self.svg, self.svg.config
        b = frames.shape[0]
        h, skips = svg.encode(frames)
        kl = frames.new_zeros(())
        if svg.prior is not None:
            q_steps, _ = svg.posterior(h[:, 1:])  # the guide's draws come first, as in Pyro
            z = [q.rsample() for q in q_steps]
            p_steps, _ = svg.prior(h[:, :-1])
            for q, p, z_t in zip(q_steps, p_steps, z):
                try:
                    kl_t = kl_divergence(q, p)
                except NotImplementedError:
                    kl_t = q.log_prob(z_t) - p.log_prob(z_t)
                kl = kl + kl_t.sum()
            g, _ = svg.predictor(torch.cat([h[:, :-1], torch.stack(z, 1).to(h.dtype)], -1))
        else:
            g, _ = svg.predictor(h[:, :-1])
        x_mean = svg.decode(g, skips, first_target=1).float()
        target = frames[:, 1:]
        sq = (x_mean - target).pow(2)
        s = cfg.obs_sigma
        log_lik = -sq.sum() / (2 * s**2) - sq.numel() * math.log(s * math.sqrt(2 * math.pi))
        loss = cfg.kl_scale * kl - log_lik
        recon = sq.flatten(2).mean(2).sum().detach() / b
        kl_mean = kl.detach() / b
        self.last_terms = {
            "loss": recon + cfg.beta * kl_mean,
            "recon": recon,
            "kl": kl_mean,
            "neg_elbo": loss.detach() / b,
        }
        return loss
