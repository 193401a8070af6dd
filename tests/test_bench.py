"""The benchmark: `svg-pyro bench`, the plain-loop baseline, the comparison script, and the
speed settings of training (bf16 autocast, compile, channels_last, fused Adam)."""

import argparse
import importlib.util
import json
import subprocess
import sys
import warnings
from pathlib import Path

import pyro
import pytest
import torch

from svg_pyro import SVG, SVGConfig, SVGLoss
from svg_pyro.bench import (
    DirectSVGLoss,
    add_bench_arguments,
    count_cost,
    count_once,
    svg_cost_runner,
)
from svg_pyro.bench import model_config as bench_model_config
from svg_pyro.bench import train_config as bench_train_config
from svg_pyro.commands.cli import main
from svg_pyro.config import TrainConfig, build_configs
from svg_pyro.device import autocast
from svg_pyro.train import Trainer, make_adam

ROOT = Path(__file__).resolve().parents[1]
TINY_FLAGS = [
    "--nf", "4", "--g-dim", "8", "--z-dim", "3", "--rnn-size", "16", "--batch-size", "3",
    "--frames", "5", "--n-past", "2", "--steps", "1", "--warmup", "1",
]  # fmt: skip


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / f"benchmarks/{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


plain_svg = _load("plain_svg")
compare = _load("compare")


def tiny(**kw) -> SVGConfig:
    base = dict(nf=4, g_dim=8, z_dim=3, rnn_size=16, predictor_layers=2, n_past=2, n_future=3)
    base.update(kw)
    return SVGConfig(**base)


# -- the same objective three ways ---------------------------------------------------------------
def test_direct_loss_equals_pyro_loss_value_and_gradients(frames):
    svg = SVG(tiny())
    pyro_loss, direct = SVGLoss(svg), DirectSVGLoss(svg)
    results = []
    for fn in (pyro_loss, direct):
        pyro.set_rng_seed(3)
        svg.zero_grad()
        with pyro.validation_enabled(False):
            loss = fn(frames)
        loss.backward()
        grads = {n: p.grad.clone() for n, p in svg.named_parameters()}
        results.append((loss.detach(), dict(fn.last_terms), grads))
    (l1, t1, g1), (l2, t2, g2) = results
    assert torch.allclose(l1, l2, rtol=1e-5), (l1, l2)
    for k in ("loss", "recon", "kl", "neg_elbo"):
        assert torch.allclose(t1[k], t2[k], rtol=1e-5, atol=1e-7), k
    scale = torch.cat([g.flatten() for g in g1.values()]).norm()
    for name in g1:  # (conv biases before BatchNorm have only round-off gradients: compare to
        # the gradient's overall size, not each tensor's own)
        assert (g1[name] - g2[name]).norm() <= 1e-5 * scale, name


@pytest.mark.parametrize("skip_source", ["last_context", "original", "previous"])
def test_plain_loop_computes_the_papers_objective(frames, skip_source):
    """Same weights, BatchNorm in eval mode (per-frame and batched encoding then agree) and a
    posterior with negligible spread, so both draw z = mu: the plain loop's hand-written
    MSE + beta * KL equals the Pyro loss's paper objective."""
    cfg = tiny(skip_source=skip_source, n_past=3, n_future=2, beta=0.5)
    svg = SVG(cfg)
    with torch.no_grad():
        svg.posterior.net.logvar.weight.zero_()
        svg.posterior.net.logvar.bias.fill_(-30.0)
    net = plain_svg.PlainSVG(cfg).load_from(svg)
    svg.eval(), net.eval()
    loss_fn = SVGLoss(svg)
    with torch.no_grad():
        loss_fn(frames)
        loss, mse, kld = plain_svg.plain_loss(net, frames)
    terms = loss_fn.last_terms
    assert kld > 1.0  # the KL path is exercised, not just the reconstruction
    assert torch.allclose(mse, terms["recon"], rtol=1e-4), (mse, terms["recon"])
    assert torch.allclose(kld, terms["kl"], rtol=1e-4), (kld, terms["kl"])
    assert torch.allclose(loss, terms["loss"], rtol=1e-4), (loss, terms["loss"])


