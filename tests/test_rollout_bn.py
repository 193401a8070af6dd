"""BatchNorm statistics of the model's own forecasts (svg_pyro.rollout_bn)."""

import json
import warnings

import numpy as np
import pytest
import torch

from svg_pyro.checkpoint import load_checkpoint, load_model
from svg_pyro.cli import main
from svg_pyro.config import TrainConfig
from svg_pyro.data import write_smmnist_testset
from svg_pyro.heldout import dataset_frames
from svg_pyro.rollout_bn import batchnorms, recalibrate, saved_statistics
from svg_pyro.svg import SVG
from svg_pyro.train import Trainer
from tests.conftest import save_checkpoint, tiny_config
from tests.test_train import small


def _contexts(n_batches, batch=3, n_past=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(batch, n_past, 1, 64, 64, generator=g) for _ in range(n_batches)]


def _stats(svg):
    return [(m.running_mean.clone(), m.running_var.clone()) for m in batchnorms(svg)]


def test_statistics_are_the_average_of_every_forecast_batch():
    """By hand: each layer's running mean and variance are the plain averages of the batch means
    and (unbiased) variances of every call it saw while forecasting, contexts included."""
    svg = SVG(tiny_config(skip_source="previous"))
    seen = {m: [] for m in batchnorms(svg)}

    def record(module, inputs, _):
        x = inputs[0].double()
        dims = [0, *range(2, x.dim())]
        seen[module].append((x.mean(dims), x.var(dims, unbiased=True)))

    hooks = [m.register_forward_hook(record) for m in seen]
    params = {k: v.clone() for k, v in svg.named_parameters()}
    momenta = [m.momentum for m in seen]
    svg.eval()
    n = recalibrate(svg, _contexts(2), n_future=3, n_samples=2)
    for h in hooks:
        h.remove()
    assert n == 2 * 3 * 2
    for m, calls in seen.items():
        # the encoder sees the context once per batch and every generated frame but the last
        assert len(calls) >= 2
        mean = torch.stack([c[0] for c in calls]).mean(0)
        var = torch.stack([c[1] for c in calls]).mean(0)
        torch.testing.assert_close(m.running_mean.double(), mean, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(m.running_var.double(), var, rtol=1e-4, atol=1e-5)
        assert int(m.num_batches_tracked) == len(calls)
    assert not svg.training and [m.momentum for m in seen] == momenta
    for k, v in svg.named_parameters():  # nothing learned changes
        assert torch.equal(v, params[k]), k


def test_no_context_or_a_failing_forecast_leaves_the_statistics_as_they_were():
    svg = SVG(tiny_config(skip_source="previous"))
    before = _stats(svg)
    with pytest.raises(ValueError, match="no context"):
        recalibrate(svg, [], n_future=3)
    bad = [_contexts(1)[0], torch.rand(3, 2, 1, 32, 32)]  # the second batch has the wrong size
    with pytest.raises(ValueError):
        recalibrate(svg, bad, n_future=3)
    for (m0, v0), (m1, v1) in zip(before, _stats(svg)):
        assert torch.equal(m0, m1) and torch.equal(v0, v1)
    assert svg.training and all(m.momentum == 0.1 for m in batchnorms(svg))


def test_saved_statistics_puts_them_back():
    svg = SVG(tiny_config())
    before = _stats(svg)
    with saved_statistics(svg):
        recalibrate(svg, _contexts(1), n_future=2)
        assert any(not torch.equal(a[0], b[0]) for a, b in zip(before, _stats(svg)))
    for (m0, v0), (m1, v1) in zip(before, _stats(svg)):
        assert torch.equal(m0, m1) and torch.equal(v0, v1)


def test_training_split_frames_are_fixed_and_not_the_test_split():
    a = dataset_frames("smmnist", "train", 4, 7, 3, 1)
    assert a.shape == (4, 3, 1, 64, 64) and a.dtype == np.uint8 and a.max() > 0
    assert np.array_equal(a, dataset_frames("smmnist", "train", 4, 7, 3, 1).copy())
    assert not np.array_equal(a, dataset_frames("smmnist", "test", 4, 7, 3, 1))
    with pytest.raises(ValueError, match="data-root"):
        dataset_frames("kth", "train", 2, 0, 3)


def test_heldout_bn_setting_is_checked():
    with pytest.raises(ValueError, match="heldout_bn"):
        TrainConfig(heldout_bn="batch")


@pytest.mark.parametrize(
    "skip_source,setting,expected",
    [("previous", "auto", "rollout"), ("last_context", "auto", "running"),
     ("last_context", "rollout", "rollout"), ("previous", "running", "running")],
)  # fmt: skip
def test_heldout_scores_say_which_statistics_and_leave_the_run_alone(
    tmp_path, skip_source, setting, expected
):
    kw = dict(eval_every=2, eval_sequences=3, eval_samples=2, skip_source=skip_source)
    model_cfg, train_cfg = small(2, heldout_bn=setting, **kw)
    Trainer(model_cfg, train_cfg, tmp_path / "a").fit(progress=False)
    Trainer(model_cfg, small(2, heldout_bn="running", **kw)[1], tmp_path / "b").fit(progress=False)
    rows = {}
    for run in ("a", "b"):
        lines = (tmp_path / run / "metrics.jsonl").read_text().splitlines()
        rows[run] = [json.loads(x) for x in lines if '"eval": true' in x][0]
        rows[run]["weights"] = load_checkpoint(tmp_path / run / "checkpoint.pt")["model"]
    assert rows["a"]["bn_statistics"] == expected
    same = rows["a"]["ssim_best"] == rows["b"]["ssim_best"]
    assert same == (expected == "running")  # the rollout statistics do change the scores
    for k, v in rows["b"]["weights"].items():  # the run's statistics are its own again
        assert torch.equal(v, rows["a"]["weights"][k]), k


def test_command_writes_a_weights_only_checkpoint_that_loads(tmp_path, capsys):
    torch.manual_seed(0)
    source = save_checkpoint(SVG(tiny_config(skip_source="previous")), tmp_path / "c.pt")
    out = tmp_path / "r.pt"
    argv = ["recalibrate-bn", "--checkpoint", str(source), "--out", str(out), "--sequences", "4",
            "--samples", "2", "--batch-size", "2", "--n-past", "2", "--n-future", "3",
            "--device", "cpu"]  # fmt: skip
    assert main(argv) == 0
    assert "BatchNorm statistics of 8 forecasts" in capsys.readouterr().out
    ckpt = load_checkpoint(out)
    assert "optimizer" not in ckpt and ckpt["meta"]["batchnorm"]["forecasts"] == 8
    svg, _ = load_model(out)
    old, _ = load_model(source)
    for (k, v), (_, w) in zip(svg.state_dict().items(), old.state_dict().items()):
        changed = not torch.equal(v, w)
        assert changed == (k.endswith(("running_mean", "running_var", "num_batches_tracked"))), k
    assert main(argv[:-2] + ["--device", "cpu", "--sequences", "0"]) == 2


def test_best_checkpoint_restarts_when_the_statistics_change(tmp_path):
    """Scores under running statistics (a run from before heldout_bn) do not compare with rollout
    ones: the first rollout score makes best.pt whatever the earlier scores were."""
    kw = dict(eval_every=2, eval_sequences=3, eval_samples=2, skip_source="previous")
    model_cfg, before = small(2, heldout_bn="running", **kw)
    Trainer(model_cfg, before, tmp_path).fit(progress=False)
    best = load_checkpoint(tmp_path / "best.pt")["best"]
    assert (best["step"], best["bn_statistics"]) == (2, "running")
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    ckpt["best"]["score"] = 1.0  # no later score beats it under the same statistics
    torch.save(ckpt, tmp_path / "checkpoint.pt")
    Trainer(model_cfg, small(4, **kw)[1], tmp_path, resume=True).fit(progress=False)
    best = load_checkpoint(tmp_path / "best.pt")["best"]
    assert (best["step"], best["bn_statistics"]) == (4, "rollout")


def test_export_warns_without_rollout_statistics_and_records_them(tmp_path, capsys):
    torch.manual_seed(0)
    source = save_checkpoint(SVG(tiny_config(skip_source="previous")), tmp_path / "c.pt")
    export = ["export-weights", "--name", "tiny-prev", "--weights-dir", str(tmp_path / "w")]
    assert main(export + ["--checkpoint", str(source)]) == 0
    assert "Run svg-pyro recalibrate-bn" in capsys.readouterr().out
    out = tmp_path / "r.pt"
    argv = ["recalibrate-bn", "--checkpoint", str(source), "--out", str(out), "--sequences", "2",
            "--samples", "1", "--n-past", "2", "--n-future", "2", "--device", "cpu"]  # fmt: skip
    assert main(argv) == 0
    assert main(export + ["--checkpoint", str(out)]) == 0
    assert "recalibrate-bn" not in capsys.readouterr().out
    shipped = load_checkpoint(tmp_path / "w" / "tiny-prev.pt")
    assert shipped["meta"]["batchnorm"]["forecasts"] == 2


def test_forecasting_with_statistics_of_true_frames_warns(tmp_path):
    from svg_pyro.rollout_bn import warn_if_statistics_of_true_frames

    prev, last = SVG(tiny_config(skip_source="previous")), SVG(tiny_config())
    with pytest.warns(UserWarning, match="recalibrate-bn"):
        assert warn_if_statistics_of_true_frames(prev, {"meta": {}})
    calibrated = {"meta": {"batchnorm": {"statistics": "rollout"}}}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not warn_if_statistics_of_true_frames(prev, calibrated)
        assert not warn_if_statistics_of_true_frames(prev, {}, bn_train_mode=True)
        assert not warn_if_statistics_of_true_frames(last, {})
    # the commands that forecast say it
    source = save_checkpoint(prev, tmp_path / "c.pt")
    testset = write_smmnist_testset(tmp_path / "t.npz", sequences=2, frames=5, num_digits=1,
                                    seed=0, progress=False)  # fmt: skip
    argv = ["evaluate", "--checkpoint", str(source), "--testset", str(testset),
            "--n-samples", "1", "--n-past", "2", "--n-future", "3", "--device", "cpu",
            "--no-progress", "--json", str(tmp_path / "e.json")]  # fmt: skip
    with pytest.warns(UserWarning, match="recalibrate-bn"):
        assert main(argv) == 0
