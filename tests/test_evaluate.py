"""``svg-pyro evaluate``: scores, the copy-last baseline, the JSON, and the IWAE bound."""

import json
import math

import numpy as np
import pytest
import torch

from svg_pyro.checkpoint import load_model
from svg_pyro.commands.cli import main
from svg_pyro.data import load_frames, write_smmnist_testset
from svg_pyro.evaluate import (
    BLANK,
    COPY_LAST,
    blank,
    copy_last,
    evaluate_generator,
    markdown_tables,
    run_evaluation,
)
from svg_pyro.metrics import PSNR_CAP_DB, ssim
from svg_pyro.svg import sampling_mode
from tests.conftest import F, P


def static_testset(path, n=4):
    """Sequences whose frames never change: a random image repeated P + F times."""
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(n, 1, 1, 64, 64), dtype=np.uint8)
    with open(path, "wb") as f:
        np.savez(f, frames=np.repeat(img, P + F, axis=1))
    return path


def test_copy_last_on_a_static_sequence_is_perfect(tmp_path):
    frames = np.load(static_testset(tmp_path / "s.npz"))["frames"]
    out = evaluate_generator(copy_last, frames, P, F, 1, batch_size=3, progress=False)
    for key in ("best", "mean", "worst"):
        assert out["ssim"][key].shape == (4, F)
        assert torch.allclose(out["ssim"][key], torch.ones(4, F, dtype=torch.float64), atol=1e-6)
        assert torch.all(out["psnr"][key] == PSNR_CAP_DB)
    uncapped = evaluate_generator(copy_last, frames, P, F, 1, psnr_cap=None, progress=False)
    assert torch.all(torch.isinf(uncapped["psnr"]["best"]))


