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


def test_demo_says_what_it_does_resumes_aloud_and_names_every_file(tmp_path, capsys):
    """Each stage is announced with an estimate, a second run says it continues, and the command
    prints one line per file with what it shows, and the held-out score beside the baselines."""
    from svg_pyro.commands.cli import main

    out = tmp_path / "demo"
    kw = dict(n_sequences=1, n_samples=2, shipped=False, eval_every=2, eval_sequences=2,
              eval_samples=2, log_every=1)  # fmt: skip
    run_demo(out, steps=2, progress=True, **kw)
    err = capsys.readouterr().err
    assert "[2/3] training `tiny`" in err and "minutes on this machine" in err
    assert "[3/3] drawing" in err and "continuing" not in err
    paths = run_demo(out, steps=4, progress=True, **kw)
    err = capsys.readouterr().err
    assert f"found {out / 'checkpoint.pt'} at step 2 of 4: continuing that run" in err
    for name in ("best.pt", "previews", "tb", "metrics.jsonl"):
        assert paths[name].exists()
    assert main(["demo", "--out", str(out), "--steps", "4", "--no-progress"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith(f"{out / 'best.pt'}: ") for line in lines)
    assert any(line.startswith(f"{out / 'demo.gif'}: the tiny model") for line in lines)
    assert "copy-last" in lines[-1] and "blank" in lines[-1] and "step 4" in lines[-1]


def test_labelled_grid_names_rows_and_numbers_frames():
    import torch

    from svg_pyro.viz import labelled_grid, sample_grid

    ctx, truth, smp = (
        torch.rand(2, 1, 64, 64),
        torch.rand(3, 1, 64, 64),
        torch.rand(2, 3, 1, 64, 64),
    )
    plain = sample_grid(ctx, truth, smp)
    grid = labelled_grid(ctx, truth, smp)
    assert grid.shape[0] > plain.shape[0] and grid.shape[1] > plain.shape[1]  # header, names
    left = grid[20:, :40].astype(int)  # the name column holds dark text on white
    assert (left < 128).any() and (left == 255).mean() > 0.5


def test_the_time_estimate_leaves_the_model_and_every_rng_as_they_were():
    import random

    import numpy as np
    import torch

    from svg_pyro.demo import seconds_per_step

    svg = SVG(tiny_config())
    before = {k: v.clone() for k, v in svg.state_dict().items()}
    torch.manual_seed(3)
    np.random.seed(3)
    random.seed(3)
    assert seconds_per_step(svg, batch_size=2, seq_len=4) > 0
    after = (torch.rand(1).item(), np.random.rand(), random.random())
    torch.manual_seed(3)
    np.random.seed(3)
    random.seed(3)
    assert after == (torch.rand(1).item(), np.random.rand(), random.random())
    assert all(torch.equal(v, svg.state_dict()[k]) for k, v in before.items())
