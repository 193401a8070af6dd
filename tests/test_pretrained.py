"""Shipped weights: export, sha256-checked weights-only loading, names accepted as checkpoints."""

import json

import pyro
import pytest
import torch

from svg_pyro import SVG, pretrained
from svg_pyro.checkpoint import load_checkpoint, load_model
from tests.conftest import tiny_config


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    """A tiny model exported as the shipped model ``tiny-lp`` into a temporary weights folder."""
    monkeypatch.setattr(pretrained, "WEIGHTS_DIR", tmp_path)
    svg = SVG(tiny_config())
    with torch.no_grad():  # non-trivial BatchNorm statistics, so eval mode differs from train
        for m in svg.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    ckpt = {"model": svg.state_dict(), "config": svg.config.to_dict(), "step": 7,
            "train_config": {"dataset": "smmnist"}, "optimizer": {"state": {}}}  # fmt: skip
    path = pretrained.export_weights(ckpt, "tiny-lp", meta={"steps": 7})
    (tmp_path / "tiny-lp.md").write_text("# tiny-lp\n")
    return svg, path


def test_export_writes_fp16_weights_only_and_registers_hash(shipped, tmp_path):
    _, path = shipped
    data = torch.load(path, weights_only=True)
    assert set(data) == {"format", "model", "config", "train_config", "step", "meta"}
    floats = [v for v in data["model"].values() if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float16 for v in floats)
    registry = json.loads((tmp_path / "registry.json").read_text())
    assert registry["tiny-lp"]["sha256"] == pretrained.sha256(path)
    assert pretrained.available() == ["tiny-lp"]
    assert pretrained.model_card("tiny-lp") == "# tiny-lp\n"


def test_load_pretrained_is_in_eval_mode_and_samples_match_fp32_within_1e3(shipped):
    svg, _ = shipped
    loaded = pretrained.load_pretrained("tiny-lp")
    assert not loaded.training and all(not m.training for m in loaded.modules())
    svg.eval()
    context = torch.rand(2, 2, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    pyro.set_rng_seed(5)
    ref = svg.generate(context, 3, 2)
    pyro.set_rng_seed(5)
    got = loaded.generate(context, 3, 2)
    err = (ref - got).abs().max().item()
    assert err < 1e-3, err
    assert err > 0  # it really was stored in fp16


def test_a_name_works_wherever_a_checkpoint_path_does(shipped):
    ckpt = load_checkpoint("tiny-lp")
    assert ckpt["step"] == 7 and ckpt["train_config"]["dataset"] == "smmnist"
    svg, _ = load_model("tiny-lp")
    assert isinstance(svg, SVG) and svg.config == tiny_config()


def test_a_tampered_file_is_refused(shipped):
    _, path = shipped
    raw = bytearray(path.read_bytes())
    raw[-100] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="sha256"):
        pretrained.load_pretrained("tiny-lp")


def test_unknown_name_lists_the_shipped_ones(shipped):
    with pytest.raises(ValueError, match="tiny-lp"):
        pretrained.load_pretrained("smmnist-xx")
    with pytest.raises(FileNotFoundError, match="tiny-lp"):
        load_checkpoint("smmnist-xx")


def test_a_file_that_is_not_a_weights_file_is_refused(tmp_path):
    torch.save({"model": {}, "config": {}}, tmp_path / "x.pt")
    with pytest.raises(ValueError, match="weights file"):
        pretrained.read_weights(tmp_path / "x.pt")


def test_export_weights_command_checks_the_fp16_round_trip(tmp_path, capsys):
    from svg_pyro.cli import main

    svg = SVG(tiny_config())
    torch.save({"model": svg.state_dict(), "config": svg.config.to_dict(), "step": 3,
                "optimizer": {}}, tmp_path / "checkpoint.pt")  # fmt: skip
    argv = ["export-weights", "--checkpoint", str(tmp_path / "checkpoint.pt"),
            "--name", "tiny-lp", "--weights-dir", str(tmp_path / "w")]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "step 3" in out and "fp16 samples differ by" in out
    assert pretrained.available(tmp_path / "w") == ["tiny-lp"]
    data = torch.load(tmp_path / "w" / "tiny-lp.pt", weights_only=True)
    assert "optimizer" not in data and data["meta"]["source_step"] == 3
