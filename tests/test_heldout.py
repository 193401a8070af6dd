"""Held-out evaluation while training (issue 14): rows, previews, best.pt, no effect on training."""

import json

import pytest
import torch

from svg_pyro.checkpoint import load_checkpoint, load_model
from svg_pyro.commands.cli import main
from svg_pyro.train import Trainer
from svg_pyro.viz import read_metrics
from tests.test_train import small

EVAL = dict(eval_sequences=3, eval_samples=2)


def _rows(run):
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if not r.get("eval")], [r for r in rows if r.get("eval")]


def test_short_run_writes_heldout_rows_previews_tb_images_and_best(tmp_path):
    model_cfg, train_cfg = small(4, eval_every=2, **EVAL)
    Trainer(model_cfg, train_cfg, tmp_path).fit(progress=False)
    train, held = _rows(tmp_path)
    assert [r["step"] for r in train] == [1, 2, 3, 4] and [r["step"] for r in held] == [2, 4]
    for r in held:
        assert 0 <= r["ssim_best"] <= 1 and r["ssim_best"] >= r["ssim_mean"] - 1e-6
        assert r["psnr_best"] >= r["psnr_mean"] - 1e-6 and r["test_kl_per_frame"] >= 0
        assert r["test_elbo_per_frame"] < 0 and (r["n_past"], r["n_future"]) == (5, 20)
        assert (r["samples"], r["sequences"]) == (2, 3)
        assert r["blank_ssim"] == held[0]["blank_ssim"] and r["copy_last_psnr"] > 0
    names = sorted(p.name for p in (tmp_path / "previews").iterdir())
    assert names == ["step_000002.gif", "step_000002.png", "step_000004.gif", "step_000004.png"]
    events = b"".join(p.read_bytes() for p in (tmp_path / "tb").iterdir())
    assert b"heldout/preview" in events and b"heldout/ssim_best" in events
    best = max(held, key=lambda r: r["ssim_best"])  # the first of equals
    ckpt = load_checkpoint(tmp_path / "best.pt")
    assert ckpt["step"] == best["step"] == ckpt["best"]["step"] == held[-1]["best_step"]
    assert ckpt["best"]["metric"] == "ssim_best"
    assert ckpt["best"]["score"] == pytest.approx(best["ssim_best"])
    svg, _ = load_model(tmp_path / "best.pt")  # what every command loads a checkpoint with
    assert svg.config == model_cfg


def test_heldout_eval_does_not_change_the_training_trajectory(tmp_path):
    model_cfg, plain_cfg = small(6)
    _, eval_cfg = small(6, eval_every=2, **EVAL)
    Trainer(model_cfg, plain_cfg, tmp_path / "plain").fit(progress=False)
    Trainer(model_cfg, eval_cfg, tmp_path / "eval").fit(progress=False)
    # stopped after step 3 (between evaluations) and resumed
    Trainer(model_cfg, small(3, eval_every=2, **EVAL)[1], tmp_path / "resumed").fit(progress=False)
    Trainer(model_cfg, eval_cfg, tmp_path / "resumed", resume=True).fit(progress=False)
    ref = load_checkpoint(tmp_path / "plain/checkpoint.pt")
    key = lambda r: (r["step"], r["loss"], r["kl"], r["neg_elbo"])  # noqa: E731
    plain = [key(r) for r in _rows(tmp_path / "plain")[0]]
    for run in ("eval", "resumed"):
        train, held = _rows(tmp_path / run)
        assert [key(r) for r in train] == plain, run
        assert [r["step"] for r in held] == [2, 4, 6], run
        ckpt = load_checkpoint(tmp_path / run / "checkpoint.pt")
        for k, v in ref["model"].items():
            assert torch.equal(v, ckpt["model"][k]), (run, k)
    scores = lambda run: [r["ssim_best"] for r in _rows(tmp_path / run)[1]]  # noqa: E731
    assert scores("eval") == scores("resumed")  # the same fixed set and sampling seed


def test_plot_run_draws_two_runs(tmp_path, capsys):
    model_cfg, train_cfg = small(2, eval_every=1, **EVAL)
    Trainer(model_cfg, train_cfg, tmp_path / "a").fit(progress=False)
    Trainer(model_cfg, small(2)[1], tmp_path / "b").fit(progress=False)  # no held-out rows
    a, b = read_metrics(tmp_path / "a"), read_metrics(tmp_path / "b")
    assert list(a["eval"]["step"]) == [1, 2] and len(b["eval"]) == 0
    assert list(a["train"]["step"]) == list(b["train"]["step"]) == [1, 2]
    out = tmp_path / "runs.png"
    assert main(["plot-run", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(out)]) == 0
    from PIL import Image

    assert Image.open(out).size[0] > 1000
    assert main(["plot-run", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert "no metrics.jsonl" in capsys.readouterr().err
