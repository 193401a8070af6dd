"""BatchNorm statistics of the model's own forecasts (svg_pyro.rollout_bn)."""

import json
import warnings

import numpy as np
import pytest
import torch

from svg_pyro.checkpoint import load_checkpoint, load_model
from svg_pyro.commands.cli import main
from svg_pyro.config import DataSpec, TrainConfig
from svg_pyro.data import dataset_frames, write_smmnist_testset
from svg_pyro.rollout_bn import recalibrate, recalibrated
from svg_pyro.svg import FORECASTS, SVG, TRUE_FRAMES, BatchNormStatistics, batchnorms
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


def test_recalibrated_holds_forecast_statistics_in_the_block_and_puts_them_back():
    svg = SVG(tiny_config())
    before = _stats(svg)
    counts = [int(m.num_batches_tracked) for m in batchnorms(svg)]
    assert svg.bn_statistics == BatchNormStatistics()  # a model built here: true frames
    with recalibrated(svg, _contexts(2, batch=3), n_future=2, n_samples=2) as n:
        assert n == 12
        assert any(not torch.equal(a[0], b[0]) for a, b in zip(before, _stats(svg)))
        assert svg.bn_statistics.frames == FORECASTS and svg.bn_statistics.of_forecasts
        assert svg.bn_statistics.calibration == {
            "statistics": "rollout", "forecasts": 12, "sequences": 6, "samples": 2,
            "n_past": 2, "n_future": 2,
        }  # fmt: skip
    for (m0, v0), (m1, v1) in zip(before, _stats(svg)):
        assert torch.equal(m0, m1) and torch.equal(v0, v1)
    assert [int(m.num_batches_tracked) for m in batchnorms(svg)] == counts
    assert svg.bn_statistics.frames == TRUE_FRAMES
    with pytest.raises(ValueError, match="no context"), recalibrated(svg, [], n_future=2):
        pass
    assert svg.bn_statistics.frames == TRUE_FRAMES


def test_bn_statistics_are_set_where_a_model_is_loaded_and_by_recalibrate(tmp_path):
    from svg_pyro.pretrained import load_pretrained

    torch.manual_seed(0)
    source = save_checkpoint(SVG(tiny_config()), tmp_path / "c.pt")
    svg, _ = load_model(source)
    assert svg.bn_statistics == BatchNormStatistics(TRUE_FRAMES, None)
    n = recalibrate(svg, _contexts(1), n_future=2, n_samples=1, seed=7)
    assert svg.bn_statistics.of_forecasts and svg.bn_statistics.calibration["forecasts"] == n
    assert svg.bn_statistics.calibration["seed"] == 7
    shipped = load_pretrained()  # the default: previous-frame skips, recalibrated
    assert shipped.bn_statistics.of_forecasts
    assert shipped.bn_statistics.calibration["statistics"] == "rollout"
    assert load_pretrained("smmnist-lp").bn_statistics.frames == TRUE_FRAMES


def test_training_split_frames_are_fixed_and_not_the_test_split():
    one_digit = DataSpec("smmnist", num_digits=1)
    a = dataset_frames(one_digit, "train", 4, 7, 3)
    assert a.shape == (4, 3, 1, 64, 64) and a.dtype == np.uint8 and a.max() > 0
    assert np.array_equal(a, dataset_frames(one_digit, "train", 4, 7, 3).copy())
    assert not np.array_equal(a, dataset_frames(one_digit, "test", 4, 7, 3))
    with pytest.raises(ValueError, match="data-root"):
        dataset_frames(DataSpec("kth"), "train", 2, 0, 3)


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
    old, _ = load_model(source, warn=False)  # statistics of true frames: it would warn
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
    with pytest.warns(UserWarning, match="recalibrate-bn"):  # loading it warns
        assert main(export + ["--checkpoint", str(source)]) == 0
    out = tmp_path / "r.pt"
    argv = ["recalibrate-bn", "--checkpoint", str(source), "--out", str(out), "--sequences", "2",
            "--samples", "1", "--n-past", "2", "--n-future", "2", "--device", "cpu"]  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the remedy does not warn about what it remedies
        assert main(argv) == 0
        assert main(export + ["--checkpoint", str(out)]) == 0
    assert "recalibrate-bn" not in capsys.readouterr().out
    shipped = load_checkpoint(tmp_path / "w" / "tiny-prev.pt")
    assert shipped["meta"]["batchnorm"] == load_checkpoint(out)["meta"]["batchnorm"]
    assert shipped["meta"]["batchnorm"] == {
        "statistics": "rollout", "forecasts": 2, "sequences": 2, "samples": 1, "n_past": 2,
        "n_future": 2, "seed": 12345,
    }  # fmt: skip


def test_loading_a_model_that_needs_recalibrating_warns_once(tmp_path):
    """The load warns (a previous-frame model with statistics of true frames), once: the
    commands that forecast say nothing more; a recalibrated or context-frame model is silent."""
    torch.manual_seed(0)
    prev = save_checkpoint(SVG(tiny_config(skip_source="previous")), tmp_path / "p.pt")
    last = save_checkpoint(SVG(tiny_config()), tmp_path / "l.pt")
    with pytest.warns(UserWarning, match="recalibrate-bn"):
        load_model(prev)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_model(prev, warn=False)
        load_model(last)
        svg, ckpt = load_model(prev, warn=False)
        with recalibrated(svg, _contexts(1), n_future=2):
            assert svg.bn_statistics.of_forecasts
        assert not svg.bn_statistics.of_forecasts
    testset = write_smmnist_testset(tmp_path / "t.npz", sequences=2, frames=5, num_digits=1,
                                    seed=0, progress=False)  # fmt: skip
    argv = ["evaluate", "--checkpoint", str(prev), "--testset", str(testset),
            "--n-samples", "1", "--n-past", "2", "--n-future", "3", "--device", "cpu",
            "--no-progress", "--json", str(tmp_path / "e.json")]  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(argv) == 0
    said = [w for w in caught if "recalibrate-bn" in str(w.message)]
    assert len(said) == 1, [str(w.message) for w in caught]
