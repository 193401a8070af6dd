"""``svg-pyro sample`` writes readable GIFs and PNG grids, and marks the best sample by SSIM."""

import json

import numpy as np
import pyro
import pytest
import torch
from PIL import Image
from skimage.metrics import structural_similarity

from svg_pyro.commands.cli import main
from svg_pyro.config import SVGConfig
from svg_pyro.data import load_testset, write_smmnist_testset
from svg_pyro.svg import SVG
from svg_pyro.viz import PAD

P, F, K = 2, 3, 3
MICRO = dict(nf=4, g_dim=8, z_dim=2, rnn_size=16, predictor_layers=1, n_past=P, n_future=F)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    root = tmp_path_factory.mktemp("sample")
    torch.manual_seed(0)
    svg = SVG(SVGConfig(**MICRO))
    path = root / "ckpt.pt"
    torch.save(
        {"model": svg.state_dict(), "config": svg.config.to_dict(), "step": 0,
         "train_config": {"dataset": "smmnist", "num_digits": 1}},
        path,
    )  # fmt: skip
    return path


def test_sample_from_a_testset_writes_gif_png_and_index(tmp_path, ckpt):
    testset = write_smmnist_testset(
        tmp_path / "t.npz", sequences=3, frames=P + F, num_digits=1, progress=False
    )
    out = tmp_path / "pics"
    argv = ["sample", "--checkpoint", str(ckpt), "--out", str(out), "--testset", str(testset),
            "--sequences", "2", "--n-past", str(P), "--n-future", str(F),
            "--n-samples", str(K), "--device", "cpu", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    index = json.loads((out / "samples.json").read_text())
    assert [s["index"] for s in index["sequences"]] == [0, 1]
    cell = 64 + 2 * PAD
    for s in index["sequences"]:
        with Image.open(out / s["gif"]) as gif:
            assert gif.format == "GIF" and gif.n_frames == P + F
            gif.seek(P + F - 1)  # every frame decodes
            # a label strip over (truth + K samples) panels side by side
            assert gif.size == (cell * (1 + K), cell + 12)
        with Image.open(out / s["png"]) as png:
            png.load()
            assert png.format == "PNG"
            # header strip, then a truth row and K sample rows (2 px apart), and a label column
            assert png.size[1] == 12 + (1 + K) * cell + K * 2
            assert png.size[0] > cell * (P + F)
        assert len(s["ssim"]) == K and s["best_by_ssim"] == int(np.argmax(s["ssim"]))
    # the marked sample is the best by an SSIM computed here with scikit-image on the same
    # samples (regenerated with the same seed: sequence 0 is the first draw)
    svg = SVG(SVGConfig(**MICRO))
    svg.load_state_dict(torch.load(ckpt, weights_only=True)["model"])
    svg.eval()
    frames = torch.from_numpy(load_testset(testset)["frames"][:1]).float() / 255
    pyro.set_rng_seed(0)
    samples = svg.generate(frames[:, :P], F, K)[:, 0]
    ref = [
        np.mean([structural_similarity(samples[k, t, 0].double().numpy(),
                 frames[0, P + t, 0].double().numpy(), gaussian_weights=True, sigma=1.5,
                 use_sample_covariance=False, data_range=1.0) for t in range(F)])
        for k in range(K)
    ]  # fmt: skip
    first = index["sequences"][0]
    assert first["ssim"] == pytest.approx(ref, abs=1e-4)
    # the marked sample scores the highest (up to rounding: an untrained model's samples can tie)
    assert ref[first["best_by_ssim"]] >= max(ref) - 1e-6


def test_sample_draws_sequences_without_a_testset(tmp_path, ckpt):
    out = tmp_path / "drawn"
    argv = ["sample", "--checkpoint", str(ckpt), "--out", str(out), "--sequences", "1",
            "--n-past", str(P), "--n-future", str(F), "--n-samples", "2", "--device", "cpu",
            "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    assert (out / "seq000.gif").stat().st_size > 0 and (out / "seq000.png").stat().st_size > 0
    with Image.open(out / "seq000.png") as png:
        arr = np.asarray(png.convert("RGB"))
    assert arr.std() > 10  # not a blank picture


def test_sample_is_reproducible_with_a_seed(tmp_path, ckpt):
    runs = []
    for name in ("a", "b"):
        argv = ["sample", "--checkpoint", str(ckpt), "--out", str(tmp_path / name),
                "--sequences", "1", "--n-past", str(P), "--n-future", str(F),
                "--n-samples", "2", "--seed", "7", "--device", "cpu", "--no-progress"]  # fmt: skip
        assert main(argv) == 0
        runs.append(json.loads((tmp_path / name / "samples.json").read_text())["sequences"])
    assert runs[0] == runs[1]


def test_sample_errors(tmp_path, ckpt, capsys):
    other = tmp_path / "kth.pt"
    data = torch.load(ckpt, weights_only=True)
    data["train_config"]["dataset"] = "kth"
    torch.save(data, other)
    argv = ["sample", "--checkpoint", str(other), "--out", str(tmp_path / "x"), "--n-past",
            str(P), "--n-future", str(F), "--device", "cpu", "--no-progress"]  # fmt: skip
    assert main(argv) == 2
    assert "--testset" in capsys.readouterr().err
    argv[2] = str(ckpt)
    assert main([*argv, "--n-samples", "0"]) == 2


def test_sample_labels_rows_with_identity_frames(tmp_path, ckpt):
    """By hand: each sample's identity frames are those of analysis.identity on its frames, with
    the threshold calibrated on the whole set; the truth keeps its digits in (nearly) every
    frame; the GIF gets a second label line."""
    from svg_pyro.analysis.identity import best_match, calibrate, digit_images, identity_frames

    testset = write_smmnist_testset(
        tmp_path / "t.npz", sequences=4, frames=P + F, num_digits=1, progress=False
    )
    out = tmp_path / "pics"
    argv = ["sample", "--checkpoint", str(ckpt), "--out", str(out), "--testset", str(testset),
            "--sequences", "2", "--n-samples", str(K), "--device", "cpu", "--n-past", str(P),
            "--n-future", str(F),
            "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    plain_gif = Image.open(out / "seq000.gif").size
    assert main(argv + ["--identity"]) == 0
    index = json.loads((out / "samples.json").read_text())
    frames = torch.from_numpy(load_testset(testset)["frames"]).float() / 255
    glyphs = digit_images(testset)
    threshold = calibrate(frames[:, P:], glyphs)["threshold"]
    assert index["identity_threshold"] == pytest.approx(threshold)
    for seq in index["sequences"]:
        i = seq["index"]
        truth = identity_frames(best_match(frames[i : i + 1, P:], glyphs[i : i + 1]), threshold)
        assert seq["truth_identity_frames"] == int(truth[0]) >= F - 1
        assert len(seq["identity_frames"]) == K
        assert all(0 <= n <= F for n in seq["identity_frames"])
    width, height = Image.open(out / "seq000.gif").size
    assert width == plain_gif[0] and height == plain_gif[1] + 12  # the identity line
    with pytest.raises(ValueError, match="--testset"):
        from svg_pyro.sample import run_sampling

        run_sampling(ckpt, tmp_path / "x", identity=True, device="cpu", progress=False)
