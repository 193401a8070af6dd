"""The loss is the paper's objective (times a constant, plus a constant), with an analytic KL."""

import copy
import math

import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer import TraceMeanField_ELBO

from svg_pyro import SVG, SVGLoss
from svg_pyro.pretrained import load_pretrained
from tests.conftest import tiny_config


def original_kl(mu1, logvar1, mu2, logvar2):
    """The original release's kl_criterion, summed over z and batch (not averaged)."""
    sigma1, sigma2 = logvar1.mul(0.5).exp(), logvar2.mul(0.5).exp()
    kld = (
        torch.log(sigma2 / sigma1) + (logvar1.exp() + (mu1 - mu2) ** 2) / (2 * logvar2.exp()) - 0.5
    )
    return kld.sum()


@pytest.mark.parametrize("prior", ["learned", "fixed", "none"])
def test_loss_equals_hand_computed_paper_objective(prior, frames):
    cfg = tiny_config(prior=prior, beta=0.3, obs_sigma=0.8)
    svg = SVG(cfg)
    loss_fn = SVGLoss(svg)
    pyro.set_rng_seed(7)
    loss = loss_fn(frames)
    pyro.set_rng_seed(7)  # the guide runs first inside the ELBO: same draws
    guide_tr = poutine.trace(svg.guide).get_trace(frames)

    # -- hand computation with the same networks, written the original way ----------------
    b, t = frames.shape[:2]
    h, skips = svg.encoder(frames.flatten(0, 1))
    h = h.view(b, t, -1)
    mse_sum, kl_sum, inputs = 0.0, 0.0, []
    if prior != "none":
        mu_q, lv_q, _ = svg.posterior.net(h[:, 1:])
        if prior == "learned":
            mu_p, lv_p, _ = svg.prior.net(h[:, :-1])
        else:
            mu_p, lv_p = torch.zeros_like(mu_q), torch.zeros_like(lv_q)
        for i in range(1, t):
            z = guide_tr.nodes[f"z_{i}"]["value"]
            torch.testing.assert_close(guide_tr.nodes[f"z_{i}"]["fn"].mean, mu_q[:, i - 1])
            kl_sum = kl_sum + original_kl(
                mu_q[:, i - 1], lv_q[:, i - 1], mu_p[:, i - 1], lv_p[:, i - 1]
            )
            inputs.append(torch.cat([h[:, i - 1], z], -1))
    else:
        inputs = [h[:, i - 1] for i in range(1, t)]
    g, _ = svg.predictor(torch.stack(inputs, 1))
    skip_maps = [s.view(b, t, *s.shape[1:]) for s in skips]
    for i in range(1, t):
        j = min(i - 1, cfg.n_past - 1)  # the paper: skips of the last ground-truth frame
        x_hat = svg.decoder(g[:, i - 1], [s[:, j] for s in skip_maps])
        mse_sum = mse_sum + torch.nn.functional.mse_loss(x_hat, frames[:, i]) * b  # batch sum
    paper = (mse_sum + cfg.beta * kl_sum) / b  # per-sequence paper objective
    p, s2 = cfg.pixels, cfg.obs_sigma**2
    const = (t - 1) * p * math.log(math.sqrt(2 * math.pi) * cfg.obs_sigma)
    expected = b * (p / (2 * s2) * paper + const)
    torch.testing.assert_close(loss, expected, rtol=2e-5, atol=0.05)
    torch.testing.assert_close(loss_fn.last_terms["loss"], paper.detach(), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(
        loss_fn.last_terms["recon"], (mse_sum / b).detach(), rtol=1e-4, atol=1e-6
    )


def test_matches_pyros_trace_mean_field_elbo(frames):
    svg = SVG(tiny_config())
    pyro.set_rng_seed(3)
    ours = SVGLoss(svg)(frames)
    pyro.set_rng_seed(3)
    theirs = TraceMeanField_ELBO().differentiable_loss(svg.model, svg.guide, frames)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-3)


def test_gradients_reach_prior_posterior_and_decoder(frames):
    svg = SVG(tiny_config())
    SVGLoss(svg)(frames).backward()
    for name in ("prior", "posterior", "predictor", "encoder", "decoder"):
        grads = [p.grad for p in getattr(svg, name).parameters()]
        assert all(g is not None for g in grads), name
        assert sum(g.abs().sum() for g in grads) > 0, name


def test_analytic_kl_matches_monte_carlo(frames):
    svg = SVG(tiny_config())
    loss_fn = SVGLoss(svg)
    with torch.no_grad():
        loss_fn(frames)
        analytic = loss_fn.last_terms["kl"] * frames.shape[0]  # sum over batch
        h, _ = svg.encode(frames)
        q_steps, _ = svg.posterior(h[:, 1:])
        p_steps, _ = svg.prior(h[:, :-1])
        mc = 0.0
        for q, p in zip(q_steps, p_steps):
            z = q.sample((20000,))
            mc = mc + (q.log_prob(z) - p.log_prob(z)).mean(0).sum()
    assert mc.item() == pytest.approx(analytic.item(), rel=0.05, abs=0.02)


