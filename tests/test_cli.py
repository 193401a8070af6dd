import argparse
import json
import subprocess
import sys

import pytest

from svg_pyro.commands.cli import main


def test_train_through_the_cli(tmp_path, capsys):
    out = tmp_path / "run"
    args = [
        "train",
        "--preset",
        "tiny",
        "--out",
        str(out),
        "--steps",
        "3",
        "--nf",
        "4",
        "--batch-size",
        "4",
        "--log-every",
        "1",
        "--device",
        "cpu",
        "--no-progress",
    ]
    assert main(args) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["nf"] == 4 and config["train"]["batch_size"] == 4
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 3
    assert main([*args[:6], "5", *args[7:], "--resume"]) == 0
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 5


def test_usage_errors_are_one_line_and_exit_2(tmp_path):
    cases = [
        ["train", "--preset", "nope", "--out", str(tmp_path / "a")],
        ["train", "--preset", "tiny", "--out", str(tmp_path / "b"), "--z-dim", "0"],
        ["train", "--preset", "tiny", "--out", str(tmp_path / "c"), "--prior", "nope"],
        ["train", "--preset", "tiny", "--out", str(tmp_path / "d"), "--resume"],
    ]
    for args in cases:
        proc = subprocess.run(
            [sys.executable, "-m", "svg_pyro", *args], capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 2, (args, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "error" in lines[0] and "Traceback" not in proc.stderr


def test_every_command_module_is_registered_in_one_loop():
    """Each module of svg_pyro.commands but cli is one command: ``add_parser`` and ``run``,
    registered by cli.main's loop; python -m svg_pyro runs the same main."""
    import pkgutil

    import svg_pyro.commands
    from svg_pyro.commands import cli

    found = {m.name for m in pkgutil.iter_modules(svg_pyro.commands.__path__)} - {"cli"}
    assert found == {m.__name__.rsplit(".", 1)[1] for m in cli.COMMANDS}
    for module in cli.COMMANDS:
        assert callable(module.add_parser) and callable(module.run)
    proc = subprocess.run(
        [sys.executable, "-m", "svg_pyro", "--help"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0 and "recalibrate-bn" in proc.stdout


def test_a_mistyped_flag_gets_the_commands_usage_and_the_closest_flag(capsys):
    args = ["evaluate", "--checkpoint", "x", "--testset", "y", "--json", "z", "--nsamples", "10"]
    with pytest.raises(SystemExit) as stop:
        main(args)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: svg-pyro evaluate ")
    assert "unrecognized arguments: --nsamples 10; did you mean --n-samples" in err
    with pytest.raises(SystemExit):
        main(["analyze", "kl", "--checkpoint", "x", "--testset", "y", "--json", "z", "--frams=3"])
    err = capsys.readouterr().err
    assert err.startswith("usage: svg-pyro analyze kl ") and "did you mean --frames" in err
    with pytest.raises(SystemExit):  # nothing close: no guess
        main(["models", "--zzzz"])
    assert "did you mean" not in capsys.readouterr().err


def test_a_gpu_preset_on_a_cpu_is_refused_before_anything_starts(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    out = tmp_path / "run"
    assert main(["train", "--preset", "smmnist", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--preset smmnist-cpu" in err and "--yes" in err
    assert not out.exists()
    tiny = ["--nf", "4", "--g-dim", "8", "--rnn-size", "16", "--batch-size", "2", "--no-progress"]
    args = ["train", "--preset", "smmnist", "--out", str(out), "--steps", "1", *tiny]
    assert main([*args, "--yes", "--eval-every", "0", "--device", "cpu"]) == 0


def test_models_lists_every_shipped_name_and_the_help_says_so(capsys):
    from svg_pyro import pretrained

    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0].split(" ")[0] for line in lines] == pretrained.available()
    assert any(line.startswith(f"{pretrained.DEFAULT} (the default): ") for line in lines)
    for command in (["evaluate"], ["sample"], ["analyze", "kl"], ["recalibrate-bn"]):
        with pytest.raises(SystemExit):
            main([*command, "--help"])
        help_text = " ".join(capsys.readouterr().out.split())
        assert "`svg-pyro models` lists them" in help_text and "%%" not in help_text


def test_a_missing_report_folder_is_created_and_said(tmp_path, capsys):
    from svg_pyro.commands.cli import make_report_folders

    target = tmp_path / "new" / "deeper" / "r.json"
    make_report_folders(argparse.Namespace(json=str(target), plot=None))
    assert target.parent.is_dir()
    assert f"created folder {target.parent} for --json" in capsys.readouterr().err
    make_report_folders(argparse.Namespace(json=str(target)))  # there now: nothing said
    assert capsys.readouterr().err == ""
