"""Traces of the Pyro model and guide: sites, observedness, shapes, scales."""

import pytest
import torch
from pyro import poutine

from svg_pyro import SVG, Prior, register_prior
from svg_pyro.models import PRIORS, build_prior
from tests.conftest import tiny_config


def traces(svg, frames):
    guide_tr = poutine.trace(svg.guide).get_trace(frames)
    model_tr = poutine.trace(poutine.replay(svg.model, trace=guide_tr)).get_trace(frames)
    return model_tr, guide_tr


def sample_sites(tr):
    return {n: s for n, s in tr.nodes.items() if s["type"] == "sample" and n != "sequences"}


def test_sites_observedness_and_scales(svg, frames):
    b, t = frames.shape[:2]
    model_tr, guide_tr = traces(svg, frames)
    m, g = sample_sites(model_tr), sample_sites(guide_tr)
    xs = [f"x_{i}" for i in range(1, t)]
    zs = [f"z_{i}" for i in range(1, t)] if svg.prior is not None else []
    assert sorted(m) == sorted(xs + zs)
    assert sorted(g) == sorted(zs)
    for name in xs:
        site = m[name]
        assert site["is_observed"] and site["scale"] == 1.0
        assert site["fn"].batch_shape == (b,) and site["fn"].event_shape == (1, 64, 64)
        i = int(name.split("_")[1])
        assert torch.equal(site["value"], frames[:, i])
        assert [f.name for f in site["cond_indep_stack"]] == ["sequences"]
    for name in zs:
        for site in (m[name], g[name]):
            assert not site["is_observed"]
            assert site["scale"] == pytest.approx(svg.config.kl_scale)
            assert site["fn"].batch_shape == (b,) and site["fn"].event_shape == (svg.config.z_dim,)
            assert [f.name for f in site["cond_indep_stack"]] == ["sequences"]
        assert torch.equal(m[name]["value"], g[name]["value"])  # replayed from the guide


def test_model_returns_the_means_of_its_observed_sites(svg, frames):
    model_tr, _ = traces(svg, frames)
    x_mean = model_tr.nodes["_RETURN"]["value"]
    assert x_mean.shape == (frames.shape[0], frames.shape[1] - 1, 1, 64, 64)
    for t in range(1, frames.shape[1]):
        torch.testing.assert_close(model_tr.nodes[f"x_{t}"]["fn"].mean, x_mean[:, t - 1])


def test_learned_prior_does_not_see_the_frame_it_explains():
    """Changing x_t must leave p(z_t | x_{1:t-1}) unchanged but change q(z_t | x_{1:t})."""
    svg = SVG(tiny_config())
    frames = torch.rand(2, 5, 1, 64, 64)
    for p in svg.parameters():  # larger weights than the 0.02 init, so that changes show
        if p.dim() > 1:
            torch.nn.init.normal_(p, 0.0, 0.3)
    with torch.no_grad():  # give BatchNorm real running statistics, then use them (eval mode):
        for _ in range(30):  # in training mode batch statistics mix all frames of the batch
            svg.encode(frames)
    svg.eval()
    other = frames.clone()
    other[:, 3] = torch.rand(2, 1, 64, 64)
    m1, g1 = traces(svg, frames)
    m2, g2 = traces(svg, other)
    for t in (1, 2, 3):
        torch.testing.assert_close(m1.nodes[f"z_{t}"]["fn"].mean, m2.nodes[f"z_{t}"]["fn"].mean)
    assert (m1.nodes["z_4"]["fn"].mean - m2.nodes["z_4"]["fn"].mean).abs().max() > 1e-5
    torch.testing.assert_close(g1.nodes["z_2"]["fn"].mean, g2.nodes["z_2"]["fn"].mean)
    assert (g1.nodes["z_3"]["fn"].mean - g2.nodes["z_3"]["fn"].mean).abs().max() > 1e-5


def test_fixed_prior_is_standard_normal(frames):
    svg = SVG(tiny_config(prior="fixed"))
    model_tr, _ = traces(svg, frames)
    fn = model_tr.nodes["z_2"]["fn"]
    assert torch.equal(fn.mean, torch.zeros_like(fn.mean))
    assert torch.equal(fn.stddev, torch.ones_like(fn.stddev))
    assert not list(svg.prior.parameters())


def test_custom_prior_plugs_in_without_touching_the_model(frames):
    import pyro.distributions as dist

    @register_prior("test-constant-scale")
    class ConstantScale(Prior):
        def __init__(self, config):
            super().__init__(config)
            self.log_scale = torch.nn.Parameter(torch.zeros(config.z_dim))

        def forward(self, h_prev, state=None):
            loc = torch.zeros(h_prev.shape[0], self.z_dim)
            d = dist.Normal(loc, self.log_scale.exp().expand_as(loc)).to_event(1)
            return [d] * h_prev.shape[1], None

    try:
        svg = SVG(tiny_config(prior="test-constant-scale"))
        model_tr, _ = traces(svg, frames)
        assert model_tr.nodes["z_1"]["fn"].event_shape == (3,)
        assert svg.config.variant == "svg-test-constant-scale"
    finally:
        PRIORS.pop("test-constant-scale")


def test_unknown_prior_and_reserved_name():
    with pytest.raises(ValueError, match="unknown prior 'nope'"):
        build_prior(tiny_config(prior="nope"))
    with pytest.raises(ValueError, match="reserved"):
        register_prior("none")


@pytest.mark.parametrize(
    "bad,match",
    [
        (torch.rand(3, 5, 64, 64), "shape"),
        (torch.rand(3, 1, 1, 64, 64), "at least 2"),
        (torch.randint(0, 2, (3, 5, 1, 64, 64)), "float"),
        (torch.rand(3, 5, 3, 64, 64), "shape"),
    ],
)
def test_bad_frames_are_rejected(bad, match):
    svg = SVG(tiny_config())
    with pytest.raises(ValueError, match=match):
        svg.model(bad)
    with pytest.raises(ValueError, match=match):
        svg.guide(bad)


def test_values_outside_unit_interval_are_rejected_when_validating():
    import pyro

    svg = SVG(tiny_config())
    bad = torch.rand(2, 4, 1, 64, 64) * 2
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        svg.model(bad)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        svg.guide(bad)
    with pyro.validation_enabled(False):  # the training loop: no device-to-host read per step
        svg.model(bad)
