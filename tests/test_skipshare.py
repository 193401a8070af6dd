"""Shared-skip decoding: the same function as the plain decoder call, with less work."""

import copy

import pyro
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from svg_pyro import SVG, SVGConfig, SVGLoss
from svg_pyro.bench import plain_skip_decoding
from svg_pyro.nets import (
    DCGANDecoder,
    DCGANEncoder,
    DCGANMapDecoder,
    DCGANMapEncoder,
    VGGDecoder,
    VGGEncoder,
)
from svg_pyro.skipshare import (
    FewOutConvTranspose,
    conv_transpose_k4s2_subpixel,
    decode_shared_skips,
    decode_with_skip_terms,
    skip_terms,
    supports,
)

NETS = {
    "dcgan": (DCGANEncoder, DCGANDecoder, (8, 1, 4)),
    "vgg": (VGGEncoder, VGGDecoder, (8, 3, 4)),
    "dcgan-map": (DCGANMapEncoder, DCGANMapDecoder, (8, 1, 4, 8)),
}


def _encoded(name, batch=3, steps=6, channels_last=False):
    enc_cls, dec_cls, args = NETS[name]
    torch.manual_seed(0)
    enc, dec = enc_cls(*args), dec_cls(*args)
    frames = torch.rand(batch * steps, args[1], 64, 64)
    if channels_last:  # as TrainConfig(channels_last=True) prepares the networks
        enc, dec = (m.to(memory_format=torch.channels_last) for m in (enc, dec))
    h, skips = enc(frames)
    h = h.reshape(batch, steps, *h.shape[1:]).detach()
    skips = [s.reshape(batch, steps, *s.shape[1:]).detach().requires_grad_() for s in skips]
    return dec, h, skips


def _reference(dec, g, skips, index):
    b, n = g.shape[:2]
    chosen = [s[:, index].reshape(b * n, *s.shape[2:]) for s in skips]
    x = dec(g.reshape(b * n, *g.shape[2:]), chosen)
    return x.reshape(b, n, *x.shape[1:])


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("name", sorted(NETS))
@pytest.mark.parametrize(
    "index", [[0, 1, 2, 2, 2], [1, 1, 1, 1, 1], [0, 1, 2, 3, 4], [0, 2, 2, 3, 3]]
)
def test_same_values_and_gradients_as_the_plain_decoder(name, index, channels_last):
    dec, h, skips = _encoded(name, channels_last=channels_last)
    assert supports(dec)
    g = h[:, 1:].clone().requires_grad_()
    inputs = [g, *skips, *dec.parameters()]
    # the reference: the plain decoder in float64 (an fp32 plain decoder in channels_last is
    # itself up to 4e-5 * scale from it, so fp32 against fp32 would test rounding, not the math)
    dec64 = copy.deepcopy(dec).double()
    g64 = g.detach().double().requires_grad_()
    skips64 = [s.detach().double().requires_grad_() for s in skips]
    ref = _reference(dec64, g64, skips64, index)  # BatchNorm in training mode: batch statistics
    ref_grads = torch.autograd.grad(ref.square().sum(), [g64, *skips64, *dec64.parameters()])
    out = decode_shared_skips(dec, g, skips, index)
    grads = torch.autograd.grad(out.square().sum(), inputs)
    assert out.shape == ref.shape
    assert torch.allclose(out.double(), ref, atol=1e-5)
    scale = torch.cat([r.flatten() for r in ref_grads]).norm()
    # fp32 rounding differs by CPU (oneDNN picks other kernels on AMD and Intel): allow twice the
    # plain fp32 decoder's own distance from float64, where that is more than the fixed bound
    plain = _reference(dec, g, skips, index)
    plain_grads = torch.autograd.grad(plain.square().sum(), inputs)
    rounding = max((a - p.double()).norm() / scale for a, p in zip(ref_grads, plain_grads))
    tol = max(3e-5 if channels_last else 1e-5, 2 * float(rounding))
    assert tol < 1e-4  # the reference itself stays close to float64
    for a, b in zip(ref_grads, grads):
        assert (a - b.double()).norm() <= tol * scale


def test_less_work_when_frames_share_skips(monkeypatch):
    # torch's kernel for the last layer on both sides (the sub-pixel one counts its zero taps)
    monkeypatch.setattr("svg_pyro.skipshare.FEW_OUT", 0)
    dec, h, skips = _encoded("dcgan")
    g = h[:, 1:]
    counts = []
    for fn in (_reference, decode_shared_skips):
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            fn(dec, g, skips, [0, 1, 1, 1, 1])
        counts.append(counter.get_total_flops())
    plain, shared = counts
    # every skip stage's convolution: half its input channels are skip channels, needed for
    # 2 distinct frames instead of 5 -> the stages cost (5 + 2) / 10 of before
    assert 0.65 * plain < shared < 0.75 * plain


def test_unsupported_decoder_falls_back_and_bad_index_is_refused():
    class Other(torch.nn.Module):
        def forward(self, g, skips):
            return g.sum(1, keepdim=True)[:, :, None, None] + skips[0].mean()

    other = Other()
    assert not supports(other)
    g, skips = torch.randn(2, 3, 4), [torch.randn(2, 4, 5)]
    out = decode_shared_skips(other, g, skips, [0, 0, 1])
    assert torch.allclose(out, _reference(other, g, skips, [0, 0, 1]))
    dec, h, skips = _encoded("dcgan")
    with pytest.raises(ValueError, match="index"):
        decode_shared_skips(dec, h[:, 1:], skips, [0, 1])


