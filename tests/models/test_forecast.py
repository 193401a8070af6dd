"""The model with a horizon: forecast sites, the paper's feedback of the mean, and handlers."""

import pyro
import pytest
import torch
from pyro import poutine

from svg_pyro import SVG
from tests.conftest import tiny_config

P, F = 3, 3


def lively(svg: SVG) -> SVG:
    """Weights far larger than the 0.02 init (so that a latent visibly moves the frames),
    BatchNorm statistics of that network, then eval mode."""
    torch.manual_seed(0)
    for p in svg.parameters():
        if p.dim() > 1:
            torch.nn.init.normal_(p, 0.0, 0.3)
    with torch.no_grad():
        for _ in range(20):
            svg.model(torch.rand(4, 5, 1, 64, 64))
    return svg.eval()


def forecast_trace(svg, context, n_future, model=None, guide_tr=None, seed=0):
    """A trace of the model (or a handled model) replayed on ``guide_tr`` under ``seed``."""
    if guide_tr is None:
        guide_tr = poutine.trace(svg.guide).get_trace(context, n_future=n_future)
    pyro.set_rng_seed(seed)
    model = svg.model if model is None else model
    return poutine.trace(poutine.replay(model, trace=guide_tr)).get_trace(context, n_future)


@pytest.mark.parametrize("prior", ["learned", "none"])
def test_forecast_sites(prior):
    svg = SVG(tiny_config(prior=prior, n_past=P)).eval()
    context = torch.rand(2, P, 1, 64, 64)
    guide_tr = poutine.trace(svg.guide).get_trace(context, n_future=F)
    tr = forecast_trace(svg, context, F, guide_tr=guide_tr)
    x_mean = tr.nodes["_RETURN"]["value"]
    assert x_mean.shape == (2, P - 1 + F, 1, 64, 64)
    latent = prior != "none"
    assert [n for n in guide_tr.stochastic_nodes if n.startswith("z_")] == (
        [f"z_{t}" for t in range(1, P)] if latent else []
    )
    for t in range(1, P + F):
        x = tr.nodes[f"x_{t}"]
        assert x["is_observed"] == (t < P)
        assert x["fn"].event_shape == (1, 64, 64) and x["fn"].batch_shape == (2,)
        torch.testing.assert_close(x["fn"].mean, x_mean[:, t - 1])
        assert (f"z_{t}" in tr.nodes) == latent
        if latent:  # the guide's z in the context, a fresh draw from the prior after it
            z = tr.nodes[f"z_{t}"]
            assert z["scale"] == pytest.approx(svg.config.kl_scale)
            if t < P:
                assert torch.equal(z["value"], guide_tr.nodes[f"z_{t}"]["value"])
            else:
                assert f"z_{t}" not in guide_tr.nodes
        if t >= P:
            x_hat = tr.nodes[f"x_hat_{t}"]
            assert x_hat["infer"].get("_deterministic")
            assert torch.equal(x_hat["value"], x_mean[:, t - 1])
            assert not torch.equal(x["value"], x_hat["value"])  # x_t adds pixel noise
        else:
            assert f"x_hat_{t}" not in tr.nodes


