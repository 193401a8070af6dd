"""Pyro's leading plates: parallel Predictive and vectorized ELBO particles on every variant."""

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import SVI, Predictive, Trace_ELBO, TraceMeanField_ELBO
from pyro.poutine.trace_struct import Trace

from svg_pyro import SVG, SVGLoss, register_prior
from svg_pyro.models import PRIORS
from svg_pyro.models.batching import FoldedBatch
from tests.conftest import tiny_config
from tests.models.test_forecast import lively
from tests.models.test_svi import LSTMMeanPrior

P, F, K = 3, 3, 4
VARIANTS = {
    "learned": dict(prior="learned"),
    "fixed": dict(prior="fixed"),
    "none": dict(prior="none"),
    "conv": dict(prior="learned", rnn="conv", feature_size=4),
    "user": dict(prior="test-vectorized-prior"),
    "mixture": dict(prior="mixture"),
}


UserPrior = register_prior("test-vectorized-prior")(LSTMMeanPrior)


@pytest.fixture(scope="module", autouse=True)
def _one_thread_and_unregister():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny convolutions: one thread is far faster on a busy CPU
    yield
    torch.set_num_threads(threads)
    PRIORS.pop("test-vectorized-prior", None)


def model_of(variant: str, **overrides) -> SVG:
    return lively(SVG(tiny_config(n_past=P, **VARIANTS[variant], **overrides)))


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_parallel_predictive_is_generate_given_the_same_latents(variant):
    svg = model_of(variant)
    context = torch.rand(2, P, 1, 64, 64, generator=torch.Generator().manual_seed(2))
    out = Predictive(svg.model, guide=svg.guide, num_samples=K, parallel=True)(context, F)
    for t in range(1, P + F):
        assert out[f"x_{t}"].shape == (K, 2, 1, 64, 64)
    futures = torch.stack([out[f"x_hat_{t}"] for t in range(P, P + F)], 2)  # [K, B, F, ...]
    z = {n: v for n, v in out.items() if n.startswith("z_")}
    assert sorted(z) == ([] if variant == "none" else sorted(f"z_{t}" for t in range(1, P + F)))
    flat = {n: v.reshape(K * 2, *v.shape[2:]) for n, v in z.items()}  # sample-major, as generate
    expected = poutine.condition(svg.generate, data=flat)(context, F, n_samples=K)
    torch.testing.assert_close(futures, expected, rtol=1e-4, atol=1e-5)
    if variant != "none":  # K different futures, not one copied K times
        assert (futures[0] - futures[1]).abs().max() > 1e-3
        for t in range(P, P + F):  # the forecast's latents are the prior's fresh draws
            assert not torch.equal(z[f"z_{t}"][0], z[f"z_{t}"][1])


@pytest.mark.parametrize("variant", ["learned", "none"])
def test_sequential_predictive_gives_the_same_sites(variant):
    svg = model_of(variant)
    context = torch.rand(2, P, 1, 64, 64)
    seq = Predictive(svg.model, guide=svg.guide, num_samples=2)(context, F)
    par = Predictive(svg.model, guide=svg.guide, num_samples=2, parallel=True)(context, F)
    assert {n: v.shape for n, v in seq.items()} == {n: v.shape for n, v in par.items()}


def test_a_conditioned_latent_without_the_sample_dim_broadcasts():
    svg = model_of("learned")
    context = torch.rand(2, P, 1, 64, 64)
    z4 = torch.full((2, svg.config.z_dim), 2.0)  # [B, z]: the same for every sample
    model = poutine.condition(svg.model, data={"z_4": z4})
    out = Predictive(model, guide=svg.guide, num_samples=K, parallel=True)(context, F)
    assert out["x_hat_5"].shape == (K, 2, 1, 64, 64)
    assert torch.equal(out["z_4"], z4.expand(K, 2, -1))


def test_folded_batch_reads_a_flat_distribution_as_samples_by_sequences():
    base = dist.Normal(torch.arange(6.0)[:, None].expand(6, 2), 1.0).to_event(1)
    d = FoldedBatch(base, (3, 2))
    assert d.batch_shape == (3, 2) and d.event_shape == (2,)
    torch.testing.assert_close(d.mean[1, 0], base.mean[2])
    x = d.sample((5,))
    assert x.shape == (5, 3, 2, 2)
    torch.testing.assert_close(d.log_prob(x), base.log_prob(x.reshape(5, 6, 2)).reshape(5, 3, 2))
    torch.testing.assert_close(d.log_prob(x[0, 0]), base.log_prob(x[0, 0].repeat(3, 1)).view(3, 2))
    with pytest.raises(ValueError, match="cannot read"):
        FoldedBatch(base, (4, 2))


