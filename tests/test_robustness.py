"""Surviving crashes, bad numbers and several processes (issue: scale out and survive)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import Dataset

from svg_pyro.checkpoint import load_checkpoint
from svg_pyro.commands.cli import main
from svg_pyro.errors import TrainingError
from svg_pyro.train import Trainer
from tests.test_train import small

RUNNERS = Path(__file__).parent / "runners"
TRAIN_ARGS = [
    "train",
    "--preset",
    "tiny",
    "--nf",
    "4",
    "--g-dim",
    "16",
    "--rnn-size",
    "32",
    "--batch-size",
    "8",
    "--steps",
    "6",
    "--log-every",
    "1",
    "--checkpoint-every",
    "2",
    "--device",
    "cpu",
    "--no-progress",
]


class NaNBatches(Dataset):
    """Wraps a dataset; items of the listed global batches get a NaN pixel."""

    def __init__(self, base, bad_batches, batch_size):
        self.base, self.bad, self.b = base, set(bad_batches), batch_size

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        item = dict(self.base[i])
        if i // self.b in self.bad:
            item["frames"] = item["frames"].clone()
            item["frames"][0, 0, 0, 0] = float("nan")
        return item


def _state(trainer):
    return {k: v.clone() for k, v in trainer.svg.state_dict().items()}


def test_nonfinite_steps_are_skipped_and_counted(tmp_path):
    model_cfg, train_cfg = small(6, max_bad_steps=3)
    trainer = Trainer(model_cfg, train_cfg, tmp_path)
    trainer.dataset = NaNBatches(trainer.dataset, bad_batches={2, 3}, batch_size=8)
    states = {}
    records = trainer.fit(
        progress=False, callback=lambda r: states.update({r["step"]: _state(trainer)})
    )
    assert [r["skipped_steps"] for r in records] == [0, 0, 1, 2, 2, 2]
    assert records[2]["loss"] is None and records[4]["loss"] is not None
    for k, v in states[2].items():  # steps 3 and 4 changed nothing, BatchNorm statistics included
        assert torch.equal(v, states[4][k]), k
    assert not torch.equal(states[4]["decoder.out.0.weight"], states[5]["decoder.out.0.weight"])
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ckpt["skipped"] == 2
    assert all(v.isfinite().all() for v in ckpt["model"].values() if v.is_floating_point())


def test_too_many_bad_steps_stop_with_the_last_good_checkpoint(tmp_path):
    model_cfg, train_cfg = small(10, max_bad_steps=3, checkpoint_every=2)
    trainer = Trainer(model_cfg, train_cfg, tmp_path)
    trainer.dataset = NaNBatches(trainer.dataset, bad_batches=range(3, 100), batch_size=8)
    # batch 3 is step 4: steps 4, 5, 6 fail; the checkpoint of step 4 holds step 3's weights
    with pytest.raises(TrainingError, match=r"3 non-finite steps in a row at step 6.*step 4\)"):
        trainer.fit(progress=False)
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ckpt["step"] == 4 and ckpt["skipped"] == 1
    assert all(v.isfinite().all() for v in ckpt["model"].values() if v.is_floating_point())


def test_a_nonfinite_model_is_never_checkpointed(tmp_path):
    model_cfg, train_cfg = small(1)
    trainer = Trainer(model_cfg, train_cfg, tmp_path)
    with torch.no_grad():
        trainer.svg.decoder.out[0].weight[0, 0, 0, 0] = float("inf")
    with pytest.raises(TrainingError, match="non-finite"):
        trainer.save()
    assert not (tmp_path / "checkpoint.pt").exists()


def _run(args, env_extra=None, cwd=None):
    env = {**os.environ, "PYTHONPATH": str(RUNNERS.parent.parent), **(env_extra or {})}
    return subprocess.run(
        [sys.executable, str(RUNNERS / "crash_train.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


@pytest.mark.parametrize("kill", [{"KILL_ON_SAVE": "2"}, {"KILL_ON_STEP": "5"}])
def test_sigkill_then_resume_equals_uninterrupted_run(tmp_path, kill):
    ref, crashed = tmp_path / "ref", tmp_path / "crashed"
    assert main([*TRAIN_ARGS, "--out", str(ref)]) == 0
    proc = _run([*TRAIN_ARGS, "--out", str(crashed)], kill)
    assert proc.returncode == -9, proc.stderr
    assert load_checkpoint(crashed / "checkpoint.pt")["step"] == (
        2 if "KILL_ON_SAVE" in kill else 4
    )
    proc = _run([*TRAIN_ARGS, "--out", str(crashed), "--resume"])
    assert proc.returncode == 0, proc.stderr
    a, b = load_checkpoint(ref / "checkpoint.pt"), load_checkpoint(crashed / "checkpoint.pt")
    assert a["step"] == b["step"] == 6
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    for line_a, line_b in zip(
        (ref / "metrics.jsonl").read_text().splitlines(),
        (crashed / "metrics.jsonl").read_text().splitlines(),
        strict=True,
    ):
        ra, rb = json.loads(line_a), json.loads(line_b)
        assert ra["step"] == rb["step"] and ra["loss"] == rb["loss"]


def _torchrun(out, prior, nproc):
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        str(RUNNERS / "ddp_train.py"),
        str(out),
        prior,
    ]
    env = {**os.environ, "PYTHONPATH": str(RUNNERS.parent.parent), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_two_process_gloo_run_matches_one_process(tmp_path):
    """A deterministic model (no latent noise) makes the comparison exact up to rounding."""
    _torchrun(tmp_path / "ddp", "none", 2)
    _torchrun(tmp_path / "single", "none", 1)
    r0 = torch.load(tmp_path / "ddp/rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "ddp/rank1.pt", weights_only=True)
    single = torch.load(tmp_path / "single/rank0.pt", weights_only=True)
    # A conv bias that feeds BatchNorm has an exactly zero gradient (BatchNorm subtracts the batch
    # mean); Adam turns its rounding noise into full-size steps, so it and the running mean that
    # tracks it differ between any two runs that round differently. Compare everything else.
    svg = Trainer(*small(0, prior="none"), tmp_path / "init").svg
    noise_only = set()
    for name, mod in svg.named_modules():
        if isinstance(mod, torch.nn.Sequential) and len(mod) > 1:
            if isinstance(mod[1], torch.nn.BatchNorm2d):
                noise_only |= {f"{name}.0.bias", f"{name}.1.running_mean"}
    assert "encoder.blocks.0.0.bias" in noise_only
    moved = 0.0
    for k, v in r0.items():
        assert torch.equal(v, r1[k]), k  # identical parameters and statistics on both ranks
        if v.is_floating_point() and k not in noise_only:
            torch.testing.assert_close(v, single[k], rtol=1e-3, atol=2e-4, msg=k)
            moved = max(moved, (v - single[k]).abs().max().item())
    init = Trainer(*small(0, prior="none"), tmp_path / "init").svg.state_dict()
    change = max(
        (single[k] - init[k]).abs().max().item() for k in init if init[k].is_floating_point()
    )
    assert change > 100 * moved  # the runs moved far more than they differ
    steps = [
        json.loads(x)["step"] for x in (tmp_path / "ddp/metrics.jsonl").read_text().splitlines()
    ]
    assert steps == [1, 2, 3, 4]  # one writer: no line twice


def test_ranks_draw_their_own_latent_noise(tmp_path):
    _torchrun(tmp_path / "ddp", "learned", 2)
    ckpt = load_checkpoint(tmp_path / "ddp/checkpoint.pt")
    rng0, rng1 = (r["torch"] for r in ckpt["rng_per_rank"])
    assert not torch.equal(rng0, rng1)
    r0 = torch.load(tmp_path / "ddp/rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "ddp/rank1.pt", weights_only=True)
    assert all(torch.equal(v, r1[k]) for k, v in r0.items())
