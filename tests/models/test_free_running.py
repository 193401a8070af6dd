"""Free-running training (``SVGLoss(svg, free_running=True)``, ``--free-running true``): the
predicted frames of a training sequence are generated from the context, their means fed back,
and observed at the true frames. The model is the paper's; the objective conditions it."""

import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer import SVI, TraceMeanField_ELBO

from svg_pyro import SVG
from svg_pyro.elbo import SVGLoss, free_running
from tests.conftest import tiny_config
from tests.models.test_forecast import lively

P, T = 3, 6


def _svg(prior: str, source: str = "previous") -> SVG:
    return lively(SVG(tiny_config(prior=prior, n_past=P, skip_source=source)))


def _trace(svg: SVG, frames: torch.Tensor):
    """The guide on all frames and the free-running training model replayed on it."""
    guide_tr = poutine.trace(svg.guide).get_trace(frames)
    model = free_running(svg.model, svg.config.n_past)
    return guide_tr, poutine.trace(poutine.replay(model, trace=guide_tr)).get_trace(frames)


@pytest.mark.parametrize("source", ["last_context", "previous"])
@pytest.mark.parametrize("prior", ["learned", "none"])
def test_free_running_model_is_the_forecast_with_the_guides_latents(prior, source):
    """Each predicted frame's mean is the forecast from the context under the same latents, and
    its pixel site is observed at the true frame; the context frames are teacher-forced."""
    svg = _svg(prior, source)
    frames = torch.rand(2, T, 1, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        guide_tr, tr = _trace(svg, frames)
        latents = {n: s["value"] for n, s in guide_tr.nodes.items() if n.startswith("z_")}
        assert sorted(latents) == ([f"z_{t}" for t in range(1, T)] if prior != "none" else [])
        forecast = poutine.condition(svg.model, data=latents)(frames[:, :P], n_future=T - P)
        forced = poutine.condition(svg.model, data=latents)(frames)
    x_mean = tr.nodes["_RETURN"]["value"]
    assert x_mean.shape == (2, T - 1, 1, 64, 64)
    torch.testing.assert_close(x_mean, forecast)
    for t in range(1, T):
        site = tr.nodes[f"x_{t}"]
        assert site["is_observed"] and torch.equal(site["value"], frames[:, t])
        assert (f"x_hat_{t}" in tr.nodes) == (t >= P)
    torch.testing.assert_close(x_mean[:, : P - 1], forced[:, : P - 1])  # the context
    assert not torch.allclose(x_mean[:, P:], forced[:, P:])  # after it, its own frames


def test_free_running_log_likelihood_by_hand():
    """log p(x_t | ...) of a predicted frame is the Normal density at the fed-back mean."""
    svg = _svg("learned")
    frames = torch.rand(2, T, 1, 64, 64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        _, tr = _trace(svg, frames)
    tr.compute_log_prob()
    sigma = svg.config.obs_sigma
    for t in range(P, T):
        mean = tr.nodes[f"x_hat_{t}"]["value"]
        by_hand = (
            (
                -((frames[:, t] - mean) ** 2) / (2 * sigma**2)
                - torch.log(torch.tensor(sigma * (2 * torch.pi) ** 0.5))
            )
            .flatten(1)
            .sum(1)
        )
        torch.testing.assert_close(tr.nodes[f"x_{t}"]["log_prob"], by_hand)


def test_free_running_gradient_flows_through_the_fed_back_means():
    """The last frame's mean depends on the first predicted frame's mean (fed back through the
    encoder and, from the previous frame, the skips): its gradient reaches it."""
    svg = _svg("none")
    svg.train()
    frames = torch.rand(2, T, 1, 64, 64, generator=torch.Generator().manual_seed(5))
    with svg.param_registration(False):
        tr = poutine.trace(free_running(svg.model, P)).get_trace(frames)
    first, last = tr.nodes[f"x_hat_{P}"]["value"], tr.nodes[f"x_hat_{T - 1}"]["value"]
    (grad,) = torch.autograd.grad(last.sum(), [first])
    assert grad.abs().sum() > 0


@pytest.mark.parametrize("prior", ["learned", "fixed", "none"])
def test_free_running_trains_with_pyro_svi_and_lowers_the_loss(prior):
    pyro.set_rng_seed(0)
    svg = SVG(tiny_config(prior=prior, n_past=2))
    frames = torch.rand(4, 5, 1, 64, 64, generator=torch.Generator().manual_seed(6)) * 0.2
    model = free_running(svg.model, svg.config.n_past)
    svi = SVI(model, svg.guide, pyro.optim.Adam({"lr": 3e-3}), TraceMeanField_ELBO())
    losses = [svi.step(frames) for _ in range(25)]
    assert sum(losses[-5:]) < sum(losses[:5])
    loss = SVGLoss(svg, free_running=True)
    with torch.no_grad():
        neg_elbo = loss(frames)
    assert torch.isfinite(neg_elbo)
    assert loss.last_terms["recon"] > 0


def test_free_running_with_context_only_is_teacher_forced():
    """A sequence no longer than ``n_past`` has no predicted frame: the usual model."""
    svg = _svg("learned")
    frames = torch.rand(2, P, 1, 64, 64)
    with torch.no_grad():
        tr = poutine.trace(free_running(svg.model, P)).get_trace(frames)
    assert all(not n.startswith("x_hat_") for n in tr.nodes)
    assert [n for n in tr.nodes if n.startswith("x_")] == [f"x_{t}" for t in range(1, P)]


def test_the_model_stays_the_papers_and_svgloss_chooses_the_objective():
    """``svg.model(frames)`` teacher-forces every frame; ``SVGLoss(free_running=True)`` scores
    the SVI loss of the free-running model (Pyro's own ELBO on the same traces), in eval mode
    where BatchNorm groups nothing."""
    svg = _svg("learned").eval()
    frames = torch.rand(2, T, 1, 64, 64, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        tr = poutine.trace(svg.model).get_trace(frames)
        assert not any(n.startswith("x_hat_") for n in tr.nodes)
        pyro.set_rng_seed(1)
        ours = SVGLoss(svg, free_running=True)(frames)
        pyro.set_rng_seed(1)
        pyros = TraceMeanField_ELBO().differentiable_loss(
            free_running(svg.model, P), svg.guide, frames
        )
        pyro.set_rng_seed(1)
        forced = SVGLoss(svg)(frames)
    torch.testing.assert_close(ours, pyros, rtol=1e-5, atol=1e-2)
    assert not torch.isclose(ours, forced)
