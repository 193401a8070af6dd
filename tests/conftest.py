"""Shared fixtures: tiny configurations that run in seconds on CPU."""

import pyro
import pytest
import torch

from svg_pyro import SVG, SVGConfig


def tiny_config(**overrides) -> SVGConfig:
    base = dict(nf=4, g_dim=8, z_dim=3, rnn_size=16, predictor_layers=2, n_past=2, n_future=3)
    base.update(overrides)
    return SVGConfig(**base)


@pytest.fixture(autouse=True)
def _seed_and_clear():
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    yield


@pytest.fixture
def frames() -> torch.Tensor:
    """A batch of 3 random sequences of 5 frames, [3, 5, 1, 64, 64] in [0, 1]."""
    return torch.rand(3, 5, 1, 64, 64, generator=torch.Generator().manual_seed(1))


@pytest.fixture(params=["learned", "fixed", "none"])
def svg(request) -> SVG:
    return SVG(tiny_config(prior=request.param))
