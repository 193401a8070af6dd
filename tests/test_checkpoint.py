"""Checkpoints and run folders (:mod:`svg_pyro.checkpoint`): round trips, refusing code, the
run-folder lock, atomic writes, RNG state and the evaluation protocol."""

import json
import random

import numpy as np
import pytest
import torch

from svg_pyro.checkpoint import (
    atomic_save,
    atomic_write_json,
    config_differences,
    load_checkpoint,
    load_model,
    rng_state,
    run_folder_lock,
    set_rng_state,
)
from svg_pyro.commands.cli import main
from svg_pyro.config import SVGConfig, eval_protocol
from svg_pyro.errors import UsageError
from svg_pyro.train import Trainer
from tests.conftest import MICRO, F, P
from tests.test_train import small


def test_checkpoint_round_trip(tmp_path):
    model_cfg, train_cfg = small(2)
    trainer = Trainer(model_cfg, train_cfg, tmp_path)
    trainer.fit(progress=False)
    svg, ckpt = load_model(tmp_path / "checkpoint.pt")
    for (name, a), (_, b) in zip(trainer.svg.state_dict().items(), svg.state_dict().items()):
        assert torch.equal(a, b), name
    frames = torch.rand(2, 4, 1, 64, 64)
    trainer.svg.eval(), svg.eval()
    torch.testing.assert_close(trainer.svg.model(frames), svg.model(frames))


def test_malicious_checkpoint_is_refused(tmp_path):
    class Payload:
        def __reduce__(self):
            return (exec, (f"open({str(tmp_path / 'pwned')!r}, 'w').write('pwned')",))

    path = tmp_path / "evil.pt"
    torch.save({"model": Payload(), "config": {}}, path)
    with pytest.raises(ValueError, match="refusing to load"):
        load_checkpoint(path)
    assert not (tmp_path / "pwned").exists()


def test_a_run_folder_in_use_is_refused(tmp_path, capsys):
    model_cfg, train_cfg = small(2)
    trainer = Trainer(model_cfg, train_cfg, tmp_path)
    with run_folder_lock(tmp_path):  # another training process holds the folder
        with pytest.raises(UsageError, match="in use"):
            Trainer(model_cfg, train_cfg, tmp_path)
        with pytest.raises(UsageError, match="in use"):
            trainer.fit(progress=False)
        flags = ["--preset", "tiny", "--steps", "1", "--nf", "4", "--device", "cpu"]
        assert main(["train", "--out", str(tmp_path), *flags, "--no-progress"]) == 2
        assert "in use" in capsys.readouterr().err
    assert not (tmp_path / "checkpoint.pt").exists()  # nothing was written meanwhile
    assert len(trainer.fit(progress=False)) == 2  # free again: the run goes ahead
    with run_folder_lock(tmp_path):  # and fit released the folder when it ended
        pass


def test_protocol_defaults_come_from_the_dataset():
    model = SVGConfig(**MICRO)
    assert eval_protocol(model, "smmnist") == (5, 20)
    assert eval_protocol(model, "smmnist", n_past=3) == (3, 20)
    assert eval_protocol(model, "unknown") == (P, F)
    assert eval_protocol(model, None) == (P, F)  # a checkpoint that records no dataset
    with pytest.raises(ValueError):
        eval_protocol(model, "unknown", n_future=0)


def test_config_differences_name_each_changed_field():
    saved = {"nf": 4, "z_dim": 4, "beta": 1e-4}
    current = {"nf": 4, "z_dim": 5, "rnn": "fc"}
    assert config_differences(saved, current) == [
        "beta: 0.0001 -> None",
        "rnn: None -> 'fc'",
        "z_dim: 4 -> 5",
    ]
    assert config_differences(saved, dict(saved)) == []


def test_atomic_writes_leave_no_temporary_file(tmp_path):
    atomic_save({"w": torch.arange(3)}, tmp_path / "c.pt")
    assert torch.equal(torch.load(tmp_path / "c.pt", weights_only=True)["w"], torch.arange(3))
    atomic_write_json({"a": 1}, tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text()) == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt", "r.json"]


def test_rng_state_round_trip_replays_every_generator():
    state = rng_state()
    first = (random.random(), np.random.rand(), torch.rand(2))
    set_rng_state(state)
    again = (random.random(), np.random.rand(), torch.rand(2))
    assert first[0] == again[0] and first[1] == again[1] and torch.equal(first[2], again[2])


def test_a_file_without_model_and_config_is_not_a_checkpoint(tmp_path):
    torch.save({"weights": torch.zeros(1)}, tmp_path / "x.pt")
    with pytest.raises(ValueError, match="not an svg-pyro checkpoint"):
        load_checkpoint(tmp_path / "x.pt")
