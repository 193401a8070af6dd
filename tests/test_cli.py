import json
import subprocess
import sys

from svg_pyro.cli import main


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
