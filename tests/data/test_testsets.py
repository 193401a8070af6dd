import numpy as np
import pytest
import torch

from svg_pyro.commands.cli import main
from svg_pyro.data import StochasticMovingMNIST, TestSet, load_testset


def test_cli_writes_a_fixed_test_set(tmp_path):
    out = tmp_path / "sm.npz"
    args = [
        "data",
        "smmnist-testset",
        "--out",
        str(out),
        "--sequences",
        "6",
        "--frames",
        "7",
        "--num-digits",
        "2",
        "--seed",
        "5",
        "--no-progress",
    ]
    assert main(args) == 0
    data = load_testset(out)
    assert data["frames"].shape == (6, 7, 1, 64, 64) and data["frames"].dtype == np.uint8
    assert data["positions"].shape == (6, 7, 2, 2)
    assert data["bounces"].shape == (6, 7, 2) and data["bounces"].dtype == bool
    # the same sequences as the test-split generator with that seed, quantised to uint8
    ref = StochasticMovingMNIST(num_digits=2, seq_len=7, split="test", seed=5)[3]
    np.testing.assert_array_equal(data["frames"][3], (ref["frames"].numpy() * 255).round())
    np.testing.assert_array_equal(data["positions"][3], ref["positions"].numpy())
    # written twice: byte-identical content
    again = tmp_path / "again.npz"
    assert main(args[:3] + [str(again)] + args[4:]) == 0
    np.testing.assert_array_equal(load_testset(again)["frames"], data["frames"])
    ds = TestSet(out)
    assert len(ds) == 6 and ds[0]["frames"].dtype == torch.float32
    assert ds[0]["frames"].max() <= 1


def test_bad_test_set_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_testset(tmp_path / "nope.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="bad.npz"):
        load_testset(bad)
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, frames=np.zeros((2, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="uint8"):
        load_testset(wrong)


def test_collision_data_are_the_stored_test_sequences(tmp_path):
    from svg_pyro.analysis import smmnist_collision_data
    from svg_pyro.data import smmnist_test_sequences, write_smmnist_testset

    out = write_smmnist_testset(tmp_path / "t.npz", 3, 6, num_digits=2, seed=2, progress=False)
    stored = load_testset(out)
    x, bounces = smmnist_collision_data(3, 6, 2, seed=2)
    assert x.dtype == torch.float32 and x.shape == (3, 6, 1, 64, 64)
    np.testing.assert_array_equal((x.numpy() * 255).round(), stored["frames"])
    np.testing.assert_array_equal(bounces, stored["bounces"])
    raw = smmnist_test_sequences(3, 6, 2, seed=2, quantize=False)
    frames = raw["frames"]
    assert frames.dtype == np.float32 and 0 <= frames.min() <= frames.max() <= 1
    with pytest.raises(ValueError, match="sequences >= 1"):
        smmnist_test_sequences(0, 6)
