"""Stochastic Moving MNIST: item format, reproducibility and the bounce semantics."""

import numpy as np
import pytest
import torch

from svg_pyro.data import StochasticMovingMNIST, load_digits

T = 30


def _velocity(positions):
    return positions[1:] - positions[:-1]  # [T-1, ...]: from frame t to t+1


def test_item_format_and_ranges():
    ds = StochasticMovingMNIST(num_digits=2, seq_len=T, seed=3, length=10)
    item = ds[4]
    assert item["frames"].shape == (T, 1, 64, 64) and item["frames"].dtype == torch.float32
    assert item["positions"].shape == (T, 2, 2)
    assert item["bounces"].shape == (T, 2) and item["bounces"].dtype == torch.bool
    assert 0 <= item["frames"].min() and item["frames"].max() <= 1
    assert item["positions"].min() >= 0 and item["positions"].max() <= 31
    assert len(ds) == 10
    with pytest.raises(IndexError):
        ds[10]


def test_reproducible_and_seed_dependent():
    a = StochasticMovingMNIST(seq_len=8, seed=1)[5]
    b = StochasticMovingMNIST(seq_len=8, seed=1)[5]
    c = StochasticMovingMNIST(seq_len=8, seed=2)[5]
    assert torch.equal(a["frames"], b["frames"]) and torch.equal(a["positions"], b["positions"])
    assert not torch.equal(a["frames"], c["frames"])


def test_digit_drawn_at_its_position():
    ds = StochasticMovingMNIST(num_digits=1, seq_len=T, seed=0)
    for i in range(5):
        item = ds[i]
        for t in range(T):
            y, x = item["positions"][t, 0].tolist()
            frame = item["frames"][t, 0]
            inside = frame[y : y + 32, x : x + 32].sum()
            assert inside > 10 and torch.isclose(frame.sum(), inside)


def test_two_digits_are_summed_and_clipped():
    ds = StochasticMovingMNIST(num_digits=2, seq_len=T, seed=0)
    digits = ds.digits
    item = ds[0]
    rng = np.random.default_rng([0, 0])  # replay the item's draws to know which digits it used
    first = digits[int(rng.integers(len(digits)))]
    ds.trajectory(rng)
    second = digits[int(rng.integers(len(digits)))]
    canvas = np.zeros((64, 64), dtype=np.float32)
    (y1, x1), (y2, x2) = item["positions"][0].tolist()
    canvas[y1 : y1 + 32, x1 : x1 + 32] += first
    canvas[y2 : y2 + 32, x2 : x2 + 32] += second
    np.testing.assert_allclose(item["frames"][0, 0].numpy(), np.minimum(canvas, 1.0))


@pytest.mark.parametrize("deterministic", [False, True])
def test_velocity_constant_between_wall_hits(deterministic):
    ds = StochasticMovingMNIST(num_digits=2, seq_len=T, deterministic=deterministic, seed=0)
    n_bounces = 0
    for i in range(50):
        item = ds[i]
        v = _velocity(item["positions"].numpy())  # v[t]: frame t -> t+1
        bounces = item["bounces"].numpy()
        for t in range(1, T - 2):
            for d in range(2):
                if bounces[t, d]:
                    n_bounces += 1
                    assert not np.array_equal(v[t, d], v[t - 1, d])
                elif not bounces[t + 1, d]:  # a hit at t+1 clamps the position drawn there
                    assert np.array_equal(v[t, d], v[t - 1, d])
        assert not bounces[0].any()  # start positions are inside 0..31
    assert n_bounces > 20


def test_wall_hits_deterministic_reflect_and_stochastic_point_away():
    rng = np.random.default_rng(0)
    for deterministic in (True, False):
        ds = StochasticMovingMNIST(num_digits=1, seq_len=60, deterministic=deterministic)
        checked = 0
        for _ in range(200):
            pos, hit, vel = ds.trajectory(rng)
            assert pos.min() >= 0 and pos.max() <= 31
            for t in range(1, 60):
                unclamped = pos[t - 1] + vel[t - 1]
                out = (unclamped < 0) | (unclamped > 31)
                assert hit[t] == out.any()
                if not hit[t]:
                    np.testing.assert_array_equal(pos[t], unclamped)
                    np.testing.assert_array_equal(vel[t], vel[t - 1])
                    continue
                np.testing.assert_array_equal(pos[t], np.clip(unclamped, 0, 31))
                if deterministic:
                    expected = np.where(out, -vel[t - 1], vel[t - 1])
                    np.testing.assert_array_equal(vel[t], expected)
                elif out.sum() == 1:  # one wall: new component points away from it, |.| in 1..4
                    axis = int(np.argmax(out))
                    away = 1 if unclamped[axis] < 0 else -1
                    assert 1 <= vel[t, axis] * away <= 4
                    assert -4 <= vel[t, 1 - axis] <= 4
                    checked += 1
        assert deterministic or checked > 100


def test_embedded_digit_split():
    train, test = load_digits("train"), load_digits("test")
    assert train.shape == (4000, 32, 32) and test.shape == (1000, 32, 32)
    assert train.dtype == np.float32 and 0 <= train.min() and train.max() <= 1
    # disjoint: no test digit equals a training digit
    flat_train = {d.tobytes() for d in (train * 255).round().astype(np.uint8)}
    assert not any(d.tobytes() in flat_train for d in (test * 255).round().astype(np.uint8))
    with pytest.raises(ValueError, match="split"):
        load_digits("val")


def test_missing_mnist_root_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="MNIST"):
        load_digits("train", str(tmp_path))


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_digits"):
        StochasticMovingMNIST(num_digits=3)
