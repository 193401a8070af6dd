"""svg_pyro.commands.analyze: ``svg-pyro analyze collisions``."""

import json

import matplotlib
import pytest

from svg_pyro import TrainConfig
from svg_pyro.analysis import collision_labels, prior_scale, roc_auc, smmnist_collision_data
from svg_pyro.checkpoint import load_model
from svg_pyro.commands.cli import main
from svg_pyro.train import Trainer
from tests.conftest import tiny_config

matplotlib.use("Agg")


def _checkpoint(tmp_path, prior: str, **model) -> str:
    cfg = tiny_config(prior=prior, n_past=2, n_future=4, **model)
    trainer = Trainer(
        cfg, TrainConfig(num_digits=1, batch_size=2, steps=1, device="cpu"), tmp_path / prior
    )
    return str(trainer.save())


def _analyze(ckpt: str, sequences: int, out, *extra: str) -> list[str]:
    """``svg-pyro analyze collisions`` arguments: a checkpoint, ``sequences``, a JSON report."""
    return ["analyze", "collisions", "--checkpoint", ckpt, "--sequences", str(sequences),
            "--json", str(out), "--no-progress", *extra]  # fmt: skip


def test_analyze_collisions_cli(tmp_path):
    ckpt = _checkpoint(tmp_path, "learned")
    out, png = tmp_path / "c.json", tmp_path / "c.png"
    args = _analyze(ckpt, 8, out, "--plot", str(png), "--lag", "1")
    assert main(args) == 0
    report = json.loads(out.read_text())
    assert report["sequences"] == 8 and report["frames"] == 6 and report["num_digits"] == 1
    assert png.is_file() and report["plot"] == str(png)
    # Independent recomputation with the same sequences.
    svg, _ = load_model(ckpt)
    x, bounces = smmnist_collision_data(8, 6, 1, seed=0)
    sigma = prior_scale(svg, x).mean(-1).numpy()
    hits, _ = collision_labels(bounces, 1)
    assert report["auc"] == pytest.approx(roc_auc(sigma, hits))
    assert report["n_hit"] == int(hits.sum())


def test_analyze_collisions_refuses_a_fixed_prior(tmp_path, capsys):
    ckpt = _checkpoint(tmp_path, "fixed")
    args = _analyze(ckpt, 4, tmp_path / "c.json")
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "constant" in err[0]
    assert not (tmp_path / "c.json").exists()


def test_analyze_collisions_draws_the_sigma_heatmap_of_a_convlstm_model(tmp_path):
    ckpt = _checkpoint(tmp_path, "learned", rnn="conv", feature_size=8)
    out, png = tmp_path / "c.json", tmp_path / "heat.png"
    args = _analyze(ckpt, 4, out, "--heatmap", str(png))
    assert main(args) == 0
    assert png.stat().st_size > 1000 and json.loads(out.read_text())["heatmap"] == str(png)
    # a fully connected model has no map to show
    fc = _checkpoint(tmp_path / "fc", "learned")
    assert main(_analyze(fc, 4, out, "--heatmap", str(png))) == 2
