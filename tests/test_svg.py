"""Generation, its equality with Pyro's Predictive, and the skip-connection source."""

import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import Predictive

from svg_pyro import SVG, Prior, register_prior
from svg_pyro.models import PRIORS
from tests.conftest import tiny_config


@pytest.mark.parametrize("prior", ["learned", "fixed", "none"])
def test_generate_shapes_and_range(prior):
    svg = SVG(tiny_config(prior=prior)).eval()
    context = torch.rand(2, 3, 1, 64, 64)
    out = svg.generate(context, n_future=4, n_samples=5)
    assert out.shape == (5, 2, 4, 1, 64, 64)
    spread = out.std(0).max()
    if prior == "none":
        assert spread == 0  # deterministic: every sample is the same
    else:
        assert spread > 0


def test_generate_is_one_batched_pass():
    svg = SVG(tiny_config()).eval()
    batch_sizes = []
    # the head runs whether or not the skip halves are shared (svg_pyro.skipshare)
    svg.decoder.head.register_forward_hook(lambda m, i, o: batch_sizes.append(i[0].shape[0]))
    svg.generate(torch.rand(2, 3, 1, 64, 64), n_future=4, n_samples=5)
    assert batch_sizes == [10] * 4  # K*B sequences per call, one call per future frame


def test_generate_edge_cases():
    svg = SVG(tiny_config()).eval()
    assert svg.generate(torch.rand(2, 1, 1, 64, 64), 2, 3).shape == (3, 2, 2, 1, 64, 64)
    assert svg.generate(torch.rand(2, 2, 1, 64, 64), 0, 3).shape == (3, 2, 0, 1, 64, 64)
    with pytest.raises(ValueError, match="n_samples"):
        svg.generate(torch.rand(2, 2, 1, 64, 64), 2, 0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        svg.generate(torch.rand(2, 2, 1, 64, 64) * 3, 2, 1)


def test_generate_reproducible_with_seed():
    svg = SVG(tiny_config()).eval()
    ctx = torch.rand(2, 3, 1, 64, 64)
    torch.manual_seed(0)
    a = svg.generate(ctx, 3, 2)
    torch.manual_seed(0)
    b = svg.generate(ctx, 3, 2)
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize(
    "source,n_past,expected",
    [
        ("last_context", 3, [0, 1, 2, 2, 2]),
        ("original", 3, [0, 1, 1, 1, 1]),
        ("previous", 3, [0, 1, 2, 3, 4]),
        ("original", 1, [0, 0, 0, 0, 0]),
    ],
)
def test_skip_index(source, n_past, expected):
    svg = SVG(tiny_config(skip_source=source, n_past=n_past))
    assert [svg.skip_index(t) for t in range(1, 6)] == expected


def test_first_generated_frame_matches_teacher_forced_prediction():
    """With the same z, step-by-step generation equals the model's teacher-forced mean."""
    svg = SVG(tiny_config(prior="none", n_past=3)).eval()
    frames = torch.rand(2, 4, 1, 64, 64)
    with torch.no_grad():
        teacher = svg.model(frames)  # [B, 3, ...]: predictions of frames 1..3
    generated = svg.generate(frames[:, :3], n_future=1, n_samples=1)[0, :, 0]
    torch.testing.assert_close(generated, teacher[:, 2], rtol=1e-4, atol=1e-5)


@register_prior("test-generate-laplace")
class LaplaceTestPrior(Prior):
    """A user prior of another family: z_t ~ Laplace(mu_t, b_t), both from one LSTM."""

    def __init__(self, config):
        super().__init__(config)
        self.rnn = torch.nn.LSTM(config.g_dim, config.rnn_size, batch_first=True)
        self.head = torch.nn.Linear(config.rnn_size, 2 * config.z_dim)

    def forward(self, h_prev, state=None):
        y, state = self.rnn(h_prev, state)
        mu, log_b = self.head(y).chunk(2, -1)
        steps = [dist.Laplace(mu[:, i], log_b[:, i].exp()).to_event(1) for i in range(y.shape[1])]
        return steps, state


PRIORS.pop("test-generate-laplace")  # registered per test below, not for the whole session

VARIANTS = {
    "learned": {},
    "fixed": {"prior": "fixed"},
    "deterministic": {"prior": "none"},
    "convlstm": {"rnn": "conv"},
    "user-prior": {"prior": "test-generate-laplace"},
    "previous-skips": {"skip_source": "previous"},
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_generate_gives_the_frames_of_predictive(variant):
    """``generate`` and ``Predictive(model, guide)`` are one program: given the latents that
    ``Predictive`` drew (it spends random numbers on extra passes of its own, so a shared seed
    cannot line the two up), ``generate`` reproduces every forecast frame of every sample."""
    PRIORS["test-generate-laplace"] = LaplaceTestPrior
    try:
        svg = SVG(tiny_config(n_past=3, **VARIANTS[variant])).eval()
    finally:
        PRIORS.pop("test-generate-laplace")
    b, p, f, k = 2, 3, 3, 4
    context = torch.rand(b, p, 1, 64, 64)
    latent = svg.prior is not None
    z_sites = [f"z_{t}" for t in range(1, p + f)] if latent else []
    x_sites = [f"x_hat_{t}" for t in range(p, p + f)]
    pred = Predictive(svg.model, guide=svg.guide, num_samples=k, return_sites=z_sites + x_sites)(
        context, n_future=f
    )
    expected = torch.stack([pred[s] for s in x_sites], 2)  # [K, B, F, C, H, W]
    assert expected.shape == (k, b, f, 1, 64, 64)
    data = {s: pred[s].reshape(k * b, *pred[s].shape[2:]) for s in z_sites}  # sample-major
    generated = poutine.condition(svg.generate, data=data)(context, f, k)
    torch.testing.assert_close(generated, expected, rtol=1e-4, atol=1e-5)
    spread = expected.std(0).max()
    assert spread > 0 if latent else spread == 0  # the samples are not all one future


def test_generate_traces_the_sites_of_the_model():
    svg = SVG(tiny_config(n_past=3)).eval()
    tr = poutine.trace(svg.generate).get_trace(torch.rand(2, 3, 1, 64, 64), 2, 5)
    sites = [n for n, s in tr.nodes.items() if s["type"] == "sample" and n != "sequences"]
    assert sites == ["z_1", "z_2", "z_3", "x_hat_3", "z_4", "x_hat_4"]  # no pixel noise x_t
    assert all(tr.nodes[n]["fn"].batch_shape == (10,) for n in sites)  # K * B, one pass
    assert [f.name for f in tr.nodes["z_4"]["cond_indep_stack"]] == ["sequences"]
