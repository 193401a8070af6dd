"""Digit identity in forecasts: template correlation, identity frames, calibration, glyphs."""

import numpy as np
import pytest
import torch

from svg_pyro import SVG
from svg_pyro.analysis.identity import (
    best_match,
    calibrate,
    digit_images,
    forecast_matches,
    identity_frames,
    identity_grid,
    ink,
    summarize_identity,
    teacher_forced_matches,
)
from svg_pyro.data.testsets import load_testset, write_smmnist_testset
from tests.conftest import tiny_config


def _glyphs(n: int, seed: int = 0) -> torch.Tensor:
    """``n`` random stroke-like 32x32 images."""
    g = torch.rand(n, 32, 32, generator=torch.Generator().manual_seed(seed))
    return (g > 0.7).float() * g


def _frame_with(glyph: torch.Tensor, y: int, x: int) -> torch.Tensor:
    frame = torch.zeros(64, 64)
    frame[y : y + 32, x : x + 32] = glyph
    return frame


def test_own_image_anywhere_matches_one_and_blank_matches_zero():
    g = _glyphs(2)
    frames = torch.stack([_frame_with(g[0], 5, 20), _frame_with(g[0], 30, 0), torch.zeros(64, 64)])
    match = best_match(frames[None], g[None])  # one sequence of 3 frames, 2 digit images
    assert match.shape == (1, 3, 2)
    assert match[0, :2, 0] == pytest.approx([1.0, 1.0], abs=1e-4)  # found wherever it is
    assert (match[0, :2, 1] < 0.5).all()  # the other image is not there
    assert (match[0, 2] == 0).all()  # a blank frame matches nothing


def test_correlation_by_hand_at_the_only_position():
    # a 32x32 frame has one window: the match is the Pearson correlation of the two images
    a, b = _glyphs(2, seed=3)
    r = np.corrcoef(a.flatten().numpy(), b.flatten().numpy())[0, 1]
    assert float(best_match(a[None, None], b[None, None])) == pytest.approx(r, abs=1e-5)
    scaled = (0.5 * a + 0.1)[None, None]  # correlation ignores gain and offset
    assert float(best_match(a[None, None], scaled)) == pytest.approx(1, abs=1e-5)


def test_identity_frames_count_the_leading_frames_where_every_digit_passes():
    match = torch.tensor(
        [
            [[0.9, 0.8], [0.9, 0.7], [0.2, 0.9], [0.9, 0.9]],  # lost at the third frame
            [[0.1, 0.9], [0.9, 0.9], [0.9, 0.9], [0.9, 0.9]],  # lost at once
            [[0.9, 0.9], [0.9, 0.9], [0.9, 0.9], [0.9, 0.9]],  # kept throughout
        ]
    )
    assert identity_frames(match, 0.5).tolist() == [2, 0, 4]
    assert identity_frames(match[None], 0.75).tolist() == [[1, 0, 4]]  # leading dims kept


def test_calibration_passes_genuine_images_and_few_impostors():
    g = _glyphs(8, seed=1)[:, None]  # 8 sequences of one digit
    frames = torch.stack(
        [torch.stack([_frame_with(g[n, 0], t, 2 * t) for t in range(6)]) for n in range(8)]
    )
    c = calibrate(frames, g, false_match=0.1)
    assert c["genuine_rate"] == 1.0  # every true frame holds its own image intact
    assert c["impostor_rate"] <= 0.1 + 2 / 48 and c["threshold"] < 0.99  # 48 impostor scores
    with pytest.raises(ValueError, match="at least 2 sequences"):
        calibrate(frames[:1], g[:1])


def test_digit_images_redraw_the_stored_frames(tmp_path):
    path = write_smmnist_testset(
        tmp_path / "t.npz", sequences=3, frames=6, num_digits=2, seed=4, progress=False
    )
    glyphs = digit_images(path)
    data = load_testset(path)
    assert glyphs.shape == (3, 2, 32, 32)
    for n in range(3):
        for t in range(6):
            frame = np.zeros((64, 64), dtype=np.float32)
            for d in range(2):
                y, x = data["positions"][n, t, d]
                frame[y : y + 32, x : x + 32] += glyphs[n, d].numpy()
            stored = data["frames"][n, t, 0] / 255.0
            assert np.abs(np.minimum(frame, 1) - stored).max() <= 1 / 255 + 1e-6
    # the truth's digits are found in its own frames
    frames = torch.from_numpy(data["frames"]).float() / 255
    assert (best_match(frames, glyphs).mean() > 0.8).item()


