"""What the Pyro program runs, as functions of the networks and the configuration: check the
frames, encode them, pick each predicted frame's skip maps, and decode.

The model (:func:`svg_pyro.models.model`) and the guide (:func:`svg_pyro.guides.guide`) take
their networks as one object with the attributes of :class:`Networks`; :class:`svg_pyro.SVG` is
that object, and its ``encode``, ``decode`` and ``skip_index`` methods call these functions.
Nothing here knows about files, training loops or the ``SVG`` class itself.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import nn

from svg_pyro.config import SVGConfig
from svg_pyro.skipshare import decode_shared_skips


class Networks(Protocol):
    """The networks of one SVG and its configuration: what the model and the guide read.

    ``prior`` and ``posterior`` are ``None`` for the deterministic model. ``share_skips`` says
    whether :func:`decode` computes each distinct skip frame's share of the decoder once
    (:mod:`svg_pyro.skipshare`). ``encoding_cache``, when a dict, holds the last encoded frames
    (see :func:`encode`); ``register_with_pyro(*names)`` hands the named networks to Pyro's
    param store.
    """

    config: SVGConfig
    encoder: nn.Module
    decoder: nn.Module
    predictor: nn.Module
    prior: nn.Module | None
    posterior: nn.Module | None
    share_skips: bool
    encoding_cache: dict | None

    def register_with_pyro(self, *networks: str) -> None: ...


def check_frames(
    config: SVGConfig, frames: torch.Tensor, check_values: bool = False, min_frames: int = 2
) -> None:
    """Raise ``ValueError`` unless ``frames`` is float ``[B, T>=min_frames, C, 64, 64]``.

    ``check_values`` also checks that values lie in [0, 1] (this reads the tensor back to the
    host, so the training loop leaves it off).
    """
    c = config
    if not torch.is_tensor(frames):
        raise ValueError(f"frames must be a torch.Tensor, got {type(frames).__name__}")
    if not frames.is_floating_point():
        raise ValueError(f"frames must be a float tensor with values in [0, 1], got {frames.dtype}")
    expected = f"[batch, time, {c.channels}, {c.image_size}, {c.image_size}]"
    if frames.dim() != 5 or tuple(frames.shape[2:]) != (c.channels, c.image_size, c.image_size):
        raise ValueError(f"frames must have shape {expected}, got {list(frames.shape)}")
    if frames.shape[1] < min_frames:
        raise ValueError(f"frames need at least {min_frames} time steps, got {frames.shape[1]}")
    if check_values and frames.numel() and (frames.min() < 0 or frames.max() > 1):
        raise ValueError(
            f"frame values must lie in [0, 1], got [{frames.min().item():.3g}, "
            f"{frames.max().item():.3g}]"
        )


def skips_follow_frames(config: SVGConfig) -> bool:
    """Whether :func:`skip_index` moves on with every predicted frame (``skip_source=
    "previous"``: frame t-1's maps) rather than staying on one context frame after it."""
    return config.skip_source == "previous"


def skip_index(config: SVGConfig, t: int, n_past: int | None = None) -> int:
    """Which frame's skip maps the decoder uses when it predicts frame ``t`` (>= 1), after
    ``n_past`` context frames (default ``config.n_past``).

    The one rule, used by teacher-forced decoding (:func:`decode`) and by the frame loop of the
    forecast (:func:`svg_pyro.models.svg.context_carry`).
    """
    n_past = config.n_past if n_past is None else n_past
    if skips_follow_frames(config):
        return t - 1
    last = n_past - 1 if config.skip_source == "last_context" else max(n_past - 2, 0)
    return min(t - 1, last)


def _prefix_of(frames: torch.Tensor, held: torch.Tensor) -> bool:
    """Whether ``frames`` is the view ``held[:, :n]`` (same memory, same batch and strides)."""
    return (
        frames.data_ptr() == held.data_ptr()
        and frames.shape[0] == held.shape[0]
        and frames.shape[2:] == held.shape[2:]
        and frames.shape[1] <= held.shape[1]
        and frames.stride() == held.stride()
    )


def encode(nets: Networks, frames: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """``frames [B, T, C, H, W]`` -> ``h [B, T, g_dim]`` and skip maps ``[B, T, c, h, w]``.

    With ``rnn="conv"``, ``h`` is a map ``[B, T, g_dim, s, s]``. While ``nets.encoding_cache`` is
    a dict (one loss evaluation), the encoder runs once per frames tensor: a second call with the
    same tensor, or with its first frames ``frames[:, :n]``, reads the first call's result (so
    the model and the guide share one pass, and BatchNorm in training mode normalises that pass
    over all the frames the guide reads).
    """
    cache = nets.encoding_cache
    if cache is not None and "frames" in cache:
        held = cache["frames"]
        if held is frames:
            return cache["out"]
        if _prefix_of(frames, held):
            n = frames.shape[1]
            h, skips = cache["out"]
            return h[:, :n], [s[:, :n] for s in skips]
    b, t = frames.shape[:2]
    h, skips = nets.encoder(frames.reshape(b * t, *frames.shape[2:]))
    out = (h.reshape(b, t, *h.shape[1:]), [s.reshape(b, t, *s.shape[1:]) for s in skips])
    if cache is not None:
        cache.update(frames=frames, out=out)
    return out


def decode(
    nets: Networks,
    g: torch.Tensor,
    skips: list[torch.Tensor],
    first_target: int = 1,
    n_past: int | None = None,
) -> torch.Tensor:
    """Teacher-forced decoding of ``g [B, L, g_dim]`` for frames ``first_target..+L-1``.

    ``skips`` are the encoder's maps of all frames (``[B, T, ...]``, as from :func:`encode`);
    each predicted frame takes those of the frame :func:`skip_index` names (for ``n_past``
    context frames). Returns the means ``[B, L, C, H, W]``; the decoder runs once over all L
    frames, and with ``nets.share_skips`` each distinct skip frame's share of it once.
    """
    b, length = g.shape[:2]
    idx = [skip_index(nets.config, first_target + i, n_past) for i in range(length)]
    if nets.share_skips:
        return decode_shared_skips(nets.decoder, g, skips, idx)
    chosen = [s[:, idx].reshape(b * length, *s.shape[2:]) for s in skips]
    x = nets.decoder(g.reshape(b * length, *g.shape[2:]), chosen)
    return x.reshape(b, length, *x.shape[1:])
