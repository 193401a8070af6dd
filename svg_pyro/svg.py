"""``SVG``: the module that holds every network and exposes the Pyro model, guide and sampler."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from svg_pyro.config import SVGConfig
from svg_pyro.guides import Posterior
from svg_pyro.guides import guide as svg_guide
from svg_pyro.models import build_prior
from svg_pyro.models import model as svg_model
from svg_pyro.nets import (
    ConvPredictor,
    DCGANDecoder,
    DCGANEncoder,
    DCGANMapDecoder,
    DCGANMapEncoder,
    PredictorLSTM,
    VGGDecoder,
    VGGEncoder,
    init_weights,
)
from svg_pyro.skipshare import decode_shared_skips, decode_with_skip_terms, skip_terms


def build_frame_nets(config: SVGConfig) -> tuple[nn.Module, nn.Module]:
    """The encoder/decoder pair that ``config.encoder`` (and ``config.rnn``) name."""
    if config.rnn == "conv":
        args = (config.g_dim, config.channels, config.nf, config.feature_size)
        return DCGANMapEncoder(*args), DCGANMapDecoder(*args)
    if config.encoder == "dcgan":
        return (
            DCGANEncoder(config.g_dim, config.channels, config.nf),
            DCGANDecoder(config.g_dim, config.channels, config.nf),
        )
    if config.encoder == "vgg":
        return (
            VGGEncoder(config.g_dim, config.channels, config.nf),
            VGGDecoder(config.g_dim, config.channels, config.nf),
        )
    raise ValueError(f"unknown encoder {config.encoder!r}")


class SVG(nn.Module):
    """Stochastic Video Generation: networks, Pyro ``model``/``guide`` and ``generate``.

    ``model(frames)`` and ``guide(frames)`` take ``frames [B, T, C, H, W]`` in [0, 1] and have
    the sites ``z_1..z_{T-1}`` (latent, absent when ``config.prior == "none"``) and
    ``x_1..x_{T-1}`` (observed). Train them with :class:`svg_pyro.elbo.SVGLoss`.

    ``share_skips`` (default ``True``): decode each distinct skip frame's share of the decoder
    once (:mod:`svg_pyro.skipshare`); the same function, less work. Set it to ``False`` on an
    instance to run the decoder plainly (the benchmark does, to measure the lever).
    """

    share_skips = True

    def __init__(self, config: SVGConfig):
        super().__init__()
        self.config = config
        latent = config.prior != "none"
        self.encoder, self.decoder = build_frame_nets(config)
        predictor = ConvPredictor if config.rnn == "conv" else PredictorLSTM
        self.predictor = predictor(
            config.g_dim + (config.z_dim if latent else 0),
            config.g_dim,
            config.rnn_size,
            config.predictor_layers,
        )
        self.posterior = Posterior(config) if latent else None
        for net in (self.encoder, self.decoder, self.predictor, self.posterior):
            if net is not None:
                net.apply(init_weights)
        # Built last so a user's prior sees (and may re-initialise) only its own weights.
        self.prior = build_prior(config) if latent else None
        self._encoding_cache: dict | None = None

    # -- the Pyro program -------------------------------------------------------------------
    def model(self, frames: torch.Tensor) -> torch.Tensor:
        """The generative model; see :func:`svg_pyro.models.model`."""
        return svg_model(self, frames)

    def guide(self, frames: torch.Tensor) -> None:
        """The inference network as a guide; see :func:`svg_pyro.guides.guide`."""
        return svg_guide(self, frames)

    # -- shared pieces ----------------------------------------------------------------------
    def check_frames(self, frames: torch.Tensor, check_values: bool = False) -> None:
        """Raise ``ValueError`` unless ``frames`` is float ``[B, T>=2, C, 64, 64]``.

        ``check_values`` also checks that values lie in [0, 1] (this reads the tensor back to
        the host, so the training loop leaves it off).
        """
        c = self.config
        if not torch.is_tensor(frames):
            raise ValueError(f"frames must be a torch.Tensor, got {type(frames).__name__}")
        if not frames.is_floating_point():
            raise ValueError(
                f"frames must be a float tensor with values in [0, 1], got {frames.dtype}"
            )
        expected = f"[batch, time, {c.channels}, {c.image_size}, {c.image_size}]"
        if frames.dim() != 5 or tuple(frames.shape[2:]) != (c.channels, c.image_size, c.image_size):
            raise ValueError(f"frames must have shape {expected}, got {list(frames.shape)}")
        if frames.shape[1] < 2:
            raise ValueError(f"frames need at least 2 time steps, got {frames.shape[1]}")
        if check_values and frames.numel() and (frames.min() < 0 or frames.max() > 1):
            raise ValueError(
                f"frame values must lie in [0, 1], got [{frames.min().item():.3g}, "
                f"{frames.max().item():.3g}]"
            )

    @contextlib.contextmanager
    def shared_encoding(self) -> Iterator[None]:
        """Within this block, :meth:`encode` runs the encoder once per frames tensor.

        The model and the guide both need ``Enc(x_t)``; one loss evaluation wraps them in this
        block so that every frame is encoded once per step, not twice.
        """
        outer, self._encoding_cache = self._encoding_cache, {}
        try:
            yield
        finally:
            self._encoding_cache = outer

    def encode(self, frames: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``frames [B, T, C, H, W]`` -> ``h [B, T, g_dim]`` and skip maps ``[B, T, c, h, w]``.

        With ``rnn="conv"``, ``h`` is a map ``[B, T, g_dim, s, s]``.
        """
        cache = self._encoding_cache
        if cache is not None and cache.get("frames") is frames:
            return cache["out"]
        b, t = frames.shape[:2]
        h, skips = self.encoder(frames.reshape(b * t, *frames.shape[2:]))
        out = (h.reshape(b, t, *h.shape[1:]), [s.reshape(b, t, *s.shape[1:]) for s in skips])
        if cache is not None:
            cache.update(frames=frames, out=out)
        return out

    def skip_index(self, t: int, n_past: int | None = None) -> int:
        """Which frame's skip maps the decoder uses when it predicts frame ``t`` (>= 1)."""
        n_past = self.config.n_past if n_past is None else n_past
        source = self.config.skip_source
        if source == "previous":
            return t - 1
        last = n_past - 1 if source == "last_context" else max(n_past - 2, 0)
        return min(t - 1, last)

    def decode(
        self, g: torch.Tensor, skips: list[torch.Tensor], first_target: int = 1
    ) -> torch.Tensor:
        """Teacher-forced decoding of ``g [B, L, g_dim]`` for frames ``first_target..+L-1``.

        ``skips`` are the encoder's maps of all frames (``[B, T, ...]``, as from :meth:`encode`);
        each predicted frame takes those of the frame :meth:`skip_index` names. Returns the means
        ``[B, L, C, H, W]``; the decoder runs once over all L frames, and with
        :attr:`share_skips` each distinct skip frame's share of it once (:mod:`svg_pyro.skipshare`).
        """
        b, length = g.shape[:2]
        idx = [self.skip_index(first_target + i) for i in range(length)]
        if self.share_skips:
            return decode_shared_skips(self.decoder, g, skips, idx)
        chosen = [s[:, idx].reshape(b * length, *s.shape[2:]) for s in skips]
        x = self.decoder(g.reshape(b * length, *g.shape[2:]), chosen)
        return x.reshape(b, length, *x.shape[1:])

    # -- sampling ---------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, context: torch.Tensor, n_future: int, n_samples: int = 1) -> torch.Tensor:
        """Sample futures of ``context [B, P, C, H, W]`` -> ``[n_samples, B, n_future, C, H, W]``.

        The paper's scheme: during the context, ``z_t`` comes from the posterior (the prior LSTM
        is still run to advance its state) and ground-truth frames are fed back; after it,
        ``z_t`` comes from the prior and each generated frame is encoded and fed back. All
        samples run as one batch of ``n_samples * B`` sequences. BatchNorm uses the module's
        mode: call ``.eval()`` for running statistics, or leave it in training mode to use batch
        statistics as the original release does.
        """
        if context.dim() != 5 or context.shape[1] < 1:
            raise ValueError(
                f"context must be [batch, time>=1, C, H, W], got {list(context.shape)}"
            )
        if n_future < 0 or n_samples < 1:
            raise ValueError(f"need n_future >= 0 and n_samples >= 1, got {n_future}, {n_samples}")
        self.check_frames(torch.cat([context, context[:, -1:]], 1), check_values=True)
        b, n_past = context.shape[:2]
        k = n_samples
        h, skips = self.encode(context)

        def tile(x: torch.Tensor) -> torch.Tensor:  # [B, ...] -> [K*B, ...], sample-major
            return x.unsqueeze(0).expand(k, *x.shape).reshape(k * x.shape[0], *x.shape[1:])

        skip_frame = self.skip_index(n_past, n_past)
        terms = None
        if self.share_skips and self.config.skip_source != "previous":  # same skips throughout
            terms = skip_terms(self.decoder, [s[:, skip_frame] for s in skips])
        h, skips = tile(h), [tile(s) for s in skips]
        prior_state = pred_state = None
        if n_past > 1:  # the context steps t = 1..P-1, all inputs known: one call each
            if self.prior is not None:
                post_steps, _ = self.posterior(h[:, 1:])
                _, prior_state = self.prior(h[:, :-1])
                z = torch.stack([d.rsample() for d in post_steps], 1).to(h.dtype)
                inp = torch.cat([h[:, :-1], z], 2)
            else:
                inp = h[:, :-1]
            _, pred_state = self.predictor(inp, pred_state)

        h_prev = h[:, -1:]
        skip = [s[:, skip_frame] for s in skips]
        out = []
        for t in range(n_past, n_past + n_future):
            if self.prior is not None:
                prior_steps, prior_state = self.prior(h_prev, prior_state)
                inp = torch.cat([h_prev, prior_steps[0].sample()[:, None].to(h.dtype)], 2)
            else:
                inp = h_prev
            g, pred_state = self.predictor(inp, pred_state)
            if terms is not None:
                x = decode_with_skip_terms(self.decoder, g[:, 0], terms)
            else:
                x = self.decoder(g[:, 0], skip)
            out.append(x)
            if t + 1 < n_past + n_future:
                h_new, skips_new = self.encoder(x)
                h_prev = h_new[:, None]
                if self.config.skip_source == "previous":
                    skip = skips_new
        if not out:
            return context.new_zeros(k, b, 0, *context.shape[2:])
        return torch.stack(out, 1).reshape(k, b, n_future, *context.shape[2:])
