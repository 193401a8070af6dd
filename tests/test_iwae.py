"""The importance-weighted bound (:mod:`svg_pyro.iwae`): exact for the deterministic model, above
the ELBO and growing with the number of particles."""

import math

import numpy as np
import pyro
import torch

from svg_pyro.checkpoint import load_model
from svg_pyro.data import to_float
from svg_pyro.iwae import iwae_bound, log_weights
from tests.conftest import F, P


def test_iwae_of_the_deterministic_model_is_its_exact_log_likelihood(trained):
    """No latent: log w is sum_t log N(x_t; x_hat_t, sigma), computed here by hand."""
    svg, _ = load_model(trained["det"])
    svg.eval()
    x = to_float(np.load(trained["testset"])["frames"][:4, : P + F], "cpu")
    with torch.no_grad():
        h, skips = svg.encode(x)
        g, _ = svg.predictor(h[:, :-1])
        skip = [s[:, P - 1] for s in skips]  # the paper's skip: the last context frame
        means = torch.stack([svg.decoder(g[:, t - 1], skip) for t in range(P, P + F)], 1)
    sse = (means.double() - x[:, P:].double()).pow(2).flatten(1).sum(1)
    d = F * 4096
    for sigma in (svg.config.obs_sigma, 0.2):
        expected = -sse / (2 * sigma**2) - d * math.log(sigma * math.sqrt(2 * math.pi))
        lw = log_weights(svg, x, P, n_particles=1, obs_sigma=sigma)
        assert lw.shape == (1, 4)
        assert torch.allclose(lw[0], expected, rtol=1e-5)
    assert svg.config.n_past == P and svg.config.obs_sigma != 0.2  # restored after the override


def test_iwae_is_above_the_elbo_and_grows_with_k(trained):
    svg, _ = load_model(trained["lp"])
    svg.eval()
    x = to_float(np.load(trained["testset"])["frames"][:, : P + F], "cpu")
    pyro.set_rng_seed(0)
    lw = log_weights(svg, x, P, n_particles=120)  # [120, 16]
    assert lw.shape == (120, 16) and torch.isfinite(lw).all()
    elbo = lw.mean(0)

    def bound(k):  # the K-particle bound averaged over 120 / K disjoint groups and sequences
        return torch.stack([iwae_bound(c) for c in lw.split(k)]).mean()

    # the bound by hand, in float64: log of the mean of the weights, per sequence
    w10 = lw[:10].double()
    peak = w10.max(0).values
    by_hand = peak + (w10 - peak).exp().mean(0).log()
    torch.testing.assert_close(iwae_bound(lw[:10]).double(), by_hand, rtol=1e-6, atol=1e-4)
    assert bound(10) > elbo.mean()
    assert bound(1) < bound(10) < bound(40) < bound(120)
    # the weights really vary between particles: the test is not of equal weights
    assert lw.std(0).mean() > 0.1
