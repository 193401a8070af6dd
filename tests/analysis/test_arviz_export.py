"""svg_pyro.analysis.arviz_export: the InferenceData of a model and a batch of sequences."""

import math

import arviz as az
import matplotlib
import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from torch.distributions import kl_divergence

from svg_pyro import SVG
from svg_pyro.analysis import prior_scale, to_inference_data
from tests.conftest import tiny_config

matplotlib.use("Agg")


@pytest.fixture
def lp() -> SVG:
    return SVG(tiny_config(prior="learned")).eval()


def test_inference_data_groups_dims_and_shapes(lp, frames):
    b, t = frames.shape[:2]
    z = lp.config.z_dim
    idata = to_inference_data(lp, frames, n_draws=6, chains=2, seed=0)
    for group in (
        "posterior",
        "prior",
        "posterior_predictive",
        "observed_data",
        "log_likelihood",
        "sample_stats",
        "constant_data",
    ):
        assert group in idata.groups(), group
    step = ("chain", "draw", "sequence", "time")
    assert idata.posterior["z"].dims == (*step, "latent")
    assert idata.posterior["z"].shape == (2, 6, b, t - 1, z)
    assert idata.prior["z"].dims == (*step, "latent")
    assert idata.prior["z"].shape == (2, 6, b, t - 1, z)
    assert idata.log_likelihood["x"].dims == step
    assert idata.log_likelihood["x"].shape == (2, 6, b, t - 1)
    assert idata.sample_stats["kl"].dims == step
    pixels = ("channel", "height", "width")
    assert idata.posterior_predictive["x"].dims == (*step, *pixels)
    assert idata.posterior_predictive["x"].shape == (2, 6, b, t - 1, 1, 64, 64)
    assert idata.observed_data["x"].dims == ("sequence", "time", *pixels)
    np.testing.assert_array_equal(idata.observed_data["x"].values, frames[:, 1:].numpy())
    np.testing.assert_array_equal(idata.constant_data["x_0"].values, frames[:, 0].numpy())
    np.testing.assert_array_equal(idata.posterior["time"].values, np.arange(1, t))
    np.testing.assert_array_equal(idata.posterior["latent"].values, np.arange(z))
    assert idata.attrs["kl_method"] == "analytic"
    # Draws differ from each other, and posterior draws differ from prior draws.
    zq = idata.posterior["z"].values
    assert zq.reshape(12, -1).std(0).min() > 0
    assert not np.allclose(zq, idata.prior["z"].values)


def test_inference_data_numbers_match_a_hand_computation(lp, frames):
    """log-likelihood, reconstructions and KL recomputed with the networks, by hand."""
    with torch.no_grad():  # make z matter: at initialisation the frames barely depend on it
        for net in (lp.predictor, lp.decoder):
            for m in net.modules():
                if isinstance(m, (torch.nn.Linear, torch.nn.ConvTranspose2d, torch.nn.Conv2d)):
                    m.weight.normal_(0.0, 0.5)
    idata = to_inference_data(lp, frames, n_draws=3, seed=1)
    recons = idata.posterior_predictive["x"].values[0]
    assert np.abs(recons[0] - recons[1]).max() > 0.05  # two draws give different frames
    zq = torch.from_numpy(idata.posterior["z"].values[0])  # [draw, B, L, z]
    sigma = lp.config.obs_sigma
    with torch.no_grad():
        h, skips = lp.encode(frames)
        post, _ = lp.posterior(h[:, 1:])
        prior, _ = lp.prior(h[:, :-1])
        for d in range(3):
            g, _ = lp.predictor(torch.cat([h[:, :-1], zq[d]], -1))
            x_hat = lp.decode(g, skips, first_target=1)  # [B, L, C, H, W]
            log_n = -((frames[:, 1:] - x_hat) ** 2) / (2 * sigma**2) - math.log(
                sigma * math.sqrt(2 * math.pi)
            )
            expected = log_n.flatten(2).sum(-1)  # [B, L]
            got = torch.from_numpy(idata.log_likelihood["x"].values[0, d])
            torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-2)
            recon = torch.from_numpy(idata.posterior_predictive["x"].values[0, d])
            torch.testing.assert_close(recon, x_hat, rtol=1e-5, atol=1e-5)
    for t in range(1, frames.shape[1]):
        kl = kl_divergence(post[t - 1], prior[t - 1])
        got = torch.from_numpy(idata.sample_stats["kl"].values[0, :, :, t - 1])
        torch.testing.assert_close(got, kl.expand(3, -1), rtol=1e-5, atol=1e-6)


def test_inference_data_of_a_convlstm_model_has_map_latents(frames):
    svg = SVG(tiny_config(rnn="conv", feature_size=4))
    idata = to_inference_data(svg, frames, n_draws=2)
    dims = ("chain", "draw", "sequence", "time", "latent", "latent_height", "latent_width")
    assert idata.posterior["z"].dims == dims and idata.prior["z"].dims == dims
    assert idata.posterior["z"].shape == (1, 2, 3, 4, svg.config.z_dim, 4, 4)
    assert prior_scale(svg, frames).shape == (3, 4, svg.config.z_dim, 4, 4)