# -- vectorized ELBO particles ------------------------------------------------------------------
def recording(guide, store: list):
    """``guide``, recording the trace of each run in ``store``."""

    def run(*args, **kwargs):
        with poutine.trace() as tr:
            guide(*args, **kwargs)
        store.append(tr.trace)

    return run


def particle(trace: Trace, k: int) -> Trace:
    """A trace holding particle ``k`` of each latent of a vectorized guide trace."""
    out = Trace()
    for name in [n for n in trace.stochastic_nodes if n.startswith("z_")]:
        value = trace.nodes[name]["value"][k]
        out.add_node(name, type="sample", is_observed=False, value=value, infer={})
    return out


@pytest.mark.parametrize("variant", ["learned", "fixed", "none", "conv", "user", "mixture"])
@pytest.mark.parametrize("elbo_cls", [TraceMeanField_ELBO, Trace_ELBO])
def test_vectorized_particles_are_the_mean_of_one_particle_estimates(variant, elbo_cls, frames):
    svg = model_of(variant, n_future=2).eval()  # eval: BatchNorm does not mix the particles
    store: list = []
    vec = elbo_cls(num_particles=K, vectorize_particles=True, max_plate_nesting=1)
    pyro.set_rng_seed(3)
    loss = vec.loss(svg.model, recording(svg.guide, store), frames)
    one = elbo_cls(max_plate_nesting=1)
    latent = variant != "none"
    singles = [
        one.loss(svg.model, poutine.replay(svg.guide, trace=particle(store[-1], k)), frames)
        for k in range(K if latent else 1)
    ]
    assert loss == pytest.approx(sum(singles) / len(singles), rel=1e-5)
    if latent:  # the particles really differ
        assert len(particle(store[-1], 0).nodes) == P + 1
        assert max(singles) - min(singles) > 1e-4 * abs(loss)  # 10x the tolerance above


def test_svgloss_averages_its_vectorized_particles_per_sequence(frames):
    svg = model_of("learned", n_future=2).eval()
    store: list = []
    svg.guide = recording(SVG.guide.__get__(svg), store)  # SVGLoss calls svg.guide
    vec = SVGLoss(svg, num_particles=K)
    pyro.set_rng_seed(3)
    total = vec(frames)
    assert vec.elbo.vectorize_particles
    terms = [dict(vec.last_terms)]
    one = SVGLoss(svg)
    parts = []
    for k in range(K):
        replayed = poutine.replay(SVG.guide.__get__(svg), trace=particle(store[0], k))
        svg.guide = replayed
        parts.append(one(frames).item())
        terms.append(dict(one.last_terms))
    assert total.item() == pytest.approx(sum(parts) / K, rel=1e-5)
    for key in ("loss", "recon", "kl", "neg_elbo"):
        mean = sum(t[key].item() for t in terms[1:]) / K
        assert terms[0][key].item() == pytest.approx(mean, rel=1e-5), key
    assert max(t["recon"].item() for t in terms[1:]) > min(t["recon"].item() for t in terms[1:])


@pytest.mark.parametrize(
    "variant, elbo_cls",
    [("learned", TraceMeanField_ELBO), ("none", TraceMeanField_ELBO), ("conv", Trace_ELBO)],
)
def test_svi_trains_with_vectorized_particles(variant, elbo_cls, frames):
    svg = SVG(tiny_config(**VARIANTS[variant]))
    before = {k: v.detach().clone() for k, v in svg.named_parameters()}
    elbo = elbo_cls(num_particles=3, vectorize_particles=True, max_plate_nesting=1)
    svi = SVI(svg.model, svg.guide, pyro.optim.Adam({"lr": 1e-3}), elbo)
    losses = [svi.step(frames) for _ in range(2)]
    assert all(torch.isfinite(torch.tensor(losses)))
    unmoved = [k for k, v in svg.named_parameters() if torch.equal(v, before[k])]
    assert unmoved == []