@pytest.mark.parametrize("source", ["last_context", "previous"])
@pytest.mark.parametrize("prior", ["learned", "none"])
def test_forecast_is_the_teacher_forced_model_fed_its_own_means(prior, source):
    """x_hat_{P+1} is what the training-time model predicts once x_P is replaced by x_hat_P."""
    svg = SVG(tiny_config(prior=prior, n_past=P, skip_source=source)).eval()
    context = torch.rand(2, P, 1, 64, 64)
    with torch.no_grad():
        tr = forecast_trace(svg, context, 2)
        z = {n: s["value"] for n, s in tr.nodes.items() if n.startswith("z_")}
        x_hat = [tr.nodes[f"x_hat_{t}"]["value"] for t in (P, P + 1)]
        fed = torch.cat([context, x_hat[0][:, None], x_hat[1][:, None]], 1)  # [B, P + 2, ...]
        teacher = poutine.condition(svg.model, data=z)(fed)  # n_future=0: the training model
    assert len(z) == (P + 1 if prior != "none" else 0)
    torch.testing.assert_close(teacher[:, P - 1], x_hat[0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(teacher[:, P], x_hat[1], rtol=1e-4, atol=1e-5)


def test_n_future_zero_is_the_training_model(frames):
    svg = SVG(tiny_config())
    guide_tr = poutine.trace(svg.guide).get_trace(frames)
    a = poutine.trace(poutine.replay(svg.model, trace=guide_tr)).get_trace(frames)
    b = poutine.trace(poutine.replay(svg.model, trace=guide_tr)).get_trace(frames, 0)
    names = [n for n, s in a.nodes.items() if s["type"] == "sample"]
    assert names == [n for n, s in b.nodes.items() if s["type"] == "sample"]
    assert not [n for n in names if n.startswith("x_hat")]
    assert all(a.nodes[n]["is_observed"] for n in names if n.startswith("x_"))
    torch.testing.assert_close(a.nodes["_RETURN"]["value"], b.nodes["_RETURN"]["value"])


@pytest.mark.parametrize("handler", ["condition", "do"])
def test_intervening_on_z7_changes_the_forecast_from_frame_7_on_only(handler):
    svg = lively(SVG(tiny_config(n_past=5)))
    context = torch.rand(2, 5, 1, 64, 64)
    n_future = 4  # frames 5..8
    guide_tr = poutine.trace(svg.guide).get_trace(context, n_future=n_future)
    base = forecast_trace(svg, context, n_future, guide_tr=guide_tr, seed=3)
    z7 = base.nodes["z_7"]["value"] + 3.0  # far from what the prior drew
    handled = getattr(poutine, handler)(svg.model, data={"z_7": z7})
    what_if = forecast_trace(svg, context, n_future, model=handled, guide_tr=guide_tr, seed=3)
    for t in range(1, 5):  # the observed frames' means
        assert torch.equal(what_if.nodes[f"x_{t}"]["fn"].mean, base.nodes[f"x_{t}"]["fn"].mean)
    for t in (5, 6):  # the forecast before frame 7, with its own draws of z_5 and z_6
        assert torch.equal(what_if.nodes[f"z_{t}"]["value"], base.nodes[f"z_{t}"]["value"])
        assert torch.equal(what_if.nodes[f"x_hat_{t}"]["value"], base.nodes[f"x_hat_{t}"]["value"])
    for t in (7, 8):
        diff = what_if.nodes[f"x_hat_{t}"]["value"] - base.nodes[f"x_hat_{t}"]["value"]
        assert diff.abs().max() > 1e-4, t
    z_site = what_if.nodes["z_7"]
    if handler == "condition":  # z_7 is now observed at the forced value
        assert torch.equal(z_site["value"], z7) and z_site["is_observed"]
    else:  # do: the prior still draws z_7 (same draw as before), downstream sees the forced one
        assert torch.equal(z_site["value"], base.nodes["z_7"]["value"])
        assert not z_site["is_observed"]


def test_conditioning_a_context_latent_changes_nothing_before_it():
    svg = lively(SVG(tiny_config(n_past=4)))
    context = torch.rand(2, 4, 1, 64, 64)
    guide_tr = poutine.trace(svg.guide).get_trace(context, n_future=2)
    base = forecast_trace(svg, context, 2, guide_tr=guide_tr, seed=1)
    z2 = torch.full_like(base.nodes["z_2"]["value"], -2.0)
    what_if = forecast_trace(
        svg, context, 2, model=poutine.condition(svg.model, data={"z_2": z2}), seed=1,
        guide_tr=guide_tr,
    )  # fmt: skip
    assert torch.equal(what_if.nodes["x_1"]["fn"].mean, base.nodes["x_1"]["fn"].mean)
    for name in ("x_2", "x_3"):
        assert (what_if.nodes[name]["fn"].mean - base.nodes[name]["fn"].mean).abs().max() > 1e-4
    assert (what_if.nodes["x_hat_4"]["value"] - base.nodes["x_hat_4"]["value"]).abs().max() > 1e-4


def test_bad_horizon_and_short_context_are_rejected():
    svg = SVG(tiny_config())
    with pytest.raises(ValueError, match="n_future"):
        svg.model(torch.rand(2, 3, 1, 64, 64), n_future=-1)
    with pytest.raises(ValueError, match="at least 2"):
        svg.model(torch.rand(2, 1, 1, 64, 64))  # nothing to score, nothing to forecast
    out = svg.model(torch.rand(2, 1, 1, 64, 64), n_future=2)  # a one-frame context forecasts
    assert out.shape == (2, 2, 1, 64, 64)
