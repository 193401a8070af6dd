"""The worked-example priors (mixture, laplace, student-t), the Monte Carlo KL, custom priors."""

import dataclasses
import json
import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from torch.distributions import kl_divergence

import svg_pyro
from svg_pyro import SVG, SVGConfig, SVGLoss, TrainConfig
from svg_pyro.commands.cli import main
from svg_pyro.models import PRIORS, LearnedPrior, Prior, register_prior
from svg_pyro.nets import GaussianLSTM, init_weights
from svg_pyro.train import Trainer
from tests.conftest import tiny_config

EXTRA = ["mixture", "laplace", "student-t"]


def prior_steps(svg, frames):
    h, _ = svg.encode(frames)
    return svg.prior(h[:, :-1])[0], h


def test_registered_on_import_svg_pyro():
    assert {"mixture", "laplace", "student-t"} <= set(svg_pyro.PRIORS)
    for name in EXTRA:
        assert SVG(tiny_config(prior=name)).config.variant == f"svg-{name}"


@pytest.mark.parametrize("name", EXTRA)
def test_shapes_and_variance_of_each_prior(name, frames):
    svg = SVG(tiny_config(prior=name))
    steps, h = prior_steps(svg, frames)
    b, z = frames.shape[0], svg.config.z_dim
    assert len(steps) == frames.shape[1] - 1
    for d in steps:
        assert d.batch_shape == (b,) and d.event_shape == (z,)
        sample = d.sample()
        assert sample.shape == (b, z)
        assert d.log_prob(sample).shape == (b,)
    if name in ("laplace", "student-t"):
        # Parameterised by the variance: Var = exp(logvar) of the LSTM's head.
        mu, logvar, _ = svg.prior.net(h[:, :-1])
        for i, d in enumerate(steps):
            torch.testing.assert_close(d.mean, mu[:, i])
            torch.testing.assert_close(d.variance, logvar[:, i].exp(), rtol=1e-5, atol=1e-6)
    if name == "student-t":
        torch.testing.assert_close(svg.prior.df, torch.full((z,), 5.0))


