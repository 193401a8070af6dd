"""Decoding that computes each distinct skip map's share of the decoder's work once.

Every decoder of this package (DCGAN-64, VGG-64 and the ConvLSTM variant's map decoder) runs
``head``, then for each skip stage ``chain(cat([up(x), skip]))`` where ``chain`` starts with a
convolution, and ends with ``out(cat([up(x), skips[0]]))``. A convolution is linear in its input
channels, so ``conv(cat([x, skip])) == conv_x(x) + conv_s(skip)`` with the weight split in two.

* Training (:func:`decode_shared_skips`): with the paper's ``skip_source="last_context"`` every
  predicted frame after the context takes the last context frame's skips, so ``conv_s(skip)``
  is needed once per distinct skip frame and sequence (5 for SM-MNIST's 5 + 10 frames), not once
  per predicted frame (14): about a fifth less work per step, forward and backward.
* Sampling (:func:`skip_terms` + :func:`decode_with_skip_terms`): ``K`` futures of a context all
  decode with the same skips at every step, so ``conv_s`` runs once per sequence for the whole
  rollout instead of once per sample and frame.

The skip terms are added in the maps' own memory order (NHWC under ``channels_last``), and a
last stage that upsamples to one channel (DCGAN's 8 -> 1, 4x4, stride 2) runs as a sub-pixel
convolution (:class:`FewOutConvTranspose`) on fp32 CPU tensors: oneDNN's kernel for one output
channel is slow.

Both give the same function as the plain ``decoder(g, chosen_skips)`` up to floating-point
rounding, BatchNorm in training mode included (the statistics see the same pre-normalisation
tensor). A decoder opts in with the class attribute ``skip_stages = True``; any other decoder is
called plainly. A decoder compiled in place (``decoder.compile()``, as ``TrainConfig(compile=
True)`` does) makes the training path run compiled too.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

CONVS = (nn.Conv2d, nn.ConvTranspose2d)


def _leaves(module: nn.Module) -> list[nn.Module]:
    """The modules a chain of (nested) ``nn.Sequential`` s applies, in order."""
    if isinstance(module, nn.Sequential):
        return [leaf for child in module for leaf in _leaves(child)]
    return [module]


def _stages(decoder: nn.Module) -> list[list[nn.Module]] | None:
    """Each skip stage (the blocks, then ``out``) as a flat chain starting with a convolution;
    ``None`` when ``decoder`` has not opted in or does not have that shape."""
    if not getattr(decoder, "skip_stages", False):
        return None
    chains = [_leaves(b) for b in decoder.blocks] + [_leaves(decoder.out)]
    for chain in chains:
        first = chain[0]
        if not isinstance(first, CONVS) or first.groups != 1:
            return None
        if isinstance(first, nn.Conv2d) and first.padding_mode != "zeros":
            return None
    return chains


def supports(decoder: nn.Module) -> bool:
    """Whether this module can split ``decoder``'s skip convolutions."""
    return _stages(decoder) is not None


def _conv(conv: nn.Module, x: torch.Tensor, weight: torch.Tensor, bias) -> torch.Tensor:
    if isinstance(conv, nn.ConvTranspose2d):
        if _few_out_fast_path(conv, x, weight):
            return FewOutConvTranspose.apply(x, weight, bias)
        return F.conv_transpose2d(
            x, weight, bias, conv.stride, conv.padding, conv.output_padding, 1, conv.dilation
        )
    return F.conv2d(x, weight, bias, conv.stride, conv.padding, conv.dilation, 1)


# -- the decoder's last layer: a transposed convolution to one (or few) channels -------------------
FEW_OUT = 1  # output channels up to which the sub-pixel formulation is used (measured: 1)


