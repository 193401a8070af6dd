"""Free-running training (``SVGConfig.free_running``): the predicted frames of a training
sequence are generated from the context, their means fed back, and observed."""

import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer import SVI, TraceMeanField_ELBO

from svg_pyro import SVG
from svg_pyro.elbo import SVGLoss
from tests.conftest import tiny_config
from tests.models.test_forecast import lively

P, T = 3, 6


def _svg(prior: str, source: str = "previous", free_running: bool = True) -> SVG:
    config = tiny_config(prior=prior, n_past=P, skip_source=source, free_running=free_running)
    return lively(SVG(config))


@pytest.mark.parametrize("source", ["last_context", "previous"])
@pytest.mark.parametrize("prior", ["learned", "none"])
def test_free_running_model_is_the_forecast_with_the_guides_latents(prior, source):
    """Each predicted frame's mean is the forecast from the context under the same latents, and
    its pixel site is observed at the true frame; the context frames are teacher-forced."""
    svg = _svg(prior, source)
    frames = torch.rand(2, T, 1, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        guide_tr = poutine.trace(svg.guide).get_trace(frames)
        tr = poutine.trace(poutine.replay(svg.model, trace=guide_tr)).get_trace(frames)
        latents = {n: s["value"] for n, s in guide_tr.nodes.items() if n.startswith("z_")}
        assert sorted(latents) == ([f"z_{t}" for t in range(1, T)] if prior != "none" else [])
        forecast = poutine.condition(svg.model, data=latents)(frames[:, :P], n_future=T - P)
        teacher = SVG(tiny_config(prior=prior, n_past=P, skip_source=source))
        teacher.load_state_dict(svg.state_dict())
        teacher.eval()
        forced = poutine.condition(teacher.model, data=latents)(frames)
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
        guide_tr = poutine.trace(svg.guide).get_trace(frames)
        tr = poutine.trace(poutine.replay(svg.model, trace=guide_tr)).get_trace(frames)
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
        tr = poutine.trace(svg.model).get_trace(frames)
    first, last = tr.nodes[f"x_hat_{P}"]["value"], tr.nodes[f"x_hat_{T - 1}"]["value"]
    (grad,) = torch.autograd.grad(last.sum(), [first])
    assert grad.abs().sum() > 0


@pytest.mark.parametrize("prior", ["learned", "fixed", "none"])
def test_free_running_trains_with_pyro_svi_and_lowers_the_loss(prior):
    pyro.set_rng_seed(0)
    svg = SVG(tiny_config(prior=prior, n_past=2, free_running=True))
    frames = torch.rand(4, 5, 1, 64, 64, generator=torch.Generator().manual_seed(6)) * 0.2
    svi = SVI(svg.model, svg.guide, pyro.optim.Adam({"lr": 3e-3}), TraceMeanField_ELBO())
    losses = [svi.step(frames) for _ in range(25)]
    assert sum(losses[-5:]) < sum(losses[:5])
    loss = SVGLoss(svg)
    with torch.no_grad():
        neg_elbo = loss(frames)
    assert torch.isfinite(neg_elbo)
    assert loss.last_terms["recon"] > 0


def test_free_running_with_context_only_is_teacher_forced():
    """A sequence no longer than ``n_past`` has no predicted frame: the usual model."""
    svg = _svg("learned")
    frames = torch.rand(2, P, 1, 64, 64)
    with torch.no_grad():
        tr = poutine.trace(svg.model).get_trace(frames)
    assert all(not n.startswith("x_hat_") for n in tr.nodes)
    assert [n for n in tr.nodes if n.startswith("x_")] == [f"x_{t}" for t in range(1, P)]


def test_teacher_forcing_scores_a_free_running_model_on_the_true_frames():
    svg = _svg("learned")
    frames = torch.rand(2, T, 1, 64, 64, generator=torch.Generator().manual_seed(7))
    assert svg.scoring() == f"free-running after the first {P} frames"
    with torch.no_grad(), svg.teacher_forcing():
        assert svg.scoring() == "teacher-forced on the true frames"
        tr = poutine.trace(svg.model).get_trace(frames)
    assert svg.config.free_running  # restored
    assert not any(n.startswith("x_hat_") for n in tr.nodes)
    teacher = SVG(tiny_config(prior="learned", n_past=P, skip_source="previous"))
    teacher.load_state_dict(svg.state_dict())
    teacher.eval()
    with torch.no_grad():
        expected = poutine.replay(teacher.model, trace=tr)(frames)
    torch.testing.assert_close(tr.nodes["_RETURN"]["value"], expected)