def test_mixture_moments_against_a_hand_computation(frames):
    svg = SVG(tiny_config(prior="mixture"))
    steps, h = prior_steps(svg, frames)
    p = svg.prior
    k, z = p.components, svg.config.z_dim
    out, logvar, _ = p.net(h[:, :-1])  # [B, L, K*z + K]: K means, then K logits
    w = out[:, 0, k * z :].softmax(-1)  # first step, [B, K]
    mu = out[:, 0, : k * z].view(-1, k, z)
    var = logvar[:, 0, : k * z].view(-1, k, z).exp()
    mean = (w[..., None] * mu).sum(1)
    second = (w[..., None] * (var + mu**2)).sum(1)
    torch.testing.assert_close(steps[0].mean, mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(steps[0].variance, second - mean**2, rtol=1e-4, atol=1e-6)
    # log-density: logsumexp over components of log w + log N.
    x = torch.randn(frames.shape[0], z)
    comp = dist.Normal(mu, var.sqrt()).log_prob(x[:, None]).sum(-1)
    torch.testing.assert_close(
        steps[0].log_prob(x), torch.logsumexp(w.log() + comp, -1), rtol=1e-5, atol=1e-5
    )
    # The components start apart, so that they can specialise.
    assert mu[0].std(0).min() > 0.1


@pytest.mark.skipif(
    "rnn" not in {f.name for f in dataclasses.fields(SVGConfig)}, reason="no ConvLSTM variant"
)
@pytest.mark.parametrize("name", EXTRA)
def test_each_prior_works_with_convlstm_latent_maps(name, frames):
    svg = SVG(tiny_config(prior=name, rnn="conv", feature_size=4))
    steps, _ = prior_steps(svg, frames)
    assert steps[0].batch_shape == (3,) and steps[0].event_shape == (svg.config.z_dim, 4, 4)
    loss = SVGLoss(svg)(frames)
    assert torch.isfinite(loss)
    loss.backward()
    assert svg.generate(frames[:, :2], 2, 2).shape == (2, 3, 2, 1, 64, 64)


def test_which_priors_have_a_closed_form_kl(frames):
    for name, analytic in (("laplace", True), ("student-t", False), ("mixture", False)):
        svg = SVG(tiny_config(prior=name))
        steps, h = prior_steps(svg, frames)
        q = svg.posterior(h[:, 1:])[0][0]
        if analytic:
            assert kl_divergence(q, steps[0]).shape == (frames.shape[0],)
        else:
            with pytest.raises(NotImplementedError):
                kl_divergence(q, steps[0])


@pytest.mark.parametrize("name", ["mixture", "student-t"])
def test_loss_runs_with_the_monte_carlo_kl_and_trains(name, frames):
    """No closed-form KL: the ELBO falls back to log q(z) - log p(z); a few steps reduce it."""
    pyro.set_rng_seed(0)
    svg = SVG(tiny_config(prior=name))
    loss_fn = SVGLoss(svg)
    loss = loss_fn(frames)
    assert torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in svg.prior.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    # The MC estimate is a random quantity (unlike the closed form): two evaluations differ.
    kls = []
    for _ in range(2):
        loss_fn(frames)
        kls.append(loss_fn.elbo.last_terms["kl"])
    assert not torch.equal(*kls)
    opt = torch.optim.Adam(svg.parameters(), lr=2e-3)
    first = None
    for _ in range(6):
        loss = loss_fn(frames)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = float(loss.detach()) if first is None else first
    assert float(loss_fn(frames).detach()) < first


# A Normal prior whose KL PyTorch cannot compute in closed form: a one-component mixture is the
# same density as the learned prior's Normal, so the Monte Carlo KL must agree with the analytic
# one in expectation.
@register_prior("test-normal-mc")
class NormalAsMixture(LearnedPrior):
    def forward(self, h_prev, state=None):
        mu, logvar, state = self.net(h_prev, state)
        std = logvar.mul(0.5).exp()
        ones = torch.ones(*mu.shape[:1], 1)
        return [
            dist.MixtureSameFamily(
                dist.Categorical(probs=ones),
                dist.Normal(mu[:, i, None], std[:, i, None]).to_event(1),
            )
            for i in range(mu.shape[1])
        ], state


def test_monte_carlo_kl_agrees_with_the_analytic_kl_in_expectation(frames):
    exact = SVG(tiny_config(prior="learned")).eval()
    mc = SVG(tiny_config(prior="test-normal-mc")).eval()
    mc.load_state_dict(exact.state_dict())
    # Push the prior away from the posterior so the KL is not near zero.
    with torch.no_grad():
        exact.prior.net.mu.bias.add_(0.7)
        mc.prior.net.mu.bias.add_(0.7)
    # Each pass scores 16 copies of every sequence: 16 independent draws of z per sequence.
    batch = frames[:, :4].repeat(16, 1, 1, 1, 1)
    analytic_fn, mc_fn = SVGLoss(exact), SVGLoss(mc)
    with torch.no_grad():
        analytic_fn(batch)
        analytic = analytic_fn.elbo.last_terms["kl"]
        pyro.set_rng_seed(1)
        draws = []
        for _ in range(16):
            mc_fn(batch)
            draws.append(mc_fn.elbo.last_terms["kl"])
    draws = torch.stack(draws)
    mean, se = draws.mean(), draws.std() / math.sqrt(len(draws))
    assert draws.std() > 0  # it really is a Monte Carlo estimate
    assert abs(mean - analytic) < 4 * se, (float(mean), float(analytic), float(se))
    assert abs(mean - analytic) < 0.05 * analytic


# -- a custom prior, written here, trained through the public API --------------------------------
@register_prior("test-shared-scale")
class SharedScalePrior(Prior):
    """LSTM mean, one learned scale per latent dimension (the same at every step)."""

    def __init__(self, config):
        super().__init__(config)
        self.net = GaussianLSTM(config.g_dim, config.z_dim, config.rnn_size, 1)
        self.apply(init_weights)
        self.log_scale = torch.nn.Parameter(torch.zeros(config.z_dim))

    def forward(self, h_prev, state=None):
        mu, _, state = self.net(h_prev, state)
        scale = self.log_scale.exp().expand_as(mu[:, 0])
        return [dist.Normal(mu[:, i], scale).to_event(1) for i in range(mu.shape[1])], state


def test_custom_prior_defined_in_a_test_trains_through_the_public_api(tmp_path):
    assert PRIORS["test-shared-scale"] is SharedScalePrior
    cfg = tiny_config(prior="test-shared-scale", n_past=2, n_future=2)
    trainer = Trainer(cfg, TrainConfig(num_digits=1, batch_size=4, steps=4, log_every=1,
                                       device="cpu"), tmp_path / "run")  # fmt: skip
    before = trainer.svg.prior.log_scale.detach().clone()
    records = trainer.fit(progress=False)
    assert len(records) == 4 and all(math.isfinite(r["neg_elbo"]) for r in records)
    assert not torch.equal(before, trainer.svg.prior.log_scale.detach())
    samples = trainer.svg.eval().generate(torch.rand(2, 2, 1, 64, 64), 3, 2)
    assert samples.shape == (2, 2, 3, 1, 64, 64)


@pytest.mark.parametrize("name", ["mixture", "student-t"])
def test_extra_priors_train_and_evaluate_through_the_cli(name, tmp_path):
    run, testset = tmp_path / "run", tmp_path / "test.npz"
    train = ["train", "--preset", "tiny", "--prior", name, "--out", str(run), "--steps", "2",
             "--nf", "4", "--g-dim", "8", "--z-dim", "3", "--rnn-size", "16", "--n-past", "2",
             "--n-future", "2", "--batch-size", "2", "--device", "cpu",
             "--no-progress"]  # fmt: skip
    assert main(train) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["prior"] == name
    assert main(["data", "smmnist-testset", "--out", str(testset), "--sequences", "2",
                 "--frames", "5", "--num-digits", "1", "--no-progress"]) == 0  # fmt: skip
    out = tmp_path / "eval.json"
    evaluate = ["evaluate", "--checkpoint", str(run / "checkpoint.pt"), "--testset", str(testset),
                "--n-samples", "2", "--n-past", "2", "--n-future", "3", "--iwae", "2",
                "--json", str(out), "--device", "cpu", "--no-progress"]  # fmt: skip
    assert main(evaluate) == 0
    assert out.is_file() and f"svg-{name}" in out.read_text()
