"""Bad input files get one line and exit status 2: a checkpoint that is a text file, a test set,
empty, truncated or a folder; a test set that is a text file, a folder, empty, truncated, an
.npz without frames, a checkpoint, or frames of another size. Through the library functions
(:func:`~svg_pyro.checkpoint.load_checkpoint`, :func:`~svg_pyro.data.load_testset`,
:func:`~svg_pyro.checkpoint.check_testset`) and through the commands, never with torch's or
NumPy's text, a traceback, or advice to load a file unsafely."""

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from svg_pyro import SVG, SVGConfig
from svg_pyro.checkpoint import check_testset, load_checkpoint
from svg_pyro.commands.cli import main
from svg_pyro.data import load_frames, load_testset, write_smmnist_testset
from svg_pyro.errors import InputFileError, UsageError, file_kind
from svg_pyro.pretrained import read_weights
from tests.conftest import MICRO, save_checkpoint

#: Text that must never reach a user: torch's and NumPy's advice to load a file unsafely.
FORBIDDEN = ("Traceback", "weights_only", "unsafely", "allow_pickle", "pickled", "inline_container",
             "PytorchStreamReader", "enforce fail", "file an issue")  # fmt: skip


def one_line(message: str) -> str:
    """``message`` is one line that quotes none of :data:`FORBIDDEN`; returns it."""
    assert "\n" not in message.strip(), message
    for text in FORBIDDEN:
        assert text.lower() not in message.lower(), message
    return message


