"""The model's dependency structure as Pyro infers it: x_t depends on z_1..z_t only."""

import pytest
import torch
from pyro import poutine
from pyro.infer.inspect import get_dependencies

from svg_pyro import SVG
from tests.conftest import tiny_config
from tests.models.test_forecast import lively

T = 5


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def upstream(deps: dict, site: str) -> set[str]:
    return set(deps["prior_dependencies"][site]) - {site}


@pytest.mark.parametrize(
    "overrides", [dict(), dict(prior="fixed"), dict(rnn="conv", feature_size=4)]
)
def test_training_model_is_causal(overrides):
    svg = SVG(tiny_config(**overrides))
    deps = get_dependencies(svg.model, (torch.rand(2, T, 1, 64, 64),))
    for t in range(1, T):
        assert upstream(deps, f"x_{t}") == {f"z_{s}" for s in range(1, t + 1)}
        assert upstream(deps, f"z_{t}") == set()  # the prior reads frames, not latents


def test_deterministic_model_has_no_latent_upstream():
    svg = SVG(tiny_config(prior="none"))
    deps = get_dependencies(svg.model, (torch.rand(2, T, 1, 64, 64),))
    assert all(upstream(deps, f"x_{t}") == set() for t in range(1, T))


def test_forecast_latents_depend_on_everything_before_them():
    svg = SVG(tiny_config(n_past=3))
    deps = get_dependencies(svg.model, (torch.rand(2, 3, 1, 64, 64),), {"n_future": 2})
    assert upstream(deps, "x_2") == {"z_1", "z_2"}
    assert upstream(deps, "z_3") == set()  # its prior reads the observed x_2
    assert upstream(deps, "z_4") == {"z_1", "z_2", "z_3"}  # through the generated x_hat_3
    assert upstream(deps, "x_4") == {"z_1", "z_2", "z_3", "z_4"}


def test_the_batched_computation_is_causal_in_eval_mode():
    """What the provenance says, the numbers do: a later latent leaves earlier means alone."""
    svg = lively(SVG(tiny_config()))
    frames = torch.rand(2, T, 1, 64, 64)
    z = {f"z_{t}": torch.randn(2, svg.config.z_dim) for t in range(1, T)}
    base = poutine.condition(svg.model, data=z)(frames)  # [B, T-1, C, H, W]
    moved = poutine.condition(svg.model, data={**z, "z_3": z["z_3"] + 3.0})(frames)
    assert torch.equal(moved[:, :2], base[:, :2])
    for i in (2, 3):  # x_3 and x_4 read z_3
        assert (moved[:, i] - base[:, i]).abs().max() > 1e-4