def test_monte_carlo_kl_and_summary_predictive(frames):
    svg = SVG(tiny_config(prior="student-t")).eval()
    full = to_inference_data(svg, frames, n_draws=4, seed=3, predictive="frames")
    small = to_inference_data(svg, frames, n_draws=4, seed=3, predictive="summary")
    assert full.attrs["kl_method"] == "monte-carlo"
    assert (
        "x" not in small.posterior_predictive and small.attrs["posterior_predictive"] == "summary"
    )
    mse = (full.posterior_predictive["x"] - full.observed_data["x"]) ** 2
    mse = mse.mean(("channel", "height", "width")).transpose(
        *small.posterior_predictive["x_mse"].dims
    )
    np.testing.assert_allclose(small.posterior_predictive["x_mse"].values, mse.values, rtol=1e-5)
    # The MC KL is log q(z) - log p(z) at each posterior draw: recompute it.
    h, _ = svg.encode(frames)
    with torch.no_grad():
        post, _ = svg.posterior(h[:, 1:])
        prior, _ = svg.prior(h[:, :-1])
    z = torch.from_numpy(full.posterior["z"].values[0, :, :, 0])
    expected = post[0].log_prob(z) - prior[0].log_prob(z)
    got = torch.from_numpy(full.sample_stats["kl"].values[0, :, :, 0])
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert got.std(0).min() > 0  # it varies between draws, unlike the closed form
    # "auto" falls back to the summary when the frames are too many.
    auto = to_inference_data(svg, frames, n_draws=2, max_predictive_values=10)
    assert "x_mse" in auto.posterior_predictive


def test_forecasts_are_the_paper_scheme_from_predictive(frames):
    """With (almost) noise-free latents every draw is the one future ``generate`` gives; with
    noise the draws differ, and the summary is the frames' mean-pixel squared error."""
    svg = SVG(tiny_config(n_past=2)).eval()
    b, t = frames.shape[:2]
    idata = to_inference_data(svg, frames, n_draws=3, chains=2, seed=0, forecast_context=2)
    x = idata.posterior_predictive["x_forecast"]
    assert x.dims == ("chain", "draw", "sequence", "forecast_time", "channel", "height", "width")
    assert x.shape == (2, 3, b, t - 2, 1, 64, 64)
    assert list(x["forecast_time"].values) == list(range(2, t))
    assert float(x.std(("chain", "draw")).max()) > 0  # each draw its own future
    summary = to_inference_data(
        svg, frames, n_draws=3, chains=2, seed=0, forecast_context=2, predictive="summary"
    )
    truth = idata.observed_data["x"].sel(time=x["forecast_time"].values).values  # [B, F, ...]
    mse = ((x.values - truth) ** 2).mean((-3, -2, -1))
    got_mse = summary.posterior_predictive["x_forecast_mse"].values
    np.testing.assert_allclose(got_mse, mse, rtol=1e-5)

    with torch.no_grad():  # sigma = exp(-20): every latent is its mean
        for net in (svg.prior.net, svg.posterior.net):
            net.logvar.bias.fill_(-40.0)
    sharp = to_inference_data(svg, frames, n_draws=2, seed=1, forecast_context=2)
    expected = svg.generate(frames[:, :2], t - 2, n_samples=1)[0].numpy()  # [B, F, C, H, W]
    got = sharp.posterior_predictive["x_forecast"].values  # [1, 2, B, F, C, H, W]
    np.testing.assert_allclose(got, np.broadcast_to(expected, got.shape), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="forecast_context"):
        to_inference_data(svg, frames, n_draws=1, forecast_context=t)


def test_arviz_functions_work_on_the_export(lp, frames):
    idata = to_inference_data(lp, frames, n_draws=20, chains=2, seed=0)
    summary = az.summary(idata, var_names=["z"])
    assert len(summary) == frames.shape[0] * (frames.shape[1] - 1) * lp.config.z_dim
    assert np.isfinite(summary["mean"]).all() and np.isfinite(summary["r_hat"]).all()
    axes = az.plot_forest(idata, var_names=["z"], coords={"sequence": [0], "latent": [0]})
    assert len(axes) >= 1
    axes = az.plot_posterior(idata, var_names=["z"], coords={"sequence": [0], "latent": [0]})
    assert np.asarray(axes).size == frames.shape[1] - 1
    matplotlib.pyplot.close("all")


def test_inference_data_restores_the_module_mode_and_rejects_bad_input(frames):
    svg = SVG(tiny_config(prior="learned")).train()
    to_inference_data(svg, frames, n_draws=1)
    assert svg.training
    with pytest.raises(ValueError, match="no latent"):
        to_inference_data(SVG(tiny_config(prior="none")), frames, n_draws=2)
    with pytest.raises(ValueError, match="n_draws"):
        to_inference_data(svg, frames, n_draws=0)
    with pytest.raises(ValueError, match="predictive"):
        to_inference_data(svg, frames, n_draws=1, predictive="gif")


def test_mixture_prior_exports_too(frames):
    pyro.set_rng_seed(0)
    svg = SVG(tiny_config(prior="mixture")).eval()
    idata = to_inference_data(svg, frames, n_draws=3)
    assert idata.attrs["kl_method"] == "monte-carlo"
    assert np.isfinite(idata.sample_stats["kl"].values).all()
    assert isinstance(svg.prior(svg.encode(frames)[0][:, :-1])[0][0], dist.MixtureSameFamily)
    sigma = prior_scale(svg, frames)
    assert sigma.shape == (3, 4, 3) and (sigma > 0).all()
