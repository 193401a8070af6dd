"""VGG-64 encoder/decoder: shapes, the original's layer list, and use inside SVG."""

import pytest
import torch
from torch import nn

from svg_pyro import SVG
from svg_pyro.config import get_preset
from svg_pyro.elbo import SVGLoss
from svg_pyro.nets import DCGANDecoder, DCGANEncoder, VGGDecoder, VGGEncoder
from tests.conftest import tiny_config


@pytest.mark.parametrize("channels,nf,g_dim", [(1, 4, 8), (3, 8, 16)])
def test_vgg_shapes(channels, nf, g_dim):
    enc, dec = VGGEncoder(g_dim, channels, nf), VGGDecoder(g_dim, channels, nf)
    x = torch.rand(5, channels, 64, 64)
    h, skips = enc(x)
    assert h.shape == (5, g_dim)
    assert [tuple(s.shape) for s in skips] == [
        (5, nf, 64, 64), (5, 2 * nf, 32, 32), (5, 4 * nf, 16, 16), (5, 8 * nf, 8, 8)
    ]  # fmt: skip
    assert h.abs().max() <= 1  # tanh head
    y = dec(h, skips)
    assert y.shape == x.shape
    assert ((y > 0) & (y < 1)).all()  # sigmoid output


def _conv_params(c_in, c_out, k):
    return c_in * c_out * k * k + c_out


def test_vgg_matches_the_original_layer_list():
    """Layer widths of the original ``vgg_64`` (nf=64, g=128, one channel), per REFERENCE.md."""
    enc = VGGEncoder(128, 1, 64)
    convs = [(m.in_channels, m.out_channels, m.kernel_size[0]) for m in enc.modules()
             if isinstance(m, nn.Conv2d)]  # fmt: skip
    assert convs == [
        (1, 64, 3), (64, 64, 3), (64, 128, 3), (128, 128, 3),
        (128, 256, 3), (256, 256, 3), (256, 256, 3),
        (256, 512, 3), (512, 512, 3), (512, 512, 3), (512, 128, 4),
    ]  # fmt: skip
    assert sum(isinstance(m, nn.MaxPool2d) for m in enc.modules()) == 1  # reused 4 times
    dec = VGGDecoder(128, 1, 64)
    layers = [(type(m).__name__, m.in_channels, m.out_channels, m.kernel_size[0])
              for m in dec.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]  # fmt: skip
    assert layers == [
        ("ConvTranspose2d", 128, 512, 4),
        ("Conv2d", 1024, 512, 3), ("Conv2d", 512, 512, 3), ("Conv2d", 512, 256, 3),
        ("Conv2d", 512, 256, 3), ("Conv2d", 256, 256, 3), ("Conv2d", 256, 128, 3),
        ("Conv2d", 256, 128, 3), ("Conv2d", 128, 64, 3),
        ("Conv2d", 128, 64, 3), ("ConvTranspose2d", 64, 1, 3),
    ]  # fmt: skip
    # Parameter count by hand: every conv plus a BatchNorm (2 per channel) after all but the last.
    enc_count = sum(_conv_params(a, b, k) + 2 * b for a, b, k in convs)
    dec_count = sum(_conv_params(a, b, k) + 2 * b for _, a, b, k in layers[:-1])
    dec_count += _conv_params(64, 1, 3)
    assert sum(p.numel() for p in enc.parameters()) == enc_count
    assert sum(p.numel() for p in dec.parameters()) == dec_count


def test_vgg_decoder_uses_every_skip():
    torch.manual_seed(0)
    enc, dec = VGGEncoder(8, 1, 4).eval(), VGGDecoder(8, 1, 4).eval()
    h, skips = enc(torch.rand(2, 1, 64, 64))
    skips = [s.detach().requires_grad_() for s in skips]
    dec(h.detach(), skips).square().sum().backward()
    for i, s in enumerate(skips):
        assert s.grad is not None and s.grad.abs().sum() > 0, f"skip {i} is ignored"


def test_vgg_has_the_dcgan_skip_interface():
    """Both decoders take (g, skips) with four maps, finest first, as their encoders give them."""
    for enc_cls, dec_cls in ((DCGANEncoder, DCGANDecoder), (VGGEncoder, VGGDecoder)):
        h, skips = enc_cls(8, 3, 4)(torch.rand(2, 3, 64, 64))
        assert len(skips) == 4
        assert [s.shape[-1] for s in skips] == sorted((s.shape[-1] for s in skips), reverse=True)
        assert dec_cls(8, 3, 4)(h, skips).shape == (2, 3, 64, 64)


def test_svg_with_vgg_trains_and_generates():
    svg = SVG(tiny_config(encoder="vgg", channels=3))
    assert isinstance(svg.encoder, VGGEncoder) and isinstance(svg.decoder, VGGDecoder)
    frames = torch.rand(2, 5, 3, 64, 64)
    loss = SVGLoss(svg)(frames)
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for p in svg.encoder.parameters()] + [p.grad for p in svg.decoder.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    out = svg.generate(frames[:, :2], n_future=3, n_samples=2)
    assert out.shape == (2, 2, 3, 3, 64, 64)


@pytest.mark.parametrize(
    "name,expected",
    [
        ("kth", dict(encoder="vgg", channels=1, z_dim=24, g_dim=128, rnn_size=256, beta=1e-6,
                     n_past=10, n_future=10, posterior_layers=1, prior_layers=1,
                     predictor_layers=2)),
        ("bair", dict(encoder="vgg", channels=3, z_dim=64, g_dim=128, rnn_size=256, beta=1e-4,
                      n_past=2, n_future=10, posterior_layers=1, prior_layers=1,
                      predictor_layers=2)),
    ],
)  # fmt: skip
def test_paper_presets(name, expected):
    model, train = get_preset(name).build()
    for key, value in expected.items():
        assert getattr(model, key) == value, key
    assert train.dataset == name and train.batch_size == 100 and train.seed == 1
    assert train.lr == {"kth": 0.0008, "bair": 0.002}[name]