def test_encoder_runs_once_per_frame_in_a_loss_evaluation(frames):
    svg = SVG(tiny_config())
    calls = []
    svg.encoder.register_forward_hook(lambda mod, inp, out: calls.append(inp[0].shape[0]))
    SVGLoss(svg)(frames)
    assert calls == [frames.shape[0] * frames.shape[1]]


def test_small_beta_leaves_mostly_reconstruction(frames):
    svg = SVG(tiny_config(beta=1e-12))
    loss_fn = SVGLoss(svg)
    loss_fn(frames)
    torch.testing.assert_close(loss_fn.last_terms["loss"], loss_fn.last_terms["recon"])
    assert loss_fn.last_terms["kl"] > 0  # still measured, unscaled


def reference_loss(svg, frames):
    """The negative ELBO computed the plain way, independently of the fast paths (issue 22):
    plain module calls (the decoder's own layers, every predicted frame's skip maps gathered),
    the likelihood of one indexed frame at a time, the guide's draws first as in the ELBO."""
    cfg, (b, t) = svg.config, frames.shape[:2]
    h, skips = svg.encoder(frames.flatten(0, 1))
    h, skips = h.reshape(b, t, -1), [s.reshape(b, t, *s.shape[1:]) for s in skips]
    q_steps, _ = svg.posterior(h[:, 1:])
    z = [q.rsample() for q in q_steps]
    p_steps, _ = svg.prior(h[:, :-1])
    kl = sum(torch.distributions.kl_divergence(q, p).sum() for q, p in zip(q_steps, p_steps))
    g, _ = svg.predictor(torch.cat([h[:, :-1], torch.stack(z, 1)], -1))
    index = [svg.skip_index(i) for i in range(1, t)]
    chosen = [s[:, index].flatten(0, 1) for s in skips]
    x = svg.decoder(g.flatten(0, 1), chosen).reshape(b, t - 1, *frames.shape[2:])
    normal = torch.distributions.Normal
    log_lik = sum(
        normal(x[:, i], cfg.obs_sigma).log_prob(frames[:, i + 1]).sum() for i in range(t - 1)
    )
    return cfg.kl_scale * kl - log_lik


def assert_same_function(svg, frames, tol=1e-5):
    """SVGLoss on ``svg`` and :func:`reference_loss` on a copy: same loss, gradients (within
    ``tol`` of the gradients' norm) and BatchNorm statistics afterwards."""
    ref_svg = copy.deepcopy(svg)
    results = []
    for net, loss_fn in ((svg, SVGLoss(svg)), (ref_svg, lambda f: reference_loss(ref_svg, f))):
        pyro.set_rng_seed(11)
        loss = loss_fn(frames)
        results.append((loss, torch.autograd.grad(loss, list(net.parameters()))))
    (loss, grads), (ref, ref_grads) = results
    assert torch.allclose(loss, ref, rtol=1e-6), (loss, ref)
    scale = torch.cat([r.flatten() for r in ref_grads]).norm()
    for (name, _), a, b in zip(svg.named_parameters(), grads, ref_grads):
        assert (a - b).norm() <= tol * scale, name
    for a, b in zip(svg.buffers(), ref_svg.buffers()):  # BatchNorm saw the same batches
        assert torch.allclose(a.float(), b.float(), atol=1e-6)


@pytest.mark.parametrize("channels_last", [False, True])
def test_loss_and_every_gradient_equal_the_plain_computation(channels_last):
    # the training step's fast paths (shared skips, the one-channel transposed convolution,
    # NHWC-kept skip arithmetic, per-frame views) compute the same function as plain torch
    svg = SVG(tiny_config(n_past=3, n_future=3))
    if channels_last:  # as TrainConfig(channels_last=True), the smmnist-cpu recipe, prepares it
        svg = svg.to(memory_format=torch.channels_last)
    frames = torch.rand(4, 6, 1, 64, 64, generator=torch.Generator().manual_seed(2))
    assert_same_function(svg, frames)


def test_shipped_weights_give_the_same_loss_and_gradients_as_the_plain_computation():
    # the shipped SVG-LP (the smmnist-cpu recipe, saved by the code before issue 22) loads into
    # the same parameter names and shapes, and trains on, channels_last, the same function
    svg = load_pretrained("smmnist-lp").train().to(memory_format=torch.channels_last)
    frames = torch.rand(2, 15, 1, 64, 64, generator=torch.Generator().manual_seed(3))
    assert_same_function(svg, frames)
