"""ConvLSTM cells, map encoder/decoder, and the rnn="conv" variant of the Pyro program."""

import pytest
import torch
import torch.nn.functional as F
from pyro import poutine

from svg_pyro import SVG, SVGLoss
from svg_pyro.config import build_configs
from svg_pyro.nets import (
    ConvLSTMCell,
    ConvPredictor,
    DCGANMapDecoder,
    DCGANMapEncoder,
    GaussianConvLSTM,
    StackedConvLSTM,
)
from svg_pyro.train import Trainer
from tests.conftest import tiny_config


def conv_config(**kw):
    base = dict(rnn="conv", feature_size=8, g_dim=6, z_dim=2, rnn_size=8)
    base.update(kw)
    return tiny_config(**base)


def test_cell_single_step_by_hand():
    torch.manual_seed(0)
    cell = ConvLSTMCell(in_channels=2, hidden=3)
    x = torch.randn(1, 1, 2, 5, 5)
    h0, c0 = torch.randn(1, 3, 5, 5), torch.randn(1, 3, 5, 5)
    out, (h1, c1) = cell(x, (h0, c0))
    # by hand: z = W_x * x + b + W_h * h, split into input, forget, cell, output gates
    z = F.conv2d(x[:, 0], cell.x2gates.weight, cell.x2gates.bias, padding=1)
    z = z + F.conv2d(h0, cell.h2gates.weight, padding=1)
    i, f, g, o = z[:, 0:3], z[:, 3:6], z[:, 6:9], z[:, 9:12]
    c_expected = torch.sigmoid(f) * c0 + torch.sigmoid(i) * torch.tanh(g)
    h_expected = torch.sigmoid(o) * torch.tanh(c_expected)
    torch.testing.assert_close(c1, c_expected)
    torch.testing.assert_close(h1, h_expected)
    torch.testing.assert_close(out[:, 0], h_expected)


def test_cell_shapes_and_stepping_equals_sequence():
    net = StackedConvLSTM(in_channels=4, hidden=5, n_layers=2)
    x = torch.randn(2, 6, 4, 8, 8)
    y, state = net(x)
    assert y.shape == (2, 6, 5, 8, 8)
    assert len(state) == 2 and state[1][0].shape == (2, 5, 8, 8)
    steps, s = [], None
    for t in range(6):
        out, s = net(x[:, t : t + 1], s)
        steps.append(out)
    torch.testing.assert_close(torch.cat(steps, 1), y)
    g, _ = ConvPredictor(4, 7, 5, 1)(x)
    assert g.shape == (2, 6, 7, 8, 8) and g.abs().max() <= 1
    mu, logvar, _ = GaussianConvLSTM(4, 3, 5, 1)(x)
    assert mu.shape == logvar.shape == (2, 6, 3, 8, 8)


@pytest.mark.parametrize("size", [8, 4])
def test_map_encoder_decoder_shapes(size):
    enc, dec = DCGANMapEncoder(6, 1, 4, size), DCGANMapDecoder(6, 1, 4, size)
    h, skips = enc(torch.rand(3, 1, 64, 64))
    assert h.shape == (3, 6, size, size)
    assert skips[-1].shape[-1] == size
    x = dec(h, skips)
    assert x.shape == (3, 1, 64, 64) and ((x > 0) & (x < 1)).all()


@pytest.mark.parametrize("prior", ["learned", "fixed", "none"])
def test_conv_traces_sites_shapes_and_scales(prior, frames):
    svg = SVG(conv_config(prior=prior))
    guide_tr = poutine.trace(svg.guide).get_trace(frames)
    model_tr = poutine.trace(poutine.replay(svg.model, trace=guide_tr)).get_trace(frames)
    b, t = frames.shape[:2]
    names = {n for n, s in model_tr.nodes.items() if s["type"] == "sample" and n != "sequences"}
    zs = {f"z_{i}" for i in range(1, t)} if prior != "none" else set()
    assert names == {f"x_{i}" for i in range(1, t)} | zs
    for name in zs:
        for tr in (model_tr, guide_tr):
            site = tr.nodes[name]
            assert site["fn"].batch_shape == (b,) and site["fn"].event_shape == (2, 8, 8)
            assert site["scale"] == pytest.approx(svg.config.kl_scale)
    assert model_tr.nodes["x_1"]["is_observed"]


def test_conv_kl_is_summed_over_the_map(frames):
    svg = SVG(conv_config())
    loss_fn = SVGLoss(svg)
    with torch.no_grad():
        loss_fn(frames)
        h, _ = svg.encode(frames)
        mu_q, lv_q, _ = svg.posterior.net(h[:, 1:])
        mu_p, lv_p, _ = svg.prior.net(h[:, :-1])
        kl = 0.5 * (lv_p - lv_q + (lv_q.exp() + (mu_q - mu_p) ** 2) / lv_p.exp() - 1)
    torch.testing.assert_close(
        loss_fn.last_terms["kl"], kl.sum() / frames.shape[0], rtol=1e-4, atol=1e-6
    )


def test_conv_generation_shapes():
    svg = SVG(conv_config()).eval()
    out = svg.generate(torch.rand(2, 2, 1, 64, 64), n_future=3, n_samples=4)
    assert out.shape == (4, 2, 3, 1, 64, 64)
    assert out.std(0).max() > 0


def test_conv_loss_falls_on_cpu(tmp_path):
    model_cfg, train_cfg = build_configs(
        "tiny", rnn="conv", g_dim=8, z_dim=2, rnn_size=8, steps=60, log_every=1, device="cpu"
    )
    losses = [r["loss"] for r in Trainer(model_cfg, train_cfg, tmp_path).fit(progress=False)]
    assert sum(losses[-10:]) / 10 < 0.6 * sum(losses[:10]) / 10


def test_conv_needs_dcgan_and_a_known_map_size():
    with pytest.raises(ValueError, match="dcgan"):
        conv_config(encoder="vgg")
    with pytest.raises(ValueError, match="feature_size"):
        conv_config(feature_size=16)
    with pytest.raises(ValueError, match="rnn"):
        tiny_config(rnn="gru")