def test_digit_images_refuse_other_sets(tmp_path):
    path = tmp_path / "x.npz"
    np.savez(path, frames=np.zeros((1, 2, 1, 64, 64), np.uint8))
    with pytest.raises(ValueError, match="no 'meta'"):
        digit_images(path)


def test_forecast_matches_score_every_sample_and_frame():
    svg = SVG(tiny_config())
    frames = torch.rand(3, 6, 1, 64, 64)
    glyphs = _glyphs(6).reshape(3, 2, 32, 32)
    m = forecast_matches(svg, frames, glyphs, n_past=2, n_samples=4, batch_size=2)
    assert m.shape == (4, 3, 4, 2)
    assert ((m >= -1) & (m <= 1)).all()
    again, inks = forecast_matches(svg, frames, glyphs, 2, 4, 2, return_ink=True)
    assert torch.equal(m, again)  # seeded
    assert inks.shape == (4, 3, 4) and ((inks > 0) & (inks < 1)).all()
    assert svg.training  # its mode is restored
    bn = forecast_matches(svg, frames, glyphs, 2, 4, 2, bn_train_mode=True)
    assert not torch.equal(m, bn) and svg.training  # batch statistics, not running ones


def test_ink_is_the_mean_pixel_and_summaries_average_it_per_frame():
    frames = torch.zeros(2, 3, 1, 64, 64)
    frames[0, 1, 0, :32] = 1.0  # half the frame lit
    frames[1, 1, 0, :16, :16] = 0.5  # 256 pixels at 0.5
    got = ink(frames)
    assert got.shape == (2, 3)
    assert got[0, 1] == 0.5 and got[1, 1] == 128 / 4096 and got[:, 0].eq(0).all()
    match = torch.ones(1, 2, 3, 2)
    summary = summarize_identity(match, 0.5, got[None])
    assert summary["ink_by_frame"] == [0.0, round((0.5 + 128 / 4096) / 2, 5), 0.0]
    assert "ink_by_frame" not in summarize_identity(match, 0.5)


def test_teacher_forced_matches_score_the_models_own_means():
    """The posterior means are the model's replayed under the guide's draws, scored frame by
    frame after n_past; the prior ones differ (other z); the deterministic model has no
    posterior."""
    from pyro import poutine

    svg = SVG(tiny_config(n_past=2, n_future=3))
    frames = torch.rand(3, 6, 1, 64, 64)
    glyphs = _glyphs(6).reshape(3, 2, 32, 32)
    post = teacher_forced_matches(svg, frames, glyphs, "posterior", n_samples=2, batch_size=2)
    assert post.shape == (2, 3, 4, 2)
    one = teacher_forced_matches(
        svg, frames, glyphs, "posterior", n_samples=1, batch_size=3, seed=5
    )
    torch.manual_seed(5)
    svg.eval()
    with torch.no_grad():
        means = poutine.replay(svg.model, trace=poutine.trace(svg.guide).get_trace(frames))(frames)
    direct = best_match(means[:, 1:], glyphs)  # means of frames 2..5
    assert torch.equal(one[0], direct)
    prior = teacher_forced_matches(svg, frames, glyphs, "prior", n_samples=2, batch_size=2)
    assert not torch.equal(post, prior)
    assert torch.equal(post, teacher_forced_matches(svg, frames, glyphs, "posterior", 2, 2))
    with pytest.raises(ValueError, match="posterior"):
        teacher_forced_matches(SVG(tiny_config(prior="none")), frames, glyphs, "posterior")
    with pytest.raises(ValueError, match="latents"):
        teacher_forced_matches(svg, frames, glyphs, "guide")