def _few_out_fast_path(conv: nn.Module, x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether :class:`FewOutConvTranspose` computes this transposed convolution: kernel 4,
    stride 2, padding 1 (DCGAN's upsampling), at most :data:`FEW_OUT` output channels, fp32 on
    the CPU, outside autocast and ``torch.compile`` (which get the plain kernel)."""
    return (
        weight.shape[1] <= FEW_OUT
        and tuple(weight.shape[2:]) == (4, 4)
        and tuple(conv.stride) == (2, 2)
        and tuple(conv.padding) == (1, 1)
        and tuple(conv.output_padding) == (0, 0)
        and tuple(conv.dilation) == (1, 1)
        and x.dim() == 4
        and x.device.type == "cpu"
        and x.dtype == weight.dtype == torch.float32
        and not torch.is_autocast_enabled("cpu")
        and not torch.compiler.is_compiling()
    )


# Output row 2p + a of a 4x4, stride-2, padding-1 transposed convolution sums input rows p + dy
# through kernel rows ky: (dy, ky) in ((0, 1), (-1, 3)) for a = 0 and ((0, 2), (1, 0)) for a = 1.
_TAPS = {0: {0: 1, -1: 3}, 1: {0: 2, 1: 0}}


def _subpixel_taps() -> torch.Tensor:
    """``[4, 3, 3]``: for output phase ``2a + b`` and input offset ``(dy, dx)``, the 4x4 kernel's
    tap ``4 ky + kx`` that joins them, or 16 (a zero) where none does."""
    idx = torch.full((4, 3, 3), 16, dtype=torch.long)
    for a, rows in _TAPS.items():
        for b, cols in _TAPS.items():
            for dy, ky in rows.items():
                for dx, kx in cols.items():
                    idx[2 * a + b, dy + 1, dx + 1] = 4 * ky + kx
    return idx


SUBPIXEL_TAPS = _subpixel_taps()


def conv_transpose_k4s2_subpixel(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """``conv_transpose2d(x, weight, bias, stride=2, padding=1)`` for a 4x4 kernel, computed as
    a 3x3 convolution to the four output phases and a pixel shuffle: ``x [N, C, H, W]``,
    ``weight [C, O, 4, 4]``, ``bias [O]`` or ``None`` -> ``[N, O, 2H, 2W]``.

    Same function up to fp32 rounding (the zero taps add exact zeros). oneDNN's transposed
    convolution to one channel runs at a few GFLOP/s on a CPU; this is about 1.7x faster.
    """
    c, o = weight.shape[:2]
    padded = torch.cat([weight.reshape(c, o, 16), weight.new_zeros(c, o, 1)], 2)
    k = padded[:, :, SUBPIXEL_TAPS.to(weight.device)]  # [C, O, 4, 3, 3]
    k = k.permute(1, 2, 0, 3, 4).reshape(4 * o, c, 3, 3)
    phase_bias = None if bias is None else bias.repeat_interleave(4)
    n, _, h, w = x.shape
    if not _is_nhwc(x):
        return F.pixel_shuffle(F.conv2d(x, k, phase_bias, 1, 1), 2)
    y = F.conv2d(x, k.contiguous(memory_format=torch.channels_last), phase_bias, 1, 1)
    # NHWC phases [n, h, w, (o, a, b)] -> [n, o, (h, a), (w, b)]: one copy (pixel_shuffle's
    # channels_last path is slower)
    y = y.permute(0, 2, 3, 1).reshape(n, h, w, o, 2, 2).permute(0, 3, 1, 4, 2, 5)
    return y.reshape(n, o, 2 * h, 2 * w)


class FewOutConvTranspose(torch.autograd.Function):
    """``conv_transpose2d(x, weight, bias, stride=2, padding=1)`` (4x4 kernel) with the forward
    of :func:`conv_transpose_k4s2_subpixel` and the backward of the convolution itself (aten's
    ``convolution_backward``, fast for these shapes). ``x [N, C, H, W]`` -> ``[N, O, 2H, 2W]``."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        """The sub-pixel forward; saves ``x`` and ``weight`` for the backward."""
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return conv_transpose_k4s2_subpixel(x, weight, bias).contiguous()

    @staticmethod
    def backward(ctx, grad):
        """Gradients of ``x``, ``weight`` and ``bias`` from aten's ``convolution_backward``."""
        x, weight = ctx.saved_tensors
        need = ctx.needs_input_grad
        gx, gw, gb = torch.ops.aten.convolution_backward(
            grad,
            x,
            weight,
            [weight.shape[1]] if ctx.has_bias else None,
            [2, 2],
            [1, 1],
            [1, 1],
            True,
            [0, 0],
            1,
            [need[0], need[1], ctx.has_bias and need[2]],
        )
        return gx, gw, gb


def _split_weight(conv: nn.Module, c_skip: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The weight's part for the decoder's own channels and for the last ``c_skip`` (skip)."""
    w = conv.weight
    if isinstance(conv, nn.ConvTranspose2d):  # [in, out, kh, kw]
        return w[:-c_skip], w[-c_skip:]
    return w[:, :-c_skip], w[:, -c_skip:]  # Conv2d: [out, in, kh, kw]


def _stage_skips(skips: list[torch.Tensor]) -> list[torch.Tensor]:
    """The encoder's skips (finest first) in the order the decoder's stages take them."""
    return list(reversed(skips[1:])) + [skips[0]]


def _run(
    decoder: nn.Module,
    chains: list[list[nn.Module]],
    g: torch.Tensor,
    add_skip: Callable[[int, torch.Tensor, nn.Module, torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """The decoder on ``g [N, ...]`` with each stage's skip half supplied by ``add_skip(stage,
    y, conv, w_skip)``, where ``y`` is the stage convolution of the decoder's own channels."""
    if g.dim() == 2:
        g = g.reshape(g.shape[0], decoder.g_dim, 1, 1)
    x = decoder.head(g)
    up = getattr(decoder, "up", None)
    for i, chain in enumerate(chains):
        if up is not None:
            x = up(x)
        conv = chain[0]
        c_skip = conv.in_channels - x.shape[1]
        w_x, w_s = _split_weight(conv, c_skip)
        x = add_skip(i, _conv(conv, x, w_x, conv.bias), conv, w_s)
        for module in chain[1:]:
            x = module(x)
    return x


_compiled: dict[str, object] = {}


def decode_shared_skips(
    decoder: nn.Module, g: torch.Tensor, skips: list[torch.Tensor], index: list[int]
) -> torch.Tensor:
    """``decoder`` on ``g [B, L, ...]`` with frame ``i``'s skips taken from frame ``index[i]``.

    ``skips`` are the encoder's maps of all frames, each ``[B, T, c, h, w]``. Returns the frame
    means ``[B, L, C, H, W]``, the same as running the decoder on ``[s[:, index] for s in
    skips]``, but each distinct skip frame's convolutions run once per sequence.
    """
    if len(index) != g.shape[1]:
        raise ValueError(f"index has {len(index)} entries for {g.shape[1]} frames")
    if getattr(decoder, "_compiled_call_impl", None) is not None:  # decoder.compile() was called
        if "fn" not in _compiled:
            _compiled["fn"] = torch.compile(_decode_shared_skips)
        return _compiled["fn"](decoder, g, skips, index)
    return _decode_shared_skips(decoder, g, skips, index)


def _decode_shared_skips(
    decoder: nn.Module, g: torch.Tensor, skips: list[torch.Tensor], index: list[int]
) -> torch.Tensor:
    b, length = g.shape[:2]
    chains = _stages(decoder)
    unique = sorted(set(index))
    flat_g = g.reshape(b * length, *g.shape[2:])
    if chains is None or len(unique) == length:  # nothing to share, or a decoder we can't split
        chosen = [s[:, index].reshape(b * length, *s.shape[2:]) for s in skips]
        x = decoder(flat_g, chosen)
        return x.reshape(b, length, *x.shape[1:])
    runs = _runs(index, unique)
    stage_skips = _stage_skips(skips)

    def add_skip(i: int, y: torch.Tensor, conv: nn.Module, w_s: torch.Tensor) -> torch.Tensor:
        skip = stage_skips[i]
        s = _pick_frames(skip, unique)
        y_s = _conv(conv, s, w_s, None)
        # every run of frames sharing a skip frame gets that frame's term: one broadcast add of
        # the terms laid out along time, in the maps' own memory order (NCHW or NHWC)
        nhwc = _is_nhwc(y)
        y5, s5 = _by_frame(y, b, nhwc), _by_frame(y_s, b, nhwc)
        terms = torch.cat([_run_term(s5, j, hi - lo) for j, lo, hi in _merged(runs)], 1)
        return _from_frames(y5 + terms, nhwc)

    x = _run(decoder, chains, flat_g, add_skip)
    return x.reshape(b, length, *x.shape[1:])


def _is_nhwc(x: torch.Tensor) -> bool:
    """Whether the 4-D map ``x`` is stored channels_last (and not also plainly contiguous)."""
    return (
        x.dim() == 4
        and not x.is_contiguous()
        and x.is_contiguous(memory_format=torch.channels_last)
    )


def _by_frame(x: torch.Tensor, b: int, nhwc: bool) -> torch.Tensor:
    """Maps ``[b * n, C, H, W]`` -> ``[b, n, ...]`` in memory order (``[b, n, H, W, C]`` for NHWC
    maps), a view for maps stored densely in that order."""
    if nhwc:
        x = x.permute(0, 2, 3, 1)
    return x.reshape(b, -1, *x.shape[1:])


def _from_frames(x: torch.Tensor, nhwc: bool) -> torch.Tensor:
    """The inverse of :func:`_by_frame`: ``[b, n, ...]`` -> ``[b * n, C, H, W]``."""
    x = x.reshape(-1, *x.shape[2:])
    return x.permute(0, 3, 1, 2) if nhwc else x


def _pick_frames(skip: torch.Tensor, frames: list[int]) -> torch.Tensor:
    """``skip [B, T, C, H, W]`` at the time steps ``frames`` -> ``[B * len(frames), C, H, W]``,
    keeping the maps' memory order (its gradient then has it too)."""
    b = skip.shape[0]
    flat = skip.reshape(-1, *skip.shape[2:])
    nhwc = _is_nhwc(flat)
    x5 = _by_frame(flat, b, nhwc)
    lo, hi = frames[0], frames[-1] + 1
    picked = x5[:, lo:hi] if frames == list(range(lo, hi)) else x5[:, frames]
    return _from_frames(picked.contiguous(), nhwc)


def _run_term(s5: torch.Tensor, j: int | tuple[int, int], n: int) -> torch.Tensor:
    """Terms of skip frame ``j`` for a run of ``n`` frames, ``[b, n, ...]`` (a broadcast view),
    or, for ``j = (lo, hi)``, of skip frames ``lo..hi-1`` for one frame each."""
    if isinstance(j, tuple):
        return s5[:, j[0] : j[1]]
    return s5[:, j : j + 1].expand(-1, n, *s5.shape[2:])


def _merged(runs: list[tuple[int, int, int]]) -> list[tuple[int | tuple[int, int], int, int]]:
    """``runs`` with consecutive one-frame runs of consecutive skip frames merged into
    ``((first, end), lo, hi)`` entries (fewer, larger copies)."""
    out: list = []
    for j, lo, hi in runs:
        prev = out[-1] if out else None
        if hi - lo == 1 and prev is not None and prev[2] == lo:
            pj = prev[0]
            first, end = pj if isinstance(pj, tuple) else (pj, pj + 1)
            if prev[2] - prev[1] == end - first and end == j:
                out[-1] = ((first, j + 1), prev[1], hi)
                continue
        out.append((j, lo, hi))
    return out


def _runs(index: list[int], unique: list[int]) -> list[tuple[int, int, int]]:
    """``(position in unique, first frame, end frame)`` of each run of equal entries of
    ``index``. (Indexing with ``index_select`` instead was miscompiled by Inductor, torch 2.14
    CPU, under ``no_grad`` in training mode.)"""
    runs, lo = [], 0
    for hi in range(1, len(index) + 1):
        if hi == len(index) or index[hi] != index[lo]:
            runs.append((unique.index(index[lo]), lo, hi))
            lo = hi
    return runs


def skip_terms(decoder: nn.Module, skips: list[torch.Tensor]) -> list[torch.Tensor] | None:
    """Each stage's skip half ``conv_s(skip)`` for one frame's ``skips [B, c, h, w]``, to reuse
    across samples and frames with :func:`decode_with_skip_terms`; ``None`` when ``decoder``
    can't be split."""
    chains = _stages(decoder)
    if chains is None:
        return None
    terms = []
    for chain, skip in zip(chains, _stage_skips(skips)):
        conv = chain[0]
        terms.append(_conv(conv, skip, _split_weight(conv, skip.shape[1])[1], None))
    return terms


def decode_with_skip_terms(
    decoder: nn.Module, g: torch.Tensor, terms: list[torch.Tensor]
) -> torch.Tensor:
    """``decoder`` on ``g [K*B, ...]`` (sample-major) whose skips are, for every sample, the
    ones ``terms`` (from :func:`skip_terms`, ``[B, ...]`` each) were computed from."""
    n = terms[0].shape[0]

    def add_skip(i: int, y: torch.Tensor, conv: nn.Module, w_s: torch.Tensor) -> torch.Tensor:
        return (y.reshape(-1, n, *y.shape[1:]) + terms[i]).reshape(y.shape)

    return _run(decoder, _stages(decoder), g, add_skip)
