"""Shared fixtures: tiny configurations that run in seconds on CPU."""

import pyro
import pytest
import torch

from svg_pyro import SVG, SVGConfig
from svg_pyro.config import build_configs
from svg_pyro.data import write_smmnist_testset
from svg_pyro.train import Trainer


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


# -- a micro model trained once per session (evaluation, IWAE) ----------------------------------
P, F = 2, 3
MICRO = dict(nf=4, g_dim=8, z_dim=2, rnn_size=16, predictor_layers=1, n_past=P, n_future=F)


def save_checkpoint(svg: SVG, path, dataset="smmnist"):
    torch.save(
        {"model": svg.state_dict(), "config": svg.config.to_dict(), "step": 0,
         "train_config": {"dataset": dataset, "num_digits": 1}},
        path,
    )  # fmt: skip
    return path


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A micro SVG-LP trained 150 steps (obs_sigma 0.1), an untrained det model, a test set."""
    root = tmp_path_factory.mktemp("eval")
    model_cfg, train_cfg = build_configs(
        "tiny", **MICRO, obs_sigma=0.1, batch_size=8, steps=150, device="cpu",
        log_every=50, checkpoint_every=1000,
    )  # fmt: skip
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small convolutions: one thread is faster on a busy CPU
    try:
        Trainer(model_cfg, train_cfg, root / "lp").fit(progress=False)
    finally:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    det = save_checkpoint(SVG(SVGConfig(prior="none", **MICRO)), root / "det.pt")
    testset = write_smmnist_testset(
        root / "test.npz", sequences=16, frames=P + F + 1, num_digits=1, seed=0, progress=False
    )
    return {"lp": root / "lp" / "checkpoint.pt", "det": det, "testset": testset, "root": root}
