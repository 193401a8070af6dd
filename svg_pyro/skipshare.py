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
        return F.conv_transpose2d(
            x, weight, bias, conv.stride, conv.padding, conv.output_padding, 1, conv.dilation
        )
    return F.conv2d(x, weight, bias, conv.stride, conv.padding, conv.dilation, 1)


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
        s = skip[:, unique].reshape(b * len(unique), *skip.shape[2:])
        y_s = _conv(conv, s, w_s, None)
        y_s = y_s.reshape(b, len(unique), *y_s.shape[1:])
        y = y.reshape(b, length, *y.shape[1:])
        # each run of frames sharing a skip frame adds that frame's term by broadcasting
        parts = [y[:, lo:hi] + y_s[:, j : j + 1] for j, lo, hi in runs]
        return torch.cat(parts, 1).reshape(b * length, *y.shape[2:])

    x = _run(decoder, chains, flat_g, add_skip)
    return x.reshape(b, length, *x.shape[1:])


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