def test_copy_last_cli_json_uncapped_writes_null(tmp_path, trained):
    path = static_testset(tmp_path / "s.npz")
    out = tmp_path / "r.json"
    argv = ["evaluate", "--checkpoint", str(trained["det"]), "--testset", str(path),
            "--n-samples", "2", "--n-past", str(P), "--n-future", str(F), "--json", str(out),
            "--psnr-cap", "inf", "--device", "cpu", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    res = json.loads(out.read_text())["methods"][COPY_LAST]
    assert res["psnr"]["best"] == [None] * F
    assert res["ssim"]["best"] == pytest.approx([1.0] * F, abs=1e-6)


def test_copy_last_moves_nothing():
    ctx = torch.rand(2, P, 1, 64, 64)
    out = copy_last(ctx, F, 3)
    assert out.shape == (3, 2, F, 1, 64, 64)
    assert torch.equal(out[2, 1, F - 1], ctx[1, -1])


def test_blank_is_empty_frames():
    out = blank(torch.rand(2, P, 3, 64, 64), F, 3)
    assert out.shape == (3, 2, F, 3, 64, 64) and not out.any()


def test_evaluation_json_shape_and_order(tmp_path, trained):
    out, plot = tmp_path / "r.json", tmp_path / "curves.png"
    argv = ["evaluate", "--checkpoint", str(trained["lp"]), "--testset", str(trained["testset"]),
            "--n-samples", "6", "--n-past", str(P), "--n-future", str(F),
            "--compare", str(trained["det"]), "--json", str(out), "--plot", str(plot),
            "--batch-size", "5", "--iwae", "3", "--device", "cpu", "--no-progress",
            "--markdown", str(tmp_path / "r.md")]  # fmt: skip
    assert main(argv) == 0
    res = json.loads(out.read_text())
    assert (tmp_path / "r.md").read_text() == markdown_tables(res)
    assert (res["n_samples"], res["n_sequences"], res["n_past"], res["n_future"]) == (6, 16, P, F)
    assert set(res["methods"]) == {"svg-lp", "det", COPY_LAST, BLANK}
    # the blank baseline, by hand: SSIM of empty frames against the true futures
    truth = torch.from_numpy(load_frames(trained["testset"], P + F)[:, P:]).float() / 255
    by_hand = ssim(torch.zeros_like(truth), truth).mean(0)  # [F]
    assert res["methods"][BLANK]["ssim"]["best"] == pytest.approx(by_hand.tolist(), abs=1e-5)
    for name, m in res["methods"].items():
        for metric in ("ssim", "psnr"):
            block = m[metric]
            for key in ("best", "mean", "worst", "ci95_best"):
                assert len(block[key]) == F and all(math.isfinite(v) for v in block[key])
            best, mean, worst = (np.array(block[k]) for k in ("best", "mean", "worst"))
            assert np.all(best >= mean - 1e-9) and np.all(mean >= worst - 1e-9), (name, metric)
            assert np.all(np.array(block["ci95_best"]) >= 0)
        for score in ("crps", "energy_score"):  # lower is better, one curve per method
            block = m[score]
            assert len(block["per_frame"]) == F and min(block["per_frame"]) > 0, (name, score)
            assert block["avg"]["mean"] == pytest.approx(np.mean(block["per_frame"]))
            assert block["avg"]["ci95"] >= 0
    assert res["methods"]["svg-lp"]["samples"] == 6
    assert res["methods"]["det"]["samples"] == 1  # deterministic: one sample is all of them
    w = res["methods"]["svg-lp"]["iwae"]
    assert w["particles"] == 3 and w["obs_sigma"] == pytest.approx(0.1)
    bpd = -w["iwae_nats_per_frame"]["mean"] / (4096 * math.log(2))
    assert w["iwae_bits_per_dim"]["mean"] == pytest.approx(bpd)
    assert plot.stat().st_size > 1000


def test_sampling_is_reproducible_and_bn_train_mode_keeps_running_stats(trained):
    kwargs = dict(n_samples=4, n_past=P, n_future=F, sequences=6, device="cpu", progress=False)
    a = run_evaluation(trained["lp"], trained["testset"], seed=3, **kwargs)
    b = run_evaluation(trained["lp"], trained["testset"], seed=3, **kwargs)
    assert a["methods"]["svg-lp"] == b["methods"]["svg-lp"]
    svg, _ = load_model(trained["lp"])
    svg.eval()
    before = {k: v.clone() for k, v in svg.state_dict().items()}
    with sampling_mode(svg, bn_train_mode=True):
        assert svg.training
        svg.generate(torch.rand(3, P, 1, 64, 64), F, 2)
    assert not svg.training  # the previous mode is restored
    for k, v in svg.state_dict().items():
        if not k.endswith("num_batches_tracked"):
            assert torch.equal(v, before[k]), k


def test_errors_are_one_line_exit_2(tmp_path, trained, capsys):
    short = write_smmnist_testset(tmp_path / "short.npz", sequences=2, frames=P + 1,
                                  num_digits=1, progress=False)  # fmt: skip
    argv = ["evaluate", "--checkpoint", str(trained["lp"]), "--testset", str(short),
            "--n-past", str(P), "--n-future", str(F), "--json", str(tmp_path / "r.json"),
            "--device", "cpu", "--no-progress"]  # fmt: skip
    assert main(argv) == 2
    assert "needs 5" in capsys.readouterr().err
    argv[2] = str(tmp_path / "missing.pt")
    assert main(argv) == 2


def test_crps_and_energy_score_against_a_hand_computation(tmp_path):
    """Three constant-grey samples against static frames; the scores written out by hand (to
    float32 rounding: the frames and samples are float32)."""
    frames = np.load(static_testset(tmp_path / "s.npz", n=2))["frames"]
    greys = [0.2, 0.5, 0.9]

    def three_greys(context, n_future, n_samples):
        b = context.shape[0]
        return torch.tensor(greys).view(3, 1, 1, 1, 1, 1).expand(3, b, n_future, 1, 64, 64)

    out = evaluate_generator(three_greys, frames, P, F, 3, batch_size=1, progress=False)
    truth = frames[:, P:].astype(np.float64) / 255  # [2, F, 1, 64, 64]
    spread = sum(abs(a - b) for a in greys for b in greys) / (2 * 3**2)  # E|X - X'| / 2
    for i in range(2):
        for f in range(F):
            y = truth[i, f].ravel()
            crps = np.mean([np.mean([abs(g - v) for g in greys]) - spread for v in y])
            dist = [np.sqrt(np.sum((g - y) ** 2)) for g in greys]
            es = np.mean(dist) - spread * 64  # ||(a - b) 1|| = |a - b| * sqrt(4096)
            assert out["crps"]["score"][i, f].item() == pytest.approx(crps, rel=1e-6)
            assert out["energy_score"]["score"][i, f].item() == pytest.approx(es, rel=1e-6)
    # one sample: the mean absolute error and the Euclidean distance
    one = evaluate_generator(blank, frames, P, F, 1, progress=False)
    mae = truth.reshape(2, F, -1).mean(-1)
    l2 = np.sqrt((truth.reshape(2, F, -1) ** 2).sum(-1))
    np.testing.assert_allclose(one["crps"]["score"].numpy(), mae, rtol=1e-6)
    np.testing.assert_allclose(one["energy_score"]["score"].numpy(), l2, rtol=1e-6)
    perfect = evaluate_generator(copy_last, frames, P, F, 1, progress=False)
    assert perfect["crps"]["score"].abs().max() == 0 == perfect["energy_score"]["score"].max()


def test_markdown_tables_hold_the_numbers_of_the_results():
    def block(best, mean, worst):
        return {"best": best, "mean": mean, "worst": worst,
                "avg": {"best": float(np.mean(best)), "ci95_best": 0.01,
                        "mean": float(np.mean(mean)), "ci95_mean": 0.02,
                        "worst": float(np.mean(worst)), "ci95_worst": 0.03}}  # fmt: skip

    res = {
        "n_past": 5, "n_future": 4,
        "methods": {
            "svg-lp": {"samples": 10, "ssim": block([0.9, 0.8, 0.7, 0.6], [0.8] * 4, [0.5] * 4),
                       "psnr": block([20.0, 18.0, 16.0, 14.0], [15.0] * 4, [12.0] * 4),
                       "crps": {"per_frame": [0.01, 0.02, 0.03, 0.04],
                                "avg": {"mean": 0.025, "ci95": 0.001}}},
            "blank": {"samples": 1, "ssim": block([0.68] * 4, [0.68] * 4, [0.68] * 4),
                      "psnr": block([13.1] * 4, [13.1] * 4, [13.1] * 4)},
        },
    }  # fmt: skip
    md = markdown_tables(res, frames=(1, 4, 20)).splitlines()
    assert md[2].startswith("| svg-lp | 10 | 0.7500 +- 0.0100 | 0.8000 +- 0.0200 | 0.5000 +- ")
    assert "| 17.00 +- 0.01 |" in md[2] and md[2].endswith("| 0.0250 +- 0.0010 |  |")
    assert md[3] == ("| blank | 1 | 0.6800 +- 0.0100 | = best | = best | 13.10 +- 0.01 | = best "
                     "| = best |  |  |")  # fmt: skip
    assert md[5] == "| | 1 (6) | 4 (9) |"  # frame 20 lies past the 4 predicted frames
    assert "| SSIM svg-lp best of 10 | 0.900 | 0.600 |" in md
    assert "| SSIM svg-lp worst | 0.500 | 0.500 |" in md
    assert "| SSIM blank | 0.680 | 0.680 |" in md and "| PSNR svg-lp mean | 15.00 | 15.00 |" in md
    assert "| CRPS svg-lp | 0.0100 | 0.0400 |" in md
