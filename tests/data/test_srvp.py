"""SRVP's fixed SM-MNIST test set, built from a small IDX fixture of the MNIST test split."""

import gzip

import numpy as np
import pytest

from svg_pyro.commands.cli import main
from svg_pyro.data import load_frames, load_testset
from svg_pyro.data import srvp as srvp_mod
from svg_pyro.data.srvp import read_idx, render, srvp_testset, trajectory


def _write_idx(path, array, gz=False):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    opener = gzip.open if gz else open
    with opener(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture(scope="module")
def mnist_root(tmp_path_factory):
    """10,000 fake 28x28 test digits (a bright square at a digit-dependent place) in IDX files."""
    root = tmp_path_factory.mktemp("mnist")
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 10_000)
    images = np.zeros((10_000, 28, 28), np.uint8)
    for i, lab in enumerate(labels):
        images[i, 2 + lab : 12 + lab, 4:20] = 100 + (i % 150)
    _write_idx(raw / "t10k-images-idx3-ubyte.gz", images, gz=True)
    _write_idx(raw / "t10k-labels-idx1-ubyte", labels)
    return root, images, labels


def test_read_idx_round_trip(tmp_path):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    _write_idx(tmp_path / "a", a)
    assert np.array_equal(read_idx(tmp_path / "a"), a)
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="not an IDX"):
        read_idx(tmp_path / "bad")


def _scripted(monkeypatch, values):
    it = iter(values)
    monkeypatch.setattr(srvp_mod.np.random, "randint", lambda lo, hi: next(it))


def test_straight_bounce_off_the_right_wall_by_hand(monkeypatch):
    # start row 35, column 10, speed (3, 0): 38 crosses 36 a third of the way in, 2/3 of the
    # step remain, reflected: 36 - 3 * 2/3 = 34, then 31
    _scripted(monkeypatch, [35, 10, 3, 0])
    path = trajectory(3, deterministic=True)
    assert path.tolist() == [[35, 10, 3, 0], [34, 10, -3, 0], [31, 10, -3, 0]]


def test_corner_bounce_by_hand(monkeypatch):
    # (35, 35) with speed (2, 2): (37, 37) is past both walls, the path crosses the corner
    # (36, 36) halfway; both components flip: (36 - 1, 36 - 1)
    _scripted(monkeypatch, [35, 35, 2, 2])
    path = trajectory(2, deterministic=True)
    assert path.tolist() == [[35, 35, 2, 2], [35, 35, -2, -2]]


def test_stochastic_bounce_draws_new_speed_pointing_away(monkeypatch):
    # the hit at row 36 leaves p = 2/3 of the step; the script then draws (1, 4) and the row
    # speed is made to point away from the wall (-|1|): row 36 - 2/3 -> 35, column
    # 10 + 4 * 2/3 -> 13 (both components of the rest of the step use the new speed)
    _scripted(monkeypatch, [35, 10, 3, 0, 1, 4])
    path = trajectory(2)
    assert path[1].tolist() == [35, 13, -1, 4]


def test_testset_follows_srvp_seed_and_renders_its_latents(mnist_root):
    _, images, labels = mnist_root
    data = srvp_testset(images, labels, sequences=6, frames=25)
    assert data["sequences"].shape == (25, 6, 64, 64) and data["sequences"].dtype == np.uint8
    np.random.seed(42)
    idx = np.random.permutation(10_000)
    assert data["digits"].tolist() == idx[:12].reshape(6, 2).tolist()
    assert np.array_equal(data["labels"], labels[idx[:12]].reshape(6, 2))
    # the first trajectory's first draws follow the permutation in the same stream
    sx, sy, dx, dy = (np.random.randint(0, 37), np.random.randint(0, 37),
                      np.random.randint(-4, 5), np.random.randint(-4, 5))  # fmt: skip
    assert data["latents"][0, 0, 0].tolist() == [sx, sy, dx, dy]
    lat = data["latents"]
    assert lat[..., :2].min() >= 0 and lat[..., :2].max() <= 36
    assert np.abs(lat[..., 2:]).max() <= 4
    for i in range(6):
        paths = lat[:, i].transpose(1, 0, 2)
        assert np.array_equal(data["sequences"][:, i], render(images[data["digits"][i]], paths))
    # same call, same set
    again = srvp_testset(images, labels, sequences=6, frames=25)
    assert np.array_equal(again["sequences"], data["sequences"])


def test_render_clips_overlaps_at_255():
    d = np.full((2, 28, 28), 200, np.uint8)
    paths = np.zeros((2, 1, 4), np.float32)
    x = render(d, paths)
    assert x[0, 0, 0] == 255 and x[0, 30, 30] == 0


def test_cli_writes_srvp_layout_that_evaluate_reads(mnist_root, tmp_path):
    root, _, _ = mnist_root
    out = tmp_path / "srvp.npz"
    argv = ["data", "smmnist-testset", "--protocol", "srvp", "--mnist-root", str(root),
            "--out", str(out), "--sequences", "4", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    with np.load(out) as raw:
        assert raw["sequences"].shape == (25, 4, 64, 64)
        time_major = raw["sequences"]
    data = load_testset(out)
    assert data["frames"].shape == (4, 25, 1, 64, 64)
    assert np.array_equal(data["frames"][:, :, 0], time_major.transpose(1, 0, 2, 3))
    assert time_major.any()
    assert load_frames(out, 25).shape == (4, 25, 1, 64, 64)


def test_cli_srvp_needs_mnist_root(tmp_path, capsys):
    argv = ["data", "smmnist-testset", "--protocol", "srvp", "--out", str(tmp_path / "x.npz")]
    assert main(argv) == 2
    assert "--mnist-root" in capsys.readouterr().err