class _Payload:  # a pickle that would run code
    def __reduce__(self):
        return (print, ("ran",))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tiny checkpoint and test set, and a bad file of each kind."""
    root = tmp_path_factory.mktemp("messages")
    torch.manual_seed(0)
    good = save_checkpoint(SVG(SVGConfig(**MICRO)), root / "good.pt", dataset="none")
    testset = write_smmnist_testset(
        root / "test.npz", sequences=2, frames=6, num_digits=1, seed=0, progress=False
    )
    data = good.read_bytes()
    (root / "notes.txt").write_text("my notes on the run\nlr 0.002\n")
    (root / "empty.pt").write_bytes(b"")
    (root / "truncated.pt").write_bytes(data[: len(data) // 2])
    (root / "objects.pt").write_bytes(pickle.dumps({"model": _Payload(), "config": {}}))
    torch.save({"weights": torch.zeros(1)}, root / "other.pt")
    (root / "folder").mkdir()
    (root / "run").mkdir()
    (root / "run" / "checkpoint.pt").write_bytes(data)
    (root / "fake.npz").write_text("not an npz\n")
    (root / "empty.npz").write_bytes(b"")
    npz = testset.read_bytes()
    (root / "truncated.npz").write_bytes(npz[: len(npz) // 2])
    with open(root / "noframes.npz", "wb") as f:
        np.savez(f, x=np.zeros(3))
    with open(root / "float.npz", "wb") as f:
        np.savez(f, frames=np.zeros((2, 6, 1, 64, 64), np.float32))
    with open(root / "objects.npz", "wb") as f:
        np.savez(f, frames=np.array([{"a": 1}, None], dtype=object))
    with open(root / "small32.npz", "wb") as f:
        np.savez(f, frames=np.zeros((2, 6, 1, 32, 32), np.uint8))
    with open(root / "rgb.npz", "wb") as f:
        np.savez(f, frames=np.zeros((2, 6, 3, 64, 64), np.uint8))
    np.save(root / "array.npy", np.zeros((2, 6, 1, 64, 64), np.uint8))
    (root / "sets").mkdir()
    return root


# -- what the library says -----------------------------------------------------------------------

BAD_CHECKPOINTS = {  # file -> (exception, words the line says)
    "notes.txt": (InputFileError, ["is a text file, not an svg-pyro checkpoint", "smmnist-lp"]),
    "test.npz": (InputFileError, ["is an .npz test set", "not an svg-pyro checkpoint"]),
    "empty.pt": (InputFileError, ["is empty (0 bytes)", "not an svg-pyro checkpoint"]),
    "truncated.pt": (InputFileError, ["is truncated or damaged", "not an svg-pyro checkpoint"]),
    "objects.pt": (InputFileError, ["refusing to load", "Python objects"]),
    "other.pt": (InputFileError, ["without 'model' and 'config'", "not an svg-pyro checkpoint"]),
    "folder": (InputFileError, ["is a folder, not a checkpoint file", "holds checkpoint.pt"]),
    "run": (InputFileError, ["is a folder, not a checkpoint", "did you mean", "run/checkpoint.pt"]),
    "missing.pt": (FileNotFoundError, ["does not exist", "not a shipped model", "smmnist-lp"]),
}  # fmt: skip


def _says_in_one_line(load, path, error, words):
    """``load(path)`` raises ``error`` whose one-line message names the file and says ``words``."""
    with pytest.raises(error) as info:
        load(path)
    message = one_line(str(info.value))
    assert str(path) in message
    for word in words:
        assert word in message, message
    return info


@pytest.mark.parametrize("name", sorted(BAD_CHECKPOINTS))
def test_load_checkpoint_says_what_the_file_is_in_one_line(files, name, capsys):
    error, words = BAD_CHECKPOINTS[name]
    info = _says_in_one_line(load_checkpoint, files / name, error, words)
    if error is InputFileError:  # the command line's one-line, exit-2 kind, and a ValueError
        assert isinstance(info.value, UsageError) and isinstance(info.value, ValueError)
    assert "ran" not in capsys.readouterr().out  # the pickle ran nothing


def test_a_good_checkpoint_and_a_shipped_name_still_load(files):
    assert set(load_checkpoint(files / "good.pt")) >= {"model", "config"}
    assert set(load_checkpoint("smmnist-lp")) >= {"model", "config"}


@pytest.mark.parametrize("name", ["notes.txt", "test.npz", "empty.pt", "truncated.pt"])
def test_read_weights_says_what_the_file_is_in_one_line(files, name):
    with pytest.raises(InputFileError, match="not an svg-pyro weights file") as info:
        read_weights(files / name)
    one_line(str(info.value))


BAD_TESTSETS = {  # file -> (exception, words the line says)
    "fake.npz": (InputFileError, ["is a text file, not an .npz test set", "svg-pyro data"]),
    "notes.txt": (InputFileError, ["is a text file, not an .npz test set"]),
    "folder": (InputFileError, ["is a folder, not a test set file"]),
    "empty.npz": (InputFileError, ["is empty (0 bytes), not an .npz test set"]),
    "truncated.npz": (InputFileError, ["is truncated or damaged", "not an .npz test set"]),
    "noframes.npz": (InputFileError, ["not a test set", "it has 'x'", "'frames' uint8"]),
    "float.npz": (InputFileError, ["its 'frames' are float32 [2, 6, 1, 64, 64]", "uint8"]),
    "objects.npz": (InputFileError, ["holds arrays of Python objects", "not a readable .npz"]),
    "good.pt": (InputFileError, ["is a PyTorch checkpoint (for --checkpoint)"]),
    "array.npy": (InputFileError, ["is a single .npy array", "not an .npz test set"]),
    "missing.npz": (FileNotFoundError, ["test set", "does not exist", "svg-pyro data"]),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(BAD_TESTSETS))
def test_load_testset_says_what_the_file_is_in_one_line(files, name):
    _says_in_one_line(load_testset, files / name, *BAD_TESTSETS[name])


def test_a_folder_with_one_test_set_is_named(files, tmp_path):
    write_smmnist_testset(tmp_path / "only.npz", sequences=1, frames=2, progress=False)
    with pytest.raises(InputFileError, match="did you mean .*only.npz"):
        load_testset(tmp_path)


def test_file_kind_reads_no_pickle(files):
    kinds = {name: file_kind(files / name) for name in
             ["notes.txt", "test.npz", "good.pt", "empty.pt", "truncated.pt", "folder",
              "missing.pt", "array.npy", "objects.pt"]}  # fmt: skip
    assert kinds == {
        "notes.txt": "a text file",
        "test.npz": "an .npz archive",
        "good.pt": "a PyTorch file",
        "empty.pt": "empty",
        "truncated.pt": "truncated or damaged",
        "folder": "a folder",
        "missing.pt": "missing",
        "array.npy": "a single .npy array",
        "objects.pt": "a PyTorch file",
    }


def test_check_testset_wants_the_models_frame_size(files):
    ckpt = load_checkpoint(files / "good.pt")
    svg = SVG(SVGConfig(**MICRO))
    for model in (ckpt, ckpt["config"], svg, svg.config):
        frames = check_testset(files / "test.npz", model)
        assert frames.shape == (2, 6, 1, 64, 64)
    with pytest.raises(InputFileError) as info:
        check_testset(files / "small32.npz", ckpt)
    message = one_line(str(info.value))
    assert "small32.npz has frames of 1x32x32" in message
    assert "the model takes 1x64x64 frames" in message
    with pytest.raises(InputFileError, match="3x64x64 .* the model takes 1x64x64"):
        check_testset(load_testset(files / "rgb.npz"), svg, name="rgb.npz")
    with pytest.raises(InputFileError, match="sequences of 6 frames; the protocol needs 7"):
        check_testset(files / "test.npz", svg, n_frames=7)
    with pytest.raises(InputFileError, match="the model takes 1x64x64"):
        load_frames(files / "small32.npz", 5, channels=1)


# -- what the commands say -----------------------------------------------------------------------


def run_cli(argv, capsys) -> str:
    """Run ``svg-pyro ARGV``: exit status 2 and one line on stderr; returns that line."""
    capsys.readouterr()
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exit_:  # argparse
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return one_line(lines[0])


def _evaluate(files, tmp_path, checkpoint, testset):
    return ["evaluate", "--checkpoint", checkpoint, "--testset", testset, "--n-samples", 1,
            "--json", tmp_path / "r.json", "--device", "cpu", "--no-progress"]  # fmt: skip


def _sample(files, tmp_path, checkpoint, testset):
    return ["sample", "--checkpoint", checkpoint, "--testset", testset, "--out", tmp_path / "s",
            "--sequences", 1, "--n-samples", 1, "--device", "cpu", "--no-progress"]  # fmt: skip


def _kl(files, tmp_path, checkpoint, testset):
    return ["analyze", "kl", "--checkpoint", checkpoint, "--testset", testset,
            "--json", tmp_path / "kl.json", "--device", "cpu", "--no-progress"]  # fmt: skip


def _identity(files, tmp_path, checkpoint, testset):
    return ["analyze", "identity", "--checkpoint", checkpoint, "--testset", testset,
            "--json", tmp_path / "id.json", "--device", "cpu"]  # fmt: skip


COMMANDS = {"evaluate": _evaluate, "sample": _sample, "analyze kl": _kl,
            "analyze identity": _identity}  # fmt: skip


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("name", sorted(BAD_CHECKPOINTS))
def test_commands_refuse_a_bad_checkpoint_in_one_line(files, tmp_path, capsys, command, name):
    argv = COMMANDS[command](files, tmp_path, files / name, files / "test.npz")
    line = run_cli(argv, capsys)
    assert line.startswith(f"svg-pyro {command.split()[0]}: error: ")
    for word in BAD_CHECKPOINTS[name][1]:
        assert word in line, line
    assert not any(tmp_path.iterdir())  # nothing was written


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("name", sorted(set(BAD_TESTSETS) - {"float.npz", "objects.npz"}))
def test_commands_refuse_a_bad_test_set_in_one_line(files, tmp_path, capsys, command, name):
    argv = COMMANDS[command](files, tmp_path, files / "good.pt", files / name)
    line = run_cli(argv, capsys)
    for word in BAD_TESTSETS[name][1]:
        assert word in line, line
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("command", ["evaluate", "sample"])
def test_a_test_set_of_another_frame_size_is_refused_before_any_work(
    files, tmp_path, capsys, command
):
    argv = COMMANDS[command](files, tmp_path, files / "good.pt", files / "small32.npz")
    argv.remove("--no-progress")  # a progress bar would show on stderr if work had started
    line = run_cli(argv, capsys)
    assert "small32.npz has frames of 1x32x32" in line and "takes 1x64x64" in line
    assert not any(tmp_path.iterdir())


def test_analyze_kl_checks_the_frame_size_before_any_work(files, tmp_path, capsys):
    argv = _kl(files, tmp_path, files / "good.pt", files / "small32.npz")
    argv.remove("--no-progress")
    line = run_cli(argv, capsys)
    assert "small32.npz has frames of 1x32x32" in line and "takes 1x64x64" in line


@pytest.mark.parametrize(
    "argv",
    [
        ["recalibrate-bn", "--checkpoint", "{notes.txt}", "--out", "{out}/r.pt", "--device", "cpu"],
        ["export-weights", "--checkpoint", "{truncated.pt}", "--name", "x",
         "--weights-dir", "{out}"],
        ["sample", "--checkpoint", "{test.npz}", "--out", "{out}/s", "--device", "cpu"],
        ["analyze", "collisions", "--checkpoint", "{run}", "--json", "{out}/c.json"],
        ["train", "--preset", "tiny", "--init-from", "{empty.pt}", "--out", "{out}/t",
         "--steps", "1", "--device", "cpu", "--no-progress"],
    ],
    ids=["recalibrate-bn", "export-weights", "sample-drawn", "collisions", "train-init-from"],
)  # fmt: skip
def test_other_commands_refuse_a_bad_checkpoint_in_one_line(files, tmp_path, capsys, argv):
    def fill(arg):
        if arg.startswith("{") and "}" in arg:
            key, rest = arg[1:].split("}", 1)
            return str(tmp_path if key == "out" else files / key) + rest
        return arg

    line = run_cli([fill(a) for a in argv], capsys)
    assert "svg-pyro checkpoint" in line or "not a checkpoint file" in line
    assert not any(tmp_path.iterdir())


def test_a_real_process_prints_one_line_and_no_warning(files, tmp_path):
    """Outside pytest's capture of warnings: torch's warning about a newer pickle protocol
    ("please file an issue") stays out of the one line."""
    root = Path(__file__).resolve().parents[1]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
    }
    argv = ["sample", "--checkpoint", files / "objects.pt", "--out", tmp_path / "s",
            "--device", "cpu"]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "svg_pyro", *map(str, argv)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "refusing to load" in one_line(lines[0]) and done.stdout == ""


def test_a_file_where_a_folder_goes_and_a_folder_where_a_file_goes(tmp_path, capsys):
    """``--out`` naming a file, and a file-writing ``--out`` naming a folder: one line, exit 2."""
    a_file = tmp_path / "afile"
    a_file.write_text("x")
    for argv in (
        ["train", "--preset", "tiny", "--out", a_file, "--steps", "1", "--no-progress"],
        ["sample", "--checkpoint", "smmnist-lp", "--out", a_file, "--sequences", "1"],
    ):
        line = run_cli(argv, capsys)
        assert line.endswith(
            f"{a_file} is a file, where a folder is expected (give a folder's path)"
        )
    argv = ["data", "smmnist-testset", "--out", tmp_path, "--sequences", "2", "--no-progress"]
    line = run_cli(argv, capsys)
    assert line.endswith(f"{tmp_path} is a folder, where a file is expected (give a file's path)")
