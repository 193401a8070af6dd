"""``SVG``: the module that holds every network and exposes the Pyro model, guide and sampler."""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from collections.abc import Iterator
from typing import Any

import pyro
import torch
from pyro.params import param_with_module_name
from torch import nn

from svg_pyro.config import SVGConfig
from svg_pyro.guides import Posterior, posterior_latents
from svg_pyro.guides import guide as svg_guide
from svg_pyro.models import build_prior, networks
from svg_pyro.models import model as svg_model
from svg_pyro.models.svg import context_carry, rollout
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


def batchnorms(svg: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """Every BatchNorm layer of ``svg`` (encoder and decoder): the one list of them."""
    return [m for m in svg.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


TRUE_FRAMES = "true frames"
FORECASTS = "forecasts"


@dataclasses.dataclass(frozen=True)
class BatchNormStatistics:
    """Which frames a model's BatchNorm running statistics were estimated on
    (``svg.bn_statistics``).

    ``frames``: :data:`TRUE_FRAMES` (what training leaves) or :data:`FORECASTS` (the model's own,
    by :func:`recalibrate`); ``calibration``: for forecasts, how they were drawn, as a checkpoint's
    ``meta["batchnorm"]`` records it (``statistics: "rollout"``, ``forecasts``, ``sequences``,
    ``samples``, ``n_past``, ``n_future``, ``seed``).
    """

    frames: str = TRUE_FRAMES
    calibration: dict[str, Any] | None = None

    @property
    def of_forecasts(self) -> bool:
        return self.frames == FORECASTS

    @classmethod
    def of_checkpoint(cls, checkpoint: dict[str, Any]) -> BatchNormStatistics:
        """The statistics a checkpoint's weights hold, from its ``meta`` (written by
        ``svg-pyro recalibrate-bn``); those of true frames when it records none."""
        record = (checkpoint.get("meta") or {}).get("batchnorm") or {}
        if record.get("statistics") == "rollout":
            return cls(FORECASTS, dict(record))
        return cls()


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
    """Stochastic Video Generation: the networks of one model, with its Pyro ``model`` and
    ``guide`` and the sampler ``generate``.

    The module holds the networks (``encoder``, ``decoder``, ``predictor``, ``prior``,
    ``posterior``) and ``config``, which says what the model *is*; the Pyro program they run
    lives in :mod:`svg_pyro.models` and :mod:`svg_pyro.guides`, as functions of these networks,
    and the methods here bind them. How a model is trained (teacher-forced or free-running
    frames, weight averaging, warm-up) is the training's (:class:`svg_pyro.config.TrainConfig`,
    :class:`svg_pyro.elbo.SVGLoss`): ``svg.model`` is always the paper's model.

    ``model(frames, n_future=0)`` and ``guide(frames, n_future=0)`` take the observed ``frames
    [B, P, C, H, W]`` in [0, 1]. Their sites are ``z_1..z_{P-1}`` (latent, absent when
    ``config.prior == "none"``) and ``x_1..x_{P-1}`` (observed); with ``n_future = F`` the model
    goes on for frames ``P..P+F-1`` with ``z_t`` from the prior, ``x_hat_t`` (deterministic, the
    decoded mean that is fed back) and ``x_t`` (not observed). Train them with Pyro's ``SVI`` and
    optimisers, or with :class:`svg_pyro.elbo.SVGLoss` and a torch optimiser (what the training
    CLI does); forecast with ``Predictive(svg.model, guide=svg.guide, ...)`` or :meth:`generate`.

    ``share_skips`` (default ``True``): decode each distinct skip frame's share of the decoder
    once (:mod:`svg_pyro.skipshare`); the same function, less work. Set it to ``False`` on an
    instance to run the decoder plainly (the benchmark does, to measure the lever).
    """

    share_skips = True
    #: Which frames the BatchNorm running statistics were estimated on: set where a model is
    #: loaded (:func:`svg_pyro.rollout_bn.record_statistics`) and by
    #: :func:`svg_pyro.rollout_bn.recalibrate`; a new model's are those of true frames.
    bn_statistics: BatchNormStatistics = BatchNormStatistics()

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
        self.encoding_cache: dict | None = None
        self._registering = True
        self._warned_layout = False

    # -- the Pyro program -------------------------------------------------------------------
    def model(self, frames: torch.Tensor, n_future: int = 0) -> torch.Tensor:
        """The generative model; see :func:`svg_pyro.models.model`."""
        return svg_model(self, frames, n_future)

    def guide(self, frames: torch.Tensor, n_future: int = 0) -> None:
        """The inference network as a guide; see :func:`svg_pyro.guides.guide`."""
        return svg_guide(self, frames, n_future)

    # -- Pyro's param store -----------------------------------------------------------------
    pyro_name = "svg"  # networks are registered as "svg.encoder", "svg.prior", ...

    def register_with_pyro(self, *networks: str) -> None:
        """``pyro.module`` each named network (``"encoder"``, ``"prior"``, ...), as Pyro's
        examples do, so that Pyro's ``SVI`` and ``pyro.optim`` find and train its parameters.

        The model and the guide call this on every run, because ``SVI`` collects the parameters
        to step from the ``param`` sites of each run's traces: registering once would train
        nothing after the first step. It costs one ``pyro.param`` message per parameter tensor,
        about 3 ms per model + guide run at the paper's sizes (70 tensors) on a CPU core, which
        is why :class:`SVGLoss` turns it off (:meth:`param_registration`): its torch optimiser
        holds ``svg.parameters()`` itself, so the training CLI pays nothing for it.

        The module is the source of truth: when the param store holds, under a network's names,
        tensors other than that network's (left by another ``SVG``, or by
        ``pyro.get_param_store().load``), they are replaced by the network's parameters, so
        ``SVI`` never steps a tensor the networks do not use. (Checked on each network's first
        parameter, which is cheap; to restore from a saved param store instead, call
        ``pyro.module(name, net, update_module_params=True)`` first, or use
        :meth:`load_state_dict`.)
        """
        if not self._registering:
            return
        store = pyro.get_param_store()
        held = dict(store.named_parameters())
        for name in networks:
            net = getattr(self, name)
            if net is None:
                continue
            prefix = f"{self.pyro_name}.{name}"
            first = next(iter(net.named_parameters()), None)
            if first is not None:
                key = param_with_module_name(prefix, first[0])
                if held.get(key) is not first[1]:  # new to the store, or someone else's
                    self._claim(store, held, prefix, net)
            pyro.module(prefix, net)

    def _claim(self, store, held: dict, prefix: str, net: nn.Module) -> None:
        """Point the store's entries of ``net`` at its own parameters (new entries are left to
        ``pyro.module``)."""
        for param_name, p in net.named_parameters():
            key = param_with_module_name(prefix, param_name)
            if not p.requires_grad or held.get(key) is p:
                continue
            if not p.is_contiguous():  # the store would keep a contiguous copy
                self._warn_layout()
            elif key in held:
                store[key] = p

    def _warn_layout(self) -> None:
        if not self._warned_layout:
            self._warned_layout = True
            warnings.warn(
                "SVG has non-contiguous (channels_last) weights: Pyro's param store keeps "
                "contiguous copies of them, which Pyro's optimisers would step instead of the "
                "weights; train such a model with SVGLoss and a torch optimiser",
                stacklevel=3,
            )

    @contextlib.contextmanager
    def param_registration(self, enabled: bool) -> Iterator[None]:
        """Within this block the model and guide register their networks with Pyro's param
        store (``enabled``) or not (for a caller whose optimiser holds the parameters itself,
        as :class:`svg_pyro.elbo.SVGLoss` does)."""
        outer, self._registering = self._registering, enabled
        try:
            yield
        finally:
            self._registering = outer

    # -- shared pieces ----------------------------------------------------------------------
    def check_frames(
        self, frames: torch.Tensor, check_values: bool = False, min_frames: int = 2
    ) -> None:
        """Raise ``ValueError`` unless ``frames`` is float ``[B, T>=min_frames, C, 64, 64]``
        (:func:`svg_pyro.models.networks.check_frames`)."""
        networks.check_frames(self.config, frames, check_values, min_frames)

    @contextlib.contextmanager
    def shared_encoding(self) -> Iterator[None]:
        """Within this block, :meth:`encode` runs the encoder once per frames tensor.

        The model and the guide both need ``Enc(x_t)``; one loss evaluation wraps them in this
        block so that every frame is encoded once per step, not twice.
        """
        outer, self.encoding_cache = self.encoding_cache, {}
        try:
            yield
        finally:
            self.encoding_cache = outer

    def encode(self, frames: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``frames [B, T, C, H, W]`` -> ``h [B, T, g_dim]`` and skip maps ``[B, T, c, h, w]``
        (:func:`svg_pyro.models.networks.encode`; with ``rnn="conv"``, ``h`` is a map)."""
        return networks.encode(self, frames)

    @property
    def skips_follow_frames(self) -> bool:
        """Whether the skip frame moves on with every predicted frame (``skip_source=
        "previous"``) rather than staying on one context frame after it."""
        return networks.skips_follow_frames(self.config)

    def skip_index(self, t: int, n_past: int | None = None) -> int:
        """Which frame's skip maps the decoder uses when it predicts frame ``t`` (>= 1), after
        ``n_past`` context frames (:func:`svg_pyro.models.networks.skip_index`)."""
        return networks.skip_index(self.config, t, n_past)

    def decode(
        self,
        g: torch.Tensor,
        skips: list[torch.Tensor],
        first_target: int = 1,
        n_past: int | None = None,
    ) -> torch.Tensor:
        """Teacher-forced decoding of ``g [B, L, g_dim]`` for frames ``first_target..+L-1`` with
        the skip maps ``[B, T, ...]`` of all frames -> means ``[B, L, C, H, W]``
        (:func:`svg_pyro.models.networks.decode`)."""
        return networks.decode(self, g, skips, first_target, n_past)

    # -- sampling ---------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, context: torch.Tensor, n_future: int, n_samples: int = 1) -> torch.Tensor:
        """Sample futures of ``context [B, P, C, H, W]`` -> ``[n_samples, B, n_future, C, H, W]``.

        The paper's scheme, and the same Pyro program as ``Predictive(svg.model, guide=
        svg.guide)(context, n_future)``: during the context ``z_t`` comes from the posterior
        (the guide's sites; the prior LSTM is still run to advance its state) and ground-truth
        frames are fed back; after it the model's frame loop (:func:`svg_pyro.models.svg.
        frame_step`) draws ``z_t`` from the prior and feeds each decoded mean back. It differs
        from ``Predictive`` only in cost: all samples run as one batch of ``n_samples * B``
        sequences (``z_t`` and ``x_hat_t`` sites, batch ``[K*B]``, sample-major, so handlers
        such as ``poutine.condition(svg.generate, data={"z_7": z})`` work here too), the context
        frames are not decoded, and no pixel noise is drawn (no ``x_t`` sites). BatchNorm uses
        the module's mode: call ``.eval()`` for running statistics, or leave it in training mode
        to use batch statistics as the original release does.
        """
        if context.dim() != 5 or context.shape[1] < 1:
            raise ValueError(
                f"context must be [batch, time>=1, C, H, W], got {list(context.shape)}"
            )
        if n_future < 0 or n_samples < 1:
            raise ValueError(f"need n_future >= 0 and n_samples >= 1, got {n_future}, {n_samples}")
        self.check_frames(context, check_values=True, min_frames=1)
        b, n_past = context.shape[:2]
        k = n_samples
        if n_future == 0:
            return context.new_zeros(k, b, 0, *context.shape[2:])
        h, skips = self.encode(context)
        h_all = h.unsqueeze(0).expand(k, *h.shape).reshape(k * b, *h.shape[1:])
        prior_state = pred_state = None
        with pyro.plate("sequences", k * b):
            if n_past > 1:  # the context steps t = 1..P-1, all inputs known: one call each
                inp = h_all[:, :-1]
                if self.prior is not None:
                    z = posterior_latents(self, h_all[:, 1:])
                    _, prior_state = self.prior(inp)
                    inp = torch.cat([inp, torch.stack(z, 1).to(h.dtype)], 2)
                _, pred_state = self.predictor(inp)
            carry = context_carry(self, h, skips, prior_state, pred_state, n_samples=k)
            out = rollout(self, carry, n_past, n_future, pixel_sites=False)
        return torch.stack(out, 1).reshape(k, b, n_future, *context.shape[2:])


@contextlib.contextmanager
def sampling_mode(svg: SVG, bn_train_mode: bool = False) -> Iterator[SVG]:
    """Eval mode (BatchNorm running statistics) or, with ``bn_train_mode``, the original release's
    BatchNorm-in-training-mode, with momentum 0 so the stored running statistics stay untouched.
    The module's previous mode and momenta are restored on exit.
    """
    was_training = svg.training
    norms = batchnorms(svg)
    momenta = [m.momentum for m in norms]
    try:
        if bn_train_mode:
            svg.train()
            for m in norms:
                m.momentum = 0.0
        else:
            svg.eval()
        yield svg
    finally:
        for m, mom in zip(norms, momenta):
            m.momentum = mom
        svg.train(was_training)
