"""SIGINT / SIGTERM (issue 17): save the step in hand, exit 130 / 143, resume exactly."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from svg_pyro.checkpoint import load_checkpoint
from svg_pyro.commands.cli import main
from svg_pyro.signals import Interrupted
from svg_pyro.train import Trainer
from tests.test_train import small

RUNNERS = Path(__file__).parent / "runners"
ROOT = RUNNERS.parent.parent
STEPS = 10
ARGS = [
    "train", "--preset", "tiny", "--nf", "4", "--g-dim", "16", "--rnn-size", "32",
    "--batch-size", "8", "--steps", str(STEPS), "--log-every", "2", "--checkpoint-every", "3",
    "--device", "cpu", "--no-progress",
]  # fmt: skip


def _env(**extra):
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **extra}


def _wait_for(cond, timeout=120.0, proc=None):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process ended early: {proc.communicate()}")
        time.sleep(0.02)
    raise AssertionError("timed out waiting")


def _count(path: Path) -> int:
    try:
        return int(path.read_text() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def _metrics(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def _assert_same_run(a: Path, b: Path) -> None:
    ca, cb = load_checkpoint(a / "checkpoint.pt"), load_checkpoint(b / "checkpoint.pt")
    assert ca["step"] == cb["step"]
    for k, v in ca["model"].items():
        assert torch.equal(v, cb["model"][k]), k
    ra, rb = _metrics(a), _metrics(b)
    assert [(r["step"], r["loss"], r["kl"]) for r in ra] == [
        (r["step"], r["loss"], r["kl"]) for r in rb
    ]


def _main_one_thread(argv):
    """``main(argv)`` with one intra-op thread, as the subprocess runs (``_env``): float
    reductions split over a different number of threads round differently, so a bit-for-bit
    comparison needs the same count on both sides."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return main(argv)
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run."""
    out = tmp_path_factory.mktemp("ref")
    assert _main_one_thread([*ARGS, "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("sig, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_saves_the_last_completed_step_and_resume_is_exact(tmp_path, reference, sig, status):
    out, steps_done = tmp_path / "run", tmp_path / "steps"
    cmd = [sys.executable, str(RUNNERS / "signal_train.py"), *ARGS, "--out", str(out)]
    proc = subprocess.Popen(
        cmd,
        env=_env(STEP_SLEEP="0.3", STEP_LOG=str(steps_done)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    done = steps_done.with_name("steps.rank0")
    _wait_for(lambda: _count(done) >= 4, proc=proc)  # past the checkpoint of step 3
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == status, err
    saved = load_checkpoint(out / "checkpoint.pt")["step"]
    assert saved == _count(done)  # the last completed step, not the checkpoint of step 3
    assert 4 <= saved < STEPS
    assert f"saved step {saved} of {STEPS}" in err and "--resume" in err.splitlines()[-1]
    assert all(r["step"] <= saved for r in _metrics(out))
    assert _main_one_thread([*ARGS, "--out", str(out), "--resume"]) == 0
    _assert_same_run(reference, out)


def test_stop_between_log_records_resumes_bit_for_bit(tmp_path):
    """A stop in the middle of a log window (step 5 of windows of 2) keeps the window's sums."""
    model_cfg, train_cfg = small(8, log_every=2, checkpoint_every=3)
    Trainer(model_cfg, train_cfg, tmp_path / "ref").fit(progress=False)
    trainer = Trainer(model_cfg, train_cfg, tmp_path / "run")
    real_step = trainer.train_step

    def step(frames):
        out = real_step(frames)
        if trainer.step == 4:  # inside step 5: the signal arrives while it is in flight
            os.kill(os.getpid(), signal.SIGTERM)
        return out

    trainer.train_step = step
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Interrupted) as info:
        trainer.fit(progress=False)
    assert info.value.step == 5 and info.value.exit_status == 143
    assert load_checkpoint(tmp_path / "run/checkpoint.pt")["step"] == 5
    assert signal.getsignal(signal.SIGTERM) == before  # handlers restored
    Trainer(model_cfg, train_cfg, tmp_path / "run", resume=True).fit(progress=False)
    _assert_same_run(tmp_path / "ref", tmp_path / "run")


