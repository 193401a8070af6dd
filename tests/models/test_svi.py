"""Pyro's own training loop: the networks are in Pyro's param store and SVI trains them."""

import copy
import warnings

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import SVI, TraceMeanField_ELBO

from svg_pyro import SVG, Prior, SVGLoss, register_prior
from svg_pyro.models import PRIORS
from tests.conftest import tiny_config


class LSTMMeanPrior(Prior):
    """A user's prior with weights of its own: an LSTM mean and a free log-scale (registered
    under a name by the tests that use it)."""

    def __init__(self, config):
        super().__init__(config)
        self.rnn = torch.nn.LSTM(config.g_dim, config.rnn_size, batch_first=True)
        self.mu = torch.nn.Linear(config.rnn_size, config.z_dim)
        self.log_scale = torch.nn.Parameter(torch.zeros(config.z_dim))

    def forward(self, h_prev, state=None):
        y, state = self.rnn(h_prev, state)
        mu = self.mu(y)
        scale = self.log_scale.exp().expand_as(mu[:, 0])
        return [dist.Normal(mu[:, i], scale).to_event(1) for i in range(mu.shape[1])], state


@pytest.fixture
def user_prior():
    """:class:`LSTMMeanPrior` registered as ``test-svi-prior``."""
    register_prior("test-svi-prior")(LSTMMeanPrior)
    yield "test-svi-prior"
    PRIORS.pop("test-svi-prior")


def svi(svg, lr=1e-3):
    return SVI(svg.model, svg.guide, pyro.optim.Adam({"lr": lr}), TraceMeanField_ELBO())


@pytest.mark.parametrize("prior", ["learned", "user", "none"])
def test_svi_moves_every_parameter_tensor(prior, frames, request):
    name = request.getfixturevalue("user_prior") if prior == "user" else prior
    svg = SVG(tiny_config(prior=name))
    before = {k: v.detach().clone() for k, v in svg.named_parameters()}
    trainer = svi(svg)
    for _ in range(3):
        trainer.step(frames)
    store = pyro.get_param_store()
    assert len(store) == len(before)  # every tensor registered once, nothing else
    assert {id(p) for _, p in store.named_parameters()} == {id(p) for p in svg.parameters()}
    unmoved = [k for k, v in svg.named_parameters() if torch.equal(v, before[k])]
    assert unmoved == []
    if prior == "user":
        assert "svg.prior$$$log_scale" in store.keys()


def test_one_svi_step_equals_svgloss_with_torch_adam(frames):
    """Same loss for the same draws, and the same updated weights as torch's Adam."""
    svg = SVG(tiny_config())
    twin = copy.deepcopy(svg)
    pyro.set_rng_seed(4)
    loss = svi(svg, lr=1e-2).step(frames)
    pyro.set_rng_seed(4)
    opt = torch.optim.Adam(twin.parameters(), lr=1e-2)
    ours = SVGLoss(twin)(frames)
    ours.backward()
    opt.step()
    assert loss == pytest.approx(ours.item(), rel=1e-6)
    # A conv bias that feeds BatchNorm has an exactly zero gradient, so Adam's first step turns
    # its rounding noise into a full step of either sign: compare every other tensor.
    noise_only = {
        f"{name}.0.bias"
        for name, mod in svg.named_modules()
        if isinstance(mod, torch.nn.Sequential)
        and len(mod) > 1
        and isinstance(mod[1], torch.nn.BatchNorm2d)
    }
    assert "encoder.blocks.0.0.bias" in noise_only
    for (k, a), b in zip(svg.named_parameters(), twin.parameters()):
        if k not in noise_only:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=k)  # steps are 1e-2


def test_svgloss_leaves_the_param_store_alone(frames):
    svg = SVG(tiny_config())
    SVGLoss(svg)(frames).backward()
    assert len(pyro.get_param_store()) == 0
    svg.model(frames)  # outside SVGLoss the model registers its networks again
    nets = ("encoder", "decoder", "predictor", "prior")
    assert len(pyro.get_param_store()) == sum(len(list(getattr(svg, n).parameters())) for n in nets)


def test_a_second_model_trains_its_own_weights_in_the_same_param_store(frames):
    first, second = SVG(tiny_config()), SVG(tiny_config())
    svi(first).step(frames)
    before = {k: v.detach().clone() for k, v in second.named_parameters()}
    frozen = {k: v.detach().clone() for k, v in first.named_parameters()}
    svi(second).step(frames)  # same names in the store: the second model's tensors replace them
    assert all(not torch.equal(v, before[k]) for k, v in second.named_parameters())
    assert all(torch.equal(v, frozen[k]) for k, v in first.named_parameters())
    store_ids = {id(p) for _, p in pyro.get_param_store().named_parameters()}
    assert store_ids == {id(p) for p in second.parameters()}


def test_channels_last_weights_warn_instead_of_training_a_copy(frames):
    svg = SVG(tiny_config()).to(memory_format=torch.channels_last)
    with pytest.warns(UserWarning, match="channels_last"):
        svg.model(frames)
    with pyro.validation_enabled(False), warnings.catch_warnings():
        warnings.simplefilter("error")
        SVGLoss(svg)(frames)  # the training CLI's path: nothing registered, nothing to warn