@pytest.mark.parametrize("skip_source", ["last_context", "original", "previous"])
def test_svg_loss_unchanged_with_shared_skip_decoding(skip_source):
    cfg = SVGConfig(nf=4, g_dim=8, z_dim=3, rnn_size=16, n_past=3, n_future=3)
    cfg.skip_source = skip_source
    svg = SVG(cfg)
    frames = torch.rand(2, 6, 1, 64, 64, generator=torch.Generator().manual_seed(1))
    losses = []
    for shared in (False, True):
        pyro.set_rng_seed(5)
        with torch.enable_grad() if shared else plain_skip_decoding(svg):
            losses.append(SVGLoss(svg)(frames))
    assert torch.allclose(losses[0], losses[1], rtol=1e-5)
    assert "share_skips" not in vars(svg) and svg.share_skips  # the override is gone


@pytest.mark.parametrize("name", sorted(NETS))
def test_skip_terms_reused_across_samples_equal_the_plain_decoder(name):
    dec, h, skips = _encoded(name, batch=3, steps=2)
    dec.eval()
    k = 4  # samples, sample-major as SVG.generate tiles them
    frame_skips = [s[:, 1].detach() for s in skips]  # [B, c, h, w]
    g = torch.randn(k * 3, *h.shape[2:])
    tiled = [s.repeat(k, *([1] * (s.dim() - 1))) for s in frame_skips]
    with torch.no_grad():
        ref = dec(g, tiled)
        out = decode_with_skip_terms(dec, g, skip_terms(dec, frame_skips))
    assert out.shape == ref.shape and torch.allclose(out, ref, atol=1e-5)


@pytest.mark.parametrize("rnn", ["fc", "conv"])
def test_generate_unchanged_with_shared_skips(rnn):
    cfg = SVGConfig(nf=4, g_dim=8, z_dim=3, rnn_size=16, n_past=3, n_future=3, rnn=rnn)
    if rnn == "conv":
        cfg.z_dim, cfg.rnn_size = 2, 8
    svg = SVG(cfg).eval()
    context = torch.rand(2, 3, 1, 64, 64, generator=torch.Generator().manual_seed(1))
    outs = []
    for shared in (False, True):
        torch.manual_seed(3)
        with torch.enable_grad() if shared else plain_skip_decoding(svg):
            outs.append(svg.generate(context, 4, n_samples=5))
    assert outs[0].shape == (5, 2, 4, 1, 64, 64)
    assert torch.allclose(outs[0], outs[1], atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("grad", [True, False])
def test_compiled_decoder_gives_the_same_values(grad):
    # TrainConfig(compile=True) compiles the decoder in place, and decode_shared_skips then
    # runs compiled; an earlier formulation was miscompiled in training mode under no_grad
    dec, h, skips = _encoded("dcgan", batch=4, steps=8)
    index = [0, 1, 2, 2, 2, 2, 2]
    g = h[:, 1:]
    ref = _reference(dec, g, skips, index)
    torch._dynamo.reset()
    dec.compile()
    with torch.set_grad_enabled(grad):
        out = decode_shared_skips(dec, g, skips, index)
    assert torch.allclose(out, ref, atol=1e-5), (out - ref).abs().max()


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_one_channel_transposed_conv_equals_the_convolution(channels_last, bias):
    # the decoder's last layer (8 -> 1 channels, 4x4, stride 2) runs as a sub-pixel 3x3
    # convolution in the forward pass; reference: torch's own transposed convolution
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    torch.manual_seed(0)
    conv = torch.nn.ConvTranspose2d(6, 1, 4, 2, 1, bias=bias).to(memory_format=fmt)
    x = torch.randn(5, 6, 16, 16).contiguous(memory_format=fmt).requires_grad_()
    params = [x, *conv.parameters()]
    ref = torch.nn.functional.conv_transpose2d(x, conv.weight, conv.bias, 2, 1)
    out = FewOutConvTranspose.apply(x, conv.weight, conv.bias)
    assert torch.allclose(conv_transpose_k4s2_subpixel(x, conv.weight, conv.bias), ref, atol=1e-5)
    g = torch.randn_like(ref)
    ref_grads = torch.autograd.grad(ref, params, g)
    grads = torch.autograd.grad(out, params, g)
    assert out.shape == ref.shape and torch.allclose(out, ref, atol=1e-5)
    for a, b in zip(ref_grads, grads):
        assert a.shape == b.shape and torch.allclose(a, b, atol=1e-5)
    assert grads[0].is_contiguous(memory_format=fmt)


def test_decoders_last_layer_takes_the_sub_pixel_path_only_where_it_applies():
    dec, h, skips = _encoded("dcgan", batch=2, steps=3)
    out = decode_shared_skips(dec, h[:, 1:].clone().requires_grad_(), skips, [0, 0])
    seen, stack = set(), [out.grad_fn]
    while stack:  # the autograd graph's node types
        node = stack.pop()
        if node is not None and node not in seen:
            seen.add(node)
            stack.extend(n for n, _ in node.next_functions)
    assert "FewOutConvTransposeBackward" in {type(n).__name__ for n in seen}
    with torch.autocast("cpu", dtype=torch.bfloat16):  # autocast: torch's own kernels
        out = decode_shared_skips(dec, h[:, 1:], skips, [0, 0])
    assert out.dtype == torch.bfloat16
