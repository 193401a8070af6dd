import json

from PIL import Image

from svg_pyro import SVG, pretrained
from svg_pyro.demo import run_demo
from tests.conftest import tiny_config


def test_demo_writes_gif_grid_and_curves(tmp_path):
    paths = run_demo(tmp_path, steps=3, n_sequences=2, n_samples=2, progress=False, shipped=False)
    gif = Image.open(paths["gif"])
    assert gif.n_frames == 8  # 3 context + 5 future frames of the tiny preset
    assert Image.open(paths["grid"]).size[0] > 64 * 8
    assert Image.open(paths["curves"]).size[0] > 100
    assert paths["checkpoint"].exists()
    assert "pretrained_gif" not in paths


def test_demo_shows_the_shipped_model_first(tmp_path, monkeypatch):
    weights = tmp_path / "weights"
    monkeypatch.setattr(pretrained, "WEIGHTS_DIR", weights)
    svg = SVG(tiny_config())
    ckpt = {"model": svg.state_dict(), "config": svg.config.to_dict()}
    pretrained.export_weights(ckpt, pretrained.DEFAULT)
    paths = run_demo(tmp_path / "demo", steps=1, n_sequences=2, n_samples=2, progress=False)
    gif = Image.open(paths["pretrained_gif"])
    assert gif.n_frames == 25  # the SM-MNIST protocol: 5 context + 20 predicted frames
    # 2 sequences: rows of (truth + 2 samples) cells, wider than the tiny model's 8-frame grid
    assert Image.open(paths["pretrained_grid"]).size[0] > Image.open(paths["grid"]).size[0]


def test_demo_runs_past_held_out_evaluation(tmp_path):
    # the real demo trains past --eval-every, so metrics.jsonl holds held-out rows (no `loss`)
    # beside the training rows; the curves must still be drawn, with the held-out SSIM panel
    paths = run_demo(
        tmp_path, steps=4, n_sequences=1, n_samples=2, progress=False, shipped=False,
        eval_every=2, eval_sequences=2, eval_samples=2, log_every=1,
    )  # fmt: skip
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    held = [r for r in rows if r.get("eval")]
    assert [r["step"] for r in held] == [2, 4] and all("loss" not in r for r in held)
    with_eval = Image.open(paths["curves"]).size[0]
    plain = run_demo(tmp_path / "plain", steps=2, n_sequences=1, n_samples=2, progress=False,
                     shipped=False, eval_every=0, log_every=1)  # fmt: skip
    assert with_eval > Image.open(plain["curves"]).size[0]  # a fourth panel: held-out SSIM
