"""svg_pyro.loaded: a checkpoint loaded for a use (the model, the protocol, the data it was
trained on, its frames and the seed), what every command that reads a checkpoint does first."""

import warnings

import numpy as np
import pytest
import torch

from svg_pyro.config import DataSpec, SVGConfig
from svg_pyro.data import dataset_frames, load_frames
from svg_pyro.loaded import load_trained
from svg_pyro.svg import SVG
from tests.conftest import MICRO, F, P, save_checkpoint
from tests.test_evaluate import static_testset


@pytest.fixture
def ckpt(tmp_path):
    torch.manual_seed(0)
    return save_checkpoint(SVG(SVGConfig(**MICRO)), tmp_path / "m.pt")


def test_the_protocol_and_data_come_from_the_checkpoint(ckpt, tmp_path):
    run = load_trained(ckpt, "cpu")
    assert (run.n_past, run.n_future, run.length) == (5, 20, 25)  # SM-MNIST's protocol
    assert run.data == DataSpec(num_digits=1) and run.step == 0
    assert run.device == torch.device("cpu")
    assert next(run.svg.parameters()).device.type == "cpu"
    given = load_trained(ckpt, torch.device("cpu"), n_past=3, mnist_root="/digits")
    assert (given.n_past, given.n_future) == (3, 20)
    assert given.data == DataSpec(num_digits=1, mnist_root="/digits")
    other = save_checkpoint(SVG(SVGConfig(**MICRO)), tmp_path / "o.pt", dataset="unknown")
    assert (load_trained(other, "cpu").n_past, load_trained(other, "cpu").n_future) == (P, F)
    with pytest.raises(ValueError, match="n_future"):
        load_trained(ckpt, "cpu", n_future=0)


def test_frames_are_the_data_specs_and_the_testsets(ckpt, tmp_path):
    run = load_trained(ckpt, "cpu", P, F)
    drawn = run.frames("test", 2, seed=4)
    assert drawn.shape == (2, P + F, 1, 64, 64) and drawn.dtype == np.uint8
    assert np.array_equal(drawn, dataset_frames(DataSpec(num_digits=1), "test", 2, 4, P + F))
    assert run.frames("train", 2, seed=4, length=P).shape[1] == P
    path = static_testset(tmp_path / "s.npz")
    assert np.array_equal(run.testset(path, 3), load_frames(path, P + F, 3, 1))
    with pytest.raises(ValueError, match="protocol needs"):
        run.testset(path, length=P + F + 1)


def test_seed_makes_samples_reproducible(ckpt):
    run = load_trained(ckpt, "cpu", P, F)
    x = torch.rand(1, P, 1, 64, 64)
    run.seed(3)
    a = run.svg.generate(x, F, 2)
    run.seed(3)
    assert torch.equal(a, run.svg.generate(x, F, 2))


def test_a_model_that_needs_recalibrating_is_warned_about_once_unless_told(tmp_path):
    torch.manual_seed(0)
    path = save_checkpoint(SVG(SVGConfig(**MICRO, skip_source="previous")), tmp_path / "p.pt")
    with pytest.warns(UserWarning, match="recalibrate-bn"):
        load_trained(path, "cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_trained(path, "cpu", warn=False)
