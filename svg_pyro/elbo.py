"""The training objective: Pyro's mean-field ELBO (analytic KL), as a torch module.

:class:`SVGLoss` is an ``nn.Module`` whose ``forward(frames)`` returns the negative ELBO of a
batch, summed over sequences. Being a plain module that returns a differentiable scalar, it runs
unchanged under ``DistributedDataParallel``, autocast and compiled networks, and any torch
optimiser trains it. (Pyro's ``ELBO.__call__(model, guide)`` gives the same kind of module; ours
also shares one encoder pass between model and guide and keeps the loss on the device.)

With ``obs_sigma = s`` and P values per frame, the loss of one sequence is::

    P / (2 s^2) * sum_t [ mean-pixel MSE_t + beta * KL_t ]  +  (T - 1) * P * log(s * sqrt(2 pi))

i.e. the paper's objective times ``P / (2 s^2)`` plus a constant. At the default
``s = 1/sqrt(2)`` the factor is P (4096 for one-channel 64x64 frames) and the constant is
``(T - 1) * P / 2 * log(pi)``.

Free-running training (``SVGLoss(svg, free_running=True)``, ``--free-running true``) changes the
objective, not the model: :func:`free_running` conditions the model's own forecast on the true
frames, as Pyro's ``contrib.forecast`` conditions its models.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from pyro import poutine
from pyro.distributions.util import scale_and_mask
from pyro.infer import TraceMeanField_ELBO
from torch import nn
from torch.distributions import kl_divergence

from svg_pyro.svg import SVG


def free_running(model: Callable[..., torch.Tensor], n_past: int) -> Callable[..., torch.Tensor]:
    """The model of free-running training, for ``model`` = ``svg.model``.

    ``conditioned(frames [B, T, C, H, W])`` runs ``model(frames[:, :n_past], n_future=T -
    n_past)`` under ``poutine.condition`` with the pixel sites ``x_t`` of the frames after the
    context observed at the true frames: the context is teacher-forced, every later frame is
    generated from the decoded means fed back (as :meth:`svg_pyro.SVG.generate` forecasts) and
    scored at the truth. Run with ``svg.guide`` on all T frames, the latents after the context
    are the posterior's, read from the true frames. With ``T <= n_past`` it is ``model(frames)``.
    """

    def conditioned(frames: torch.Tensor) -> torch.Tensor:
        steps = frames.shape[1]
        if steps <= n_past:
            return model(frames)
        truth = {f"x_{t}": frames[:, t] for t in range(n_past, steps)}
        return poutine.condition(model, data=truth)(frames[:, :n_past], n_future=steps - n_past)

    return conditioned


class SVGELBO(TraceMeanField_ELBO):
    """``TraceMeanField_ELBO`` that never reads values back to the host and keeps its parts.

    The parent's per-particle loss calls ``.item()``, a device synchronisation every step; this
    computes the same quantity as a tensor. After each evaluation ``last_terms`` holds detached
    tensors (sums over the batch): ``log_lik`` (observed sites), ``kl`` (unscaled KL of the
    latent sites; a Monte Carlo estimate where no closed form exists), ``kl_scaled`` and
    ``sq_err`` (the paper's reconstruction term: mean-pixel squared error summed over frames).
    """

    def __init__(self, num_particles: int = 1, **kwargs):
        super().__init__(num_particles=num_particles, **kwargs)
        self.last_terms: dict[str, torch.Tensor] = {}

    def _terms(self, model_trace, guide_trace) -> dict[str, torch.Tensor]:
        log_lik = kl = kl_scaled = sq_err = 0.0
        for name, site in model_trace.nodes.items():
            if site["type"] != "sample" or site["infer"].get("_deterministic"):
                continue
            if site["is_observed"]:
                log_lik = log_lik + site["log_prob_sum"]
                err = (site["fn"].mean - site["value"]).pow(2)
                sq_err = sq_err + err.flatten(-3).mean(-1).sum()  # [*S, B, C, H, W]
                continue
            guide_site = guide_trace.nodes[name]
            try:
                kl_qp = kl_divergence(guide_site["fn"], site["fn"])
            except NotImplementedError:  # Monte Carlo: log q(z) - log p(z) at the sampled z
                value = guide_site["value"]
                kl_qp = guide_site["fn"].log_prob(value) - site["fn"].log_prob(value)
            kl_qp = kl_qp.expand(guide_site["fn"].batch_shape)
            kl = kl + scale_and_mask(kl_qp, mask=guide_site["mask"]).sum()
            kl_scaled = (
                kl_scaled
                + scale_and_mask(kl_qp, scale=guide_site["scale"], mask=guide_site["mask"]).sum()
            )
        zero = torch.zeros(())
        as_tensor = lambda v: v if torch.is_tensor(v) else zero  # noqa: E731
        return {
            "log_lik": as_tensor(log_lik),
            "kl": as_tensor(kl),
            "kl_scaled": as_tensor(kl_scaled),
            "sq_err": as_tensor(sq_err),
        }

    def _differentiable_loss_particle(self, model_trace, guide_trace):
        terms = self._terms(model_trace, guide_trace)
        loss = terms["kl_scaled"] - terms["log_lik"]
        return loss.detach(), loss

    def differentiable_loss(self, model, guide, *args, **kwargs) -> torch.Tensor:
        """The negative ELBO (a tensor; no host synchronisation)."""
        loss = 0.0
        totals: dict[str, torch.Tensor] = {}
        for model_trace, guide_trace in self._get_traces(model, guide, args, kwargs):
            terms = self._terms(model_trace, guide_trace)
            loss = loss + (terms["kl_scaled"] - terms["log_lik"]) / self.num_particles
            for key, value in terms.items():
                totals[key] = totals.get(key, 0.0) + value.detach() / self.num_particles
        self.last_terms = totals
        return loss

    def loss(self, model, guide, *args, **kwargs) -> float:
        with torch.no_grad():
            return float(self.differentiable_loss(model, guide, *args, **kwargs))


class SVGLoss(nn.Module):
    """``forward(frames [B, T, C, H, W]) -> negative ELBO`` (summed over the batch).

    The same value as Pyro's ``TraceMeanField_ELBO`` (and so as one step of ``SVI(svg.model,
    svg.guide, optim, TraceMeanField_ELBO())``), as a module for a torch optimiser over
    ``svg.parameters()``: the networks are not registered with Pyro's param store while it runs
    (:meth:`svg_pyro.svg.SVG.param_registration`), since nothing here reads the store.

    ``free_running=True`` scores the frames after ``svg.config.n_past`` as the model forecasts
    them (:func:`free_running`) instead of teacher-forcing them; the guide is the same.

    ``last_terms`` after a call: per-sequence (batch-mean) detached tensors ``loss``
    (``recon + beta * kl``, the paper's objective), ``recon``, ``kl`` and ``neg_elbo``.
    """

    def __init__(self, svg: SVG, num_particles: int = 1, free_running: bool = False):
        super().__init__()
        self.svg = svg
        self.free_running = free_running
        self.elbo = SVGELBO(
            num_particles=num_particles,
            vectorize_particles=num_particles > 1,
            max_plate_nesting=1,
        )
        self.last_terms: dict[str, torch.Tensor] = {}

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        with self.svg.shared_encoding(), self.svg.param_registration(False):
            model = self.svg.model
            if self.free_running:
                model = free_running(model, self.svg.config.n_past)
            loss = self.elbo.differentiable_loss(model, self.svg.guide, frames)
        terms, b = self.elbo.last_terms, frames.shape[0]
        recon, kl = terms["sq_err"] / b, terms["kl"].to(frames.device) / b
        self.last_terms = {
            "loss": recon + self.svg.config.beta * kl,
            "recon": recon,
            "kl": kl,
            "neg_elbo": loss.detach() / b,
        }
        return loss