def test_teacher_forced_reconstruction_of_a_true_digit_is_recognised(monkeypatch):
    """A model whose decoder returns the true frame (an identity reconstruction) keeps every
    digit: the teacher-forced scores are those of the truth."""
    svg = SVG(tiny_config(n_past=2, n_future=3))
    g = _glyphs(2)
    frames = torch.zeros(1, 5, 1, 64, 64)
    for t in range(5):
        frames[0, t, 0] = _frame_with(g[0], 2 + t, 0) + _frame_with(g[1], 30 - t, 32)

    def decode(nets, h, skips, first_target=1, n_past=None):
        return frames[:, first_target:].expand(h.shape[0], -1, -1, -1, -1)

    monkeypatch.setattr("svg_pyro.models.svg.decode", decode)  # the model's teacher-forced decoder
    m = teacher_forced_matches(svg, frames, g[None], "prior", n_samples=1)
    truth = best_match(frames[:, 2:], g[None])
    assert torch.allclose(m[0], truth)
    assert (m > 0.999).all()  # each digit's own window


def test_identity_grid_draws_truth_teacher_forced_and_forecast_rows():
    svg = SVG(tiny_config(n_past=2, n_future=3))
    frames = torch.rand(2, 6, 1, 64, 64)
    plain = identity_grid(svg, frames, n_past=2)
    full = identity_grid(svg, frames, n_past=2, teacher_forced=True)
    assert plain.dtype == np.uint8 and plain.shape[2] == 3
    assert plain.shape[1] == full.shape[1]  # 6 frames across
    row = (full.shape[0] - plain.shape[0]) // 2  # one more row per sequence
    assert row >= 64 and plain.shape[0] > 4 * row  # 2 sequences x (truth, forecast)
    assert np.array_equal(identity_grid(svg, frames, n_past=2), plain)  # seeded
    one = identity_grid(svg, frames, n_past=2, draw=1)
    assert one.shape[1] == plain.shape[1] and one.shape[0] < plain.shape[0] / 2 + 8
    with pytest.raises(ValueError, match="n_past=2"):
        identity_grid(svg, frames, n_past=3, teacher_forced=True)


def test_analyze_identity_command_writes_its_report(tmp_path, capsys):
    import json

    from svg_pyro.commands.cli import main
    from tests.conftest import save_checkpoint

    path = write_smmnist_testset(
        tmp_path / "t.npz", sequences=3, frames=7, num_digits=2, seed=2, progress=False
    )
    save_checkpoint(SVG(tiny_config(n_past=2, n_future=3)), tmp_path / "m.pt")
    out = tmp_path / "r.json"
    argv = ["analyze", "identity", "--checkpoint", str(tmp_path / "m.pt"), "--testset", str(path)]
    argv += ["--n-past", "2", "--n-samples", "3", "--device", "cpu", "--json", str(out)]
    assert main(argv) == 0
    report = json.loads(out.read_text())
    assert report["n_future"] == 5 and report["sequences"] == 3
    truth, model = report["methods"]["truth"], report["methods"]["model"]
    assert 0 <= model["identity_frames_mean"] <= model["identity_frames_best"] <= 5
    assert len(model["recognisable_by_frame"]) == 5
    assert truth["identity_frames_mean"] >= model["identity_frames_mean"]  # untrained model
    assert "frames with the digits kept" in capsys.readouterr().err
    assert main([*argv[:-2], "--sequences", "1", "--json", str(out)]) == 2  # needs 2 to calibrate
    png = tmp_path / "grid.png"
    assert main([*argv, "--teacher-forced", "--plot", str(png), "--plot-sequences", "1"]) == 0
    assert json.loads(out.read_text())["plot"] == str(png) and png.stat().st_size > 0
    methods = json.loads(out.read_text())["methods"]
    for name in ("teacher-forced posterior", "teacher-forced prior"):
        assert len(methods[name]["recognisable_by_frame"]) == 5
        assert len(methods[name]["ink_by_frame"]) == 5
    truth_ink = ink(torch.from_numpy(load_testset(path)["frames"][:, 2:]).float() / 255)
    assert methods["truth"]["ink_by_frame"] == [round(v, 5) for v in truth_ink.mean(0).tolist()]
    assert "teacher-forced posterior" in capsys.readouterr().err
    argv[argv.index("--n-past") + 1] = "3"
    assert main([*argv, "--teacher-forced"]) == 2  # the teacher-forced means follow n_past=2