def test_plain_loop_step_trains_and_reports_floats(frames):
    trainer = plain_svg.PlainTrainer(tiny(), lr=1e-3)
    before = [p.detach().clone() for p in trainer.net.parameters()]
    mse, kld = trainer.step(frames)
    assert isinstance(mse, float) and isinstance(kld, float) and mse > 0 and kld >= 0
    changed = [not torch.equal(a, b) for a, b in zip(before, trainer.net.parameters())]
    assert all(changed)  # every network, the LSTM cells included, gets gradients


# -- counting ------------------------------------------------------------------------------------
def test_rnn_flop_formula_matches_the_decomposed_lstm():
    """FlopCounterMode sees the oneDNN LSTM as one opaque kernel; our formula for it must give
    what the counter finds when the LSTM is decomposed into matrix products."""
    lstm = torch.nn.LSTM(12, 20, num_layers=2, batch_first=True)
    x = torch.randn(3, 7, 12, requires_grad=True)

    def run():
        y, _ = lstm(x)
        y.sum().backward()

    fused, _ = count_once(run, list(lstm.parameters()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.backends.mkldnn.flags(enabled=False):
            decomposed, _ = count_once(run, list(lstm.parameters()))
    assert decomposed > 0
    # (the decomposed backward skips the gradient into the zero initial state: 1/T of the
    # recurrent products' input gradients, ~3% here)
    assert fused == pytest.approx(decomposed, rel=0.05)


def test_cost_extrapolation_is_exact_at_another_batch():
    run, params = svg_cost_runner(tiny(), "fp32")
    predicted = count_cost(run, 5, params)
    flops, saved = count_once(lambda: run(5), params)
    assert predicted["flops"] == flops
    assert predicted["saved_bytes"] == pytest.approx(saved, rel=1e-2)
    # the forward FLOPs of the encoder alone, by hand: 2 * out elements * (C_in * k * k)
    cfg = tiny()
    c_in = [cfg.channels, cfg.nf, 2 * cfg.nf, 4 * cfg.nf]
    hand = sum(2 * (cfg.nf * 2**i) * (32 // 2**i) ** 2 * c_in[i] * 16 for i in range(4))
    hand += 2 * cfg.g_dim * cfg.nf * 8 * 16  # the 4x4 -> 1x1 head
    enc = SVG(cfg).encoder.eval()
    counted, _ = count_once(lambda: enc(torch.rand(1, 1, 64, 64)), [])
    assert counted == hand


# -- the command line and the scripts ------------------------------------------------------------
def test_bench_cli_json_train(capsys):
    assert main(["bench", "--json", *TINY_FLAGS]) == 0
    rec = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("seq_per_s", "step_ms", "device", "precision", "config", "flops_per_step", "mfu"):
        assert key in rec, key
    assert rec["impl"] == "svg-pyro" and rec["device"] == "cpu" and rec["precision"] == "fp32"
    assert rec["config"]["batch_size"] == 3 and rec["config"]["frames"] == 5
    assert rec["seq_per_s"] == pytest.approx(3 / (rec["step_ms"] / 1e3), rel=1e-3)
    assert rec["flops_per_step"] > 0 and 0 < rec["mfu"] < 1


def test_bench_cli_json_sample_bf16(capsys):
    args = ["bench", "--json", "--mode", "sample", "--samples", "2", "--precision", "bf16"]
    assert main(args + TINY_FLAGS + ["--no-count"]) == 0
    rec = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rec["mode"] == "sample" and rec["precision"] == "bf16"
    # 2 samples x 3 sequences x 3 future frames per call
    assert rec["frames_per_s"] == pytest.approx(18 / (rec["step_ms"] / 1e3), rel=1e-3)
    assert "mfu" not in rec


def test_bench_cli_rejects_bad_settings(capsys):
    assert main(["bench", "--frames", "3", "--n-past", "3"]) == 2
    assert "--frames" in capsys.readouterr().err


def test_plain_script_refuses_levers():
    assert plain_svg.main(["--precision", "bf16", *TINY_FLAGS]) == 2


def test_bench_conv_variant(capsys):
    flags = ["--rnn", "conv", "--feature-size", "4", "--z-dim", "2"]
    assert main(["bench", "--json", *TINY_FLAGS, *flags]) == 0
    rec = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rec["config"]["rnn"] == "conv" and rec["config"]["feature_size"] == 4
    assert rec["config"]["z_dim"] == 2 and rec["seq_per_s"] > 0 and rec["params"] > 0
    assert compare.main([*TINY_FLAGS, "--rnn", "conv", "--no-count"]) == 2


def test_compare_script_smoke():
    """The side-by-side script runs on CPU with tiny settings and prints a ratio (not timed)."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks/compare.py"), *TINY_FLAGS, "--rounds", "2"]
        + ["--with-plain-skips"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    ratio = out["ratio_seq_per_s"]
    assert len(ratio["rounds"]) == 2 and ratio["min"] <= ratio["median"] <= ratio["max"]
    assert ratio["min"] > 0
    assert set(out["records"]) == {"svg-pyro", "direct", "plain-loop", "svg-pyro-plain-skips"}
    assert out["records"]["plain-loop"]["precision"] == "fp32"
    assert not out["records"]["svg-pyro-plain-skips"]["shared_skips"]
    assert out["records"]["svg-pyro"]["shared_skips"] and "ratio_plain_skips" in out
    # the plain loop encodes every input frame twice, and decodes every frame's skip half:
    # more FLOPs for the same networks
    flops = {k: r["flops_per_step"] for k, r in out["records"].items()}
    assert flops["plain-loop"] > flops["svg-pyro-plain-skips"] > flops["svg-pyro"]
    assert flops["svg-pyro"] == flops["direct"]
    assert "pyro_overhead" in out and "ratio" in proc.stderr


# -- the speed settings of training ---------------------------------------------------------------
def test_train_config_validates_precision():
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(precision="fp16")
    # the bench's flags reach the training settings it times
    parser = argparse.ArgumentParser()
    add_bench_arguments(parser)
    args = parser.parse_args(["--precision", "bf16", "--compile", "--channels-last"])
    cfg = bench_train_config(args)
    assert (cfg.precision, cfg.compile, cfg.channels_last) == ("bf16", True, True)
    plain = bench_train_config(parser.parse_args([]))
    assert (plain.precision, plain.compile, plain.channels_last) == ("fp32", False, False)


def test_size_flag_names_the_cpu_recipe_and_explicit_flags_win():
    parser = argparse.ArgumentParser()
    add_bench_arguments(parser)
    preset_model, preset_train = build_configs("smmnist-cpu")
    args = parser.parse_args(["--size", "smmnist-cpu"])
    model, train = bench_model_config(args), bench_train_config(args)
    for key in ("nf", "g_dim", "z_dim", "rnn_size", "n_past", "n_future", "predictor_layers"):
        assert getattr(model, key) == getattr(preset_model, key), key
    assert (train.batch_size, train.channels_last) == (preset_train.batch_size, True)
    args = parser.parse_args(["--size", "smmnist-cpu-nf16", "--batch-size", "4"])
    assert (bench_model_config(args).nf, bench_model_config(args).rnn_size) == (16, 256)
    assert bench_train_config(args).batch_size == 4  # given explicitly
    args = parser.parse_args(["--size", "smmnist-cpu", "--no-channels-last", "--nf", "4"])
    assert not bench_train_config(args).channels_last and bench_model_config(args).nf == 4
    paper = bench_model_config(parser.parse_args([]))
    assert (paper.nf, paper.g_dim, paper.rnn_size) == (64, 128, 256)


def test_bf16_autocast_runs_networks_in_bf16_and_keeps_the_loss_fp32(frames):
    svg = SVG(tiny())
    seen = []
    svg.encoder.register_forward_hook(lambda m, i, o: seen.append(o[0].dtype))
    with pyro.validation_enabled(False), autocast(torch.device("cpu"), "bf16"):
        loss = SVGLoss(svg)(frames)
    assert seen == [torch.bfloat16]
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert all(p.grad.dtype == torch.float32 for p in svg.parameters() if p.grad is not None)


def test_speed_settings_leave_checkpoints_unchanged(tmp_path):
    model_cfg, train_cfg = build_configs(
        "tiny", nf=4, g_dim=8, rnn_size=16, device="cpu", compile=True, channels_last=True
    )
    trainer = Trainer(model_cfg, train_cfg, tmp_path)
    plain_keys = list(SVG(model_cfg).state_dict())
    assert list(trainer.svg.state_dict()) == plain_keys  # no "_orig_mod." from compile
    conv = trainer.svg.encoder.blocks[1][0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last)
    assert trainer.optimizer.defaults.get("fused") is True


def test_make_adam_fused_step_matches_plain_adam():
    torch.manual_seed(0)
    a, b = torch.nn.Linear(5, 3), torch.nn.Linear(5, 3)
    b.load_state_dict(a.state_dict())
    cfg = TrainConfig(lr=0.01)
    fused, ref = make_adam(a, cfg), torch.optim.Adam(b.parameters(), lr=0.01)
    for _ in range(3):
        x = torch.randn(4, 5)
        for m, opt in ((a, fused), (b, ref)):
            opt.zero_grad()
            m(x).pow(2).sum().backward()
            opt.step()
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.allclose(p, q, atol=1e-6)


def _loss_curve(tmp_path, **kw):
    model_cfg, train_cfg = build_configs(
        "tiny", nf=4, g_dim=16, rnn_size=32, batch_size=4, n_past=2, n_future=3, steps=15,
        log_every=1, checkpoint_every=1000, device="cpu", **kw,
    )  # fmt: skip
    records = Trainer(model_cfg, train_cfg, tmp_path).fit(progress=False)
    return torch.tensor([r["loss"] for r in records])


def test_bf16_loss_curve_matches_fp32(tmp_path):
    fp32 = _loss_curve(tmp_path / "fp32")
    bf16 = _loss_curve(tmp_path / "bf16", precision="bf16")
    assert fp32[-3:].mean() < 0.9 * fp32[:3].mean()  # it is learning
    assert torch.allclose(bf16, fp32, rtol=0.02), (fp32, bf16)


@pytest.mark.slow
def test_compiled_loss_curve_matches_fp32(tmp_path):
    eager = _loss_curve(tmp_path / "eager")
    compiled = _loss_curve(tmp_path / "compiled", compile=True)
    assert torch.allclose(compiled, eager, rtol=1e-3), (eager, compiled)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_bench_bf16_compile_reports_memory(capsys):
    args = ["bench", "--json", "--device", "cuda", "--precision", "bf16", "--compile"]
    assert main(args + ["--channels-last", *TINY_FLAGS]) == 0
    rec = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rec["device"].startswith("cuda") and rec["peak_memory_mb"] > 0


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_bf16_loss_curve_matches_fp32(tmp_path):
    def curve(path, **kw):
        model_cfg, train_cfg = build_configs(
            "tiny", batch_size=16, steps=30, log_every=1, device="cuda", **kw
        )
        return torch.tensor(
            [r["loss"] for r in Trainer(model_cfg, train_cfg, path).fit(progress=False)]
        )

    fp32 = curve(tmp_path / "a")
    fast = curve(tmp_path / "b", precision="bf16", compile=True, channels_last=True)
    assert torch.allclose(fast, fp32, rtol=0.03), (fp32, fast)


def test_bench_count_only_and_shared_skips_count_less_work(capsys):
    flags = ["bench", "--json", "--count-only", *TINY_FLAGS]
    assert main(flags + ["--no-shared-skips"]) == 0
    plain = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert main(flags) == 0
    shared = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert not plain["shared_skips"]
    assert plain["step_ms"] is None and plain["seq_per_s"] is None and "mfu" not in plain
    assert plain["activations_mb"] > 0 and plain["train_state_mb"] > plain["activations_mb"]
    assert shared["shared_skips"] and 0 < shared["flops_per_step"] < plain["flops_per_step"]


def test_recipe_study_adds_a_scored_snapshot_and_plots_the_table(tmp_path, capsys):
    study = _load("recipe_study")
    curves = tmp_path / "curves.csv"
    old_fields = [f for f in study.FIELDS if f not in ("val_identity_mean20", "val_ink_ratio_last")]
    curves.write_text(",".join(old_fields) + "\nlp-nf16,100,1600,0.5,-2450.0,0.4,13.5,first\n")
    scores = {
        "methods": {
            "svg-lp": {"iwae": {"elbo_nats_per_frame": {"mean": -2440.0}},
                       "ssim": {"avg": {"best": 0.5}}, "psnr": {"avg": {"best": 13.7}}},
            "blank": {"ssim": {"avg": {"best": 0.68}}, "psnr": {"avg": {"best": 13.0}}},
            "copy-last": {"ssim": {"avg": {"best": 0.54}}, "psnr": {"avg": {"best": 11.4}}},
        }
    }  # fmt: skip
    path = tmp_path / "val.json"
    path.write_text(json.dumps(scores))
    add = ["--curves", str(curves), "add", "--run", "lp-nf16", "--json", str(path), "--hours", "1"]
    study.main([*add, "--step", "300", "--batch", "16"])
    model = {"identity_frames_mean": 2.5, "ink_by_frame": [0.05, 0.02]}
    truth = {"identity_frames_mean": 14.0, "ink_by_frame": [0.05, 0.08]}
    ident = {"methods": {"model": model, "truth": truth}}
    (tmp_path / "id.json").write_text(json.dumps(ident))
    study.main([*add, "--step", "400", "--batch", "16", "--identity", str(tmp_path / "id.json")])
    assert curves.read_text().splitlines()[0] == ",".join(study.FIELDS)  # header upgraded
    runs = study.read_curves(curves)
    first, scored = runs["lp-nf16"][0], runs["lp-nf16"][2]
    assert (
        first["val_ssim_best20"] == 0.4
        and first["val_identity_mean20"] != first["val_identity_mean20"]
    )  # nan
    assert (scored["val_identity_mean20"], scored["val_ink_ratio_last"]) == (2.5, 0.25)
    assert [r["run"] for r in sum(runs.values(), [])].count("blank") == 1
    assert runs["blank"][0]["step"] is None and runs["blank"][0]["val_ssim_best20"] == 0.68
    new = runs["lp-nf16"][1]
    assert (new["step"], new["sequences"], new["val_elbo"], new["val_ssim_best20"]) == (
        300,
        4800,
        -2440.0,
        0.5,
    )
    capsys.readouterr()
    study.main(["--curves", str(curves), "plot", "--out", str(tmp_path / "c.png")])
    table = capsys.readouterr().out
    assert "| lp-nf16 | 300 | 4,800 | 1.00 | -2440.0 | 0.500 | 13.70 | - | - |" in table
    assert "| lp-nf16 | 400 | 6,400 | 1.00 | -2440.0 | 0.500 | 13.70 | 2.50 | 0.25 |" in table
    assert (tmp_path / "c.png").stat().st_size > 0 and "| blank |" not in table
