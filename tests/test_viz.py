"""The run-folder reader and the curve plots of :mod:`svg_pyro.viz`."""

import json

import numpy as np
import pytest
from PIL import Image

from svg_pyro.viz import plot_metrics, plot_runs, read_metrics


def _write_run(folder, rows, tail=""):
    folder.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r) + "\n" for r in rows) + tail
    (folder / "metrics.jsonl").write_text(text)
    return folder


TRAIN = [
    {"step": s, "loss": 1.0 / s, "recon": 0.9 / s, "kl": 2.0 + s, "neg_elbo": 10.0, "seconds": s}
    for s in (1, 2, 3, 4)
]
HELD = [
    {"step": s, "eval": True, "ssim_best": 0.1 * s, "copy_last_ssim": 0.5, "blank_ssim": 0.6,
     "test_elbo_per_frame": -10.0 * s, "seconds": s}
    for s in (2, 4)
]  # fmt: skip


def test_read_metrics_separates_training_and_held_out_rows(tmp_path):
    run = _write_run(
        tmp_path / "run", TRAIN[:2] + HELD[:1] + TRAIN[2:] + HELD[1:], '{"step": 5, "lo'
    )
    curves = read_metrics(run)
    assert curves["train"]["step"].tolist() == [1, 2, 3, 4]  # the cut last line is skipped
    assert curves["train"]["loss"].tolist() == [1.0, 0.5, 1 / 3, 0.25]
    assert curves["eval"]["step"].tolist() == [2, 4]
    np.testing.assert_allclose(curves["eval"]["ssim_best"], [0.2, 0.4])
    assert "loss" not in curves["eval"] and "ssim_best" not in curves["train"]
    assert "eval" not in curves["eval"]  # the row marker is not a column
    # the folder or the file itself
    assert read_metrics(run / "metrics.jsonl")["eval"]["step"].tolist() == [2, 4]


def test_read_metrics_fills_missing_values_with_nan(tmp_path):
    rows = [{"step": 1, "loss": 1.0}, {"step": 2, "loss": None, "kl": 3.0}]
    curves = read_metrics(_write_run(tmp_path / "run", rows))
    assert np.isnan(curves["train"]["loss"][1]) and np.isnan(curves["train"]["kl"][0])


def test_read_metrics_refuses_a_folder_without_metrics(tmp_path):
    with pytest.raises(FileNotFoundError, match="no metrics.jsonl"):
        read_metrics(tmp_path)


def test_plot_metrics_draws_runs_with_held_out_rows(tmp_path):
    # the rows that broke `make demo`: held-out rows have no `loss`
    mixed = _write_run(tmp_path / "mixed", TRAIN + HELD)
    train_only = _write_run(tmp_path / "train", TRAIN)
    wide = Image.open(plot_metrics(mixed, tmp_path / "mixed.png")).size[0]
    narrow = Image.open(plot_metrics(train_only / "metrics.jsonl", tmp_path / "t.png")).size[0]
    assert wide > narrow  # the held-out SSIM panel is added only when there are held-out rows


def test_plot_metrics_refuses_a_run_without_training_rows(tmp_path):
    with pytest.raises(ValueError, match="no training rows"):
        plot_metrics(_write_run(tmp_path / "run", HELD), tmp_path / "x.png")


def test_plot_runs_draws_several_runs(tmp_path):
    a = _write_run(tmp_path / "a", TRAIN + HELD)
    b = _write_run(tmp_path / "b", TRAIN)
    assert Image.open(plot_runs([a, b], tmp_path / "cmp.png")).size[0] > 400


def test_held_out_rows_under_other_batchnorm_statistics_are_drawn_apart(tmp_path):
    from svg_pyro.viz import _segments

    held = [dict(r, bn_statistics=b) for r, b in zip(HELD, ("running", "rollout"))]
    run = _write_run(tmp_path / "run", TRAIN + held)
    curves = read_metrics(run)
    assert curves["eval"]["rollout_bn"].tolist() == [0.0, 1.0]
    split = [(m.tolist(), label) for m, label, _ in _segments(curves["eval"], "eval")]
    assert split == [([True, False], ""), ([False, True], " (rollout BN)")]
    one = [(m.tolist(), label) for m, label, _ in _segments(read_metrics(
        _write_run(tmp_path / "old", TRAIN + HELD))["eval"], "eval")]  # fmt: skip
    assert one == [([True, True], "")]
    assert [m.tolist() for m, _, _ in _segments(curves["train"], "train")] == [[True] * 4]
    assert Image.open(plot_runs([run], tmp_path / "runs.png")).size[0] > 0
    assert Image.open(plot_metrics(run, tmp_path / "one.png")).size[0] > 0
