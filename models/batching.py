"""Pyro's leading sample and particle dimensions, and the flat batch the networks run on.

``Predictive(..., parallel=True)`` and ``vectorize_particles=True`` run the model inside one more
``pyro.plate`` to the left of ``"sequences"`` (dim -2 with ``max_plate_nesting=1``), so a latent
``z_t`` arrives as ``[*S, B, *latent_shape]`` (``S = (K,)``) instead of ``[B, *latent_shape]``.
The networks take one batch dimension, so the model folds ``S`` into it: ``N = prod(S) * B``
sequences, sample-major (row ``s * B + b``), the layout :meth:`svg_pyro.svg.SVG.generate` uses,
and unfolds the results back to ``[*S, B, ...]`` at its sample sites.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from pyro.distributions import TorchDistribution
from pyro.poutine.runtime import get_plates

Shape = tuple[int, ...]


def outer_plate_shape() -> Shape:
    """The sizes of the enclosing plates left of ``"sequences"`` (dims < -1), e.g. ``(K,)``
    inside ``Predictive(parallel=True)``; ``()`` when there are none."""
    dims = {f.dim: f.size for f in get_plates() if f.vectorized and f.dim is not None}
    outer = [d for d in dims if d < -1]
    if not outer:
        return ()
    return tuple(dims.get(d, 1) for d in range(min(outer), -1))


def leading_shape(values: Sequence[torch.Tensor], event_dims: int) -> Shape:
    """The broadcast of the dims left of the batch dim of ``values`` ``[*S, B, *event]``."""
    shapes = [v.shape[: v.dim() - 1 - event_dims] for v in values]
    return tuple(torch.broadcast_shapes(*shapes)) if shapes else ()


def tile(x: torch.Tensor, lead: Shape) -> torch.Tensor:
    """``x [B, ...]`` -> ``[prod(lead) * B, ...]``, sample-major (``x`` itself when ``lead``
    is empty)."""
    if not lead:
        return x
    return x.unsqueeze(0).expand(math.prod(lead), *x.shape).reshape(-1, *x.shape[1:])


def fold(value: torch.Tensor, lead: Shape, batch: int, event_dims: int) -> torch.Tensor:
    """A site value ``[*S', B, *event]`` (``S'`` broadcasting to ``lead``) -> ``[N, *event]``."""
    if not lead:
        return value
    event = value.shape[value.dim() - event_dims :]
    return value.expand(*lead, batch, *event).reshape(-1, *event)


class FoldedBatch(TorchDistribution):
    """``base`` (batch ``[N]``) read as batch ``batch_shape`` (``prod == N``, sample-major).

    Lets a prior that ran on the flat ``[N]`` batch give a site of batch ``[*S, B]``; sampling,
    ``log_prob``, ``mean`` and ``variance`` are the base's, reshaped.
    """

    arg_constraints: dict = {}

    def __init__(self, base: TorchDistribution, batch_shape: Shape):
        if base.batch_shape.numel() != math.prod(batch_shape) or len(base.batch_shape) != 1:
            raise ValueError(f"cannot read batch {tuple(base.batch_shape)} as {batch_shape}")
        self.base = base
        super().__init__(torch.Size(batch_shape), base.event_shape, validate_args=False)

    @property
    def has_rsample(self) -> bool:
        return self.base.has_rsample

    @property
    def support(self):
        return self.base.support

    def _unfold(self, x: torch.Tensor, sample_shape: torch.Size) -> torch.Tensor:
        return x.reshape(sample_shape + self.batch_shape + self.event_shape)

    def rsample(self, sample_shape=()) -> torch.Tensor:
        sample_shape = torch.Size(sample_shape)
        return self._unfold(self.base.rsample(sample_shape), sample_shape)

    def sample(self, sample_shape=()) -> torch.Tensor:
        sample_shape = torch.Size(sample_shape)
        return self._unfold(self.base.sample(sample_shape), sample_shape)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        full = self.batch_shape + self.event_shape
        shape = torch.broadcast_shapes(value.shape, full)
        lead = shape[: len(shape) - len(full)]
        flat = value.expand(shape).reshape(*lead, -1, *self.event_shape)
        return self.base.log_prob(flat).reshape(*lead, *self.batch_shape)

    @property
    def mean(self) -> torch.Tensor:
        return self.base.mean.reshape(self.batch_shape + self.event_shape)

    @property
    def variance(self) -> torch.Tensor:
        return self.base.variance.reshape(self.batch_shape + self.event_shape)


def unfold_dist(d: TorchDistribution, site_shape: Shape | None) -> TorchDistribution:
    """``d`` (batch ``[N]``) as a distribution of batch ``site_shape`` (``d`` itself when
    ``site_shape`` is ``None`` or has no leading dims)."""
    if site_shape is None or len(site_shape) == 1:
        return d
    return FoldedBatch(d, site_shape)