def test_second_signal_while_saving_quits_at_once_and_keeps_the_previous_checkpoint(tmp_path):
    out, marker = tmp_path / "run", tmp_path / "saving"
    proc = subprocess.Popen(
        [sys.executable, str(RUNNERS / "signal_train.py"), *ARGS, "--out", str(out)],
        env=_env(
            STEP_SLEEP="0.3",
            STEP_LOG=str(tmp_path / "steps"),
            SLOW_SAVE="2",  # the first checkpoint (step 3) is written; the second hangs
            SLOW_SAVE_MARKER=str(marker),
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for(lambda: _count(tmp_path / "steps.rank0") >= 4, proc=proc)
    proc.send_signal(signal.SIGTERM)
    _wait_for(marker.exists, proc=proc)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert time.monotonic() - t0 < 10  # not the minute the save would have taken
    assert proc.returncode == 143, err
    assert "quitting now" in err and "(step 3) is as it was" in err
    assert load_checkpoint(out / "checkpoint.pt")["step"] == 3  # intact and loadable
    assert not (out / "checkpoint.pt.tmp").exists()


@pytest.mark.parametrize("target", ["rank1", "launcher"])
def test_two_process_gloo_run_stopped_by_sigterm_saves_once(tmp_path, target):
    out = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
        str(RUNNERS / "signal_train.py"), *ARGS, "--out", str(out), "--steps", "40",
        "--checkpoint-every", "1000", "--log-every", "1",
    ]  # fmt: skip
    steps = tmp_path / "steps"
    env = _env(
        STEP_SLEEP="0.2",
        STEP_LOG=str(steps),
        SAVE_LOG=str(tmp_path / "saves"),
        PID_DIR=str(tmp_path),
        RC_DIR=str(tmp_path),
    )
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: _count(tmp_path / "steps.rank1") >= 3, proc=proc)
    pid = proc.pid if target == "launcher" else int((tmp_path / "rank1.pid").read_text())
    os.kill(pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)  # no rank hangs
    assert [(tmp_path / f"rank{r}.rc").read_text() for r in (0, 1)] == ["143", "143"], err[-3000:]
    n0, n1 = _count(tmp_path / "steps.rank0"), _count(tmp_path / "steps.rank1")
    assert n0 == n1 and 3 <= n0 < 40  # both ranks stopped after the same step
    assert (tmp_path / "saves").read_text().splitlines() == [f"0 {n0}"]  # rank 0 saved, once
    ckpt = load_checkpoint(out / "checkpoint.pt")
    assert ckpt["step"] == n0 and len(ckpt["rng_per_rank"]) == 2
    assert [r["step"] for r in _metrics(out)] == list(range(1, n0 + 1))


# -- evaluate and analyze: partial results, or a plain "nothing was written" ---------------------
def _kill_self_on_call(monkeypatch, module, name, on_call):
    real, calls = getattr(module, name), [0]

    def wrapper(*args, **kwargs):
        calls[0] += 1
        if calls[0] == on_call:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)  # the handler raises here
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)


@pytest.fixture
def micro_models(tmp_path):
    from svg_pyro.config import SVGConfig
    from svg_pyro.svg import SVG
    from tests.conftest import MICRO, save_checkpoint
    from tests.test_evaluate import static_testset

    torch.manual_seed(0)
    return {
        "det": save_checkpoint(SVG(SVGConfig(prior="none", **MICRO)), tmp_path / "det.pt"),
        "lp": save_checkpoint(SVG(SVGConfig(prior="learned", **MICRO)), tmp_path / "lp.pt"),
        "testset": static_testset(tmp_path / "s.npz"),
        "protocol": ["--n-past", str(MICRO["n_past"]), "--n-future", str(MICRO["n_future"])],
    }


@pytest.mark.parametrize("on_call", [1, 2])
def test_evaluate_stopped_writes_partial_results_or_says_nothing_was_written(
    tmp_path, micro_models, monkeypatch, capsys, on_call
):
    import svg_pyro.evaluate as evaluate

    _kill_self_on_call(monkeypatch, evaluate, "evaluate_generator", on_call)
    out, m = tmp_path / "r.json", micro_models
    argv = ["evaluate", "--checkpoint", str(m["det"]), "--compare", str(m["lp"]),
            "--testset", str(m["testset"]), "--n-samples", "2", *m["protocol"],
            "--json", str(out), "--device", "cpu", "--no-progress"]  # fmt: skip
    assert main(argv) == 143
    err = capsys.readouterr().err
    if on_call == 1:  # stopped inside the first method: nothing complete
        assert not out.exists() and "nothing was written" in err
        return
    res = json.loads(out.read_text())
    assert res["partial"]["interrupted_by"] == "SIGTERM"
    assert list(res["methods"]) == res["partial"]["complete_methods"] == ["det"]
    assert res["partial"]["not_evaluated"] == [str(m["lp"]), "copy-last", "blank"]
    assert "PARTIAL" in err


def test_analyze_stopped_says_no_report_was_written(tmp_path, micro_models, monkeypatch, capsys):
    import svg_pyro.analysis.collisions as collisions

    _kill_self_on_call(monkeypatch, collisions, "collision_analysis", 1)
    out = tmp_path / "a.json"
    argv = ["analyze", "collisions", "--checkpoint", str(micro_models["lp"]), "--sequences", "2",
            "--json", str(out), "--device", "cpu", "--no-progress"]  # fmt: skip
    assert main(argv) == 143
    assert not out.exists() and "no report was written" in capsys.readouterr().err
