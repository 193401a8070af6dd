"""Training: the loss falls, the run folder is written, checkpoints resume exactly."""

import json
import math
import warnings

import pyro
import pytest
import torch

from svg_pyro import SVG, SVGConfig, SVGLoss
from svg_pyro.checkpoint import load_checkpoint
from svg_pyro.commands.cli import main
from svg_pyro.config import TrainConfig, build_configs
from svg_pyro.train import Trainer, warmup_lr, warmup_schedule
from tests.conftest import tiny_config


def small(steps, **kw):
    """The tiny preset, made smaller still for fast tests."""
    base = dict(
        nf=4,
        g_dim=16,
        rnn_size=32,
        batch_size=8,
        steps=steps,
        log_every=1,
        checkpoint_every=1000,
        device="cpu",
    )
    base.update(kw)
    return build_configs("tiny", **base)


def test_tiny_loss_falls_over_100_steps(tmp_path):
    model_cfg, train_cfg = build_configs("tiny", steps=100, log_every=1, device="cpu")
    records = Trainer(model_cfg, train_cfg, tmp_path).fit(progress=False)
    losses = [r["loss"] for r in records]
    assert len(losses) == 100
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < 0.5 * first, (first, last)


def test_run_folder_contents(tmp_path):
    model_cfg, train_cfg = small(4, log_every=2)
    Trainer(model_cfg, train_cfg, tmp_path, preset="tiny").fit(progress=False)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["preset"] == "tiny" and config["model"]["nf"] == 4
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [2, 4]
    for r in lines:
        assert {"step", "loss", "recon", "kl", "neg_elbo", "seconds"} <= set(r)
        assert r["loss"] == pytest.approx(r["recon"] + model_cfg.beta * r["kl"], rel=1e-5)
    assert any((tmp_path / "tb").iterdir())
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ckpt["step"] == 4 and ckpt["config"] == model_cfg.to_dict()
    assert {"torch", "numpy", "python"} <= set(ckpt["rng"])


def test_resumed_run_matches_uninterrupted_run(tmp_path):
    model_cfg, train_cfg = small(5)
    straight = Trainer(model_cfg, train_cfg, tmp_path / "a").fit(progress=False)

    first_cfg = small(3)[1]
    Trainer(model_cfg, first_cfg, tmp_path / "b").fit(progress=False)
    resumed = Trainer(model_cfg, train_cfg, tmp_path / "b", resume=True)
    assert resumed.step == 3
    rest = resumed.fit(progress=False)
    assert [r["step"] for r in rest] == [4, 5]
    for a, b in zip(straight[3:], rest):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-6, abs=1e-7)
        assert a["kl"] == pytest.approx(b["kl"], rel=1e-5, abs=1e-8)
    steps = [json.loads(x)["step"] for x in (tmp_path / "b/metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5]  # no duplicates after the resume


def test_resume_drops_metrics_logged_after_the_checkpoint(tmp_path):
    model_cfg, train_cfg = small(4, checkpoint_every=2)
    Trainer(model_cfg, train_cfg, tmp_path).fit(progress=False)
    # simulate a crash after step 3 was logged but before its checkpoint: roll the checkpoint back
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    ckpt["step"] = 2
    torch.save(ckpt, tmp_path / "checkpoint.pt")
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 5, "loss": 1.0')  # a line cut short
    Trainer(model_cfg, train_cfg, tmp_path, resume=True)
    steps = [json.loads(x)["step"] for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2]


def test_resume_errors(tmp_path):
    model_cfg, train_cfg = small(1)
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        Trainer(model_cfg, train_cfg, tmp_path, resume=True)
    Trainer(model_cfg, train_cfg, tmp_path).fit(progress=False)
    other, _ = small(1, z_dim=5, rnn_size=24)
    with pytest.raises(ValueError, match=r"rnn_size: 32 -> 24; z_dim: 4 -> 5"):
        Trainer(other, train_cfg, tmp_path, resume=True)


# -- Adam's eps in the paper's units (issue 15, item 1) -------------------------------------------
def _first_adam_update(units: str, batch_size: int = 3):
    """One Adam step of the tiny model; returns (updates, paper-scale gradients, lr, eps)."""
    from svg_pyro.train import loss_scale, make_adam

    model_cfg = tiny_config()
    train_cfg = TrainConfig(lr=0.002, batch_size=batch_size, adam_eps_units=units)
    pyro.set_rng_seed(0)  # the same initial weights on every call
    svg = SVG(model_cfg)
    frames = torch.rand(batch_size, 5, 1, 64, 64, generator=torch.Generator().manual_seed(4))
    opt = make_adam(svg, train_cfg, model_cfg)
    before = {n: p.detach().clone() for n, p in svg.named_parameters()}
    pyro.set_rng_seed(1)
    with pyro.validation_enabled(False):
        SVGLoss(svg)(frames).backward()
    factor = loss_scale(model_cfg, train_cfg)
    paper_grads = {n: p.grad.detach() / factor for n, p in svg.named_parameters()}
    opt.step()
    updates = {n: p.detach() - before[n] for n, p in svg.named_parameters()}
    return updates, paper_grads, factor


def test_loss_scale_is_batch_times_pixels_over_two_sigma_squared():
    from svg_pyro.train import loss_scale

    model_cfg = SVGConfig(obs_sigma=0.5)
    assert loss_scale(model_cfg, TrainConfig(batch_size=100)) == 100 * 4096 / (2 * 0.25)
    assert loss_scale(SVGConfig(), TrainConfig(batch_size=100)) == pytest.approx(409_600)


def test_first_adam_update_equals_the_originals_from_paper_scale_gradients():
    """The original's first Adam step on its objective: -lr * g / (|g| + 1e-8), g paper-scale."""
    updates, paper_grads, _ = _first_adam_update("paper")
    for name, g in paper_grads.items():
        expected = -0.002 * g / (g.abs() + 1e-8)
        assert torch.allclose(updates[name], expected, rtol=1e-4, atol=2e-7), name


def test_eps_in_loss_units_keeps_the_old_larger_prior_updates():
    """``adam_eps_units="loss"``: eps against our loss's (409,600x larger) gradients, as before.

    The prior's and posterior's paper-scale gradients are tiny, so there the original update is
    noticeably smaller than a full ``lr`` step; with eps in loss units it is not.
    """
    paper, grads, factor = _first_adam_update("paper")
    loss, _, _ = _first_adam_update("loss")
    for name, g in grads.items():
        expected = -0.002 * (g * factor) / ((g * factor).abs() + 1e-8)
        assert torch.allclose(loss[name], expected, rtol=1e-4, atol=2e-7), name
    prior = [n for n in grads if n.startswith("prior.")]
    ratio = (
        torch.cat([paper[n].abs().flatten() for n in prior]).sum()
        / torch.cat([loss[n].abs().flatten() for n in prior]).sum()
    )
    assert ratio < 0.9, ratio  # the eps fix changes the prior's step size


def test_adam_eps_settings_are_validated():
    with pytest.raises(ValueError, match="adam_eps_units"):
        TrainConfig(adam_eps_units="pixels")
    with pytest.raises(ValueError, match="adam_eps"):
        TrainConfig(adam_eps=-1.0)


# -- learning-rate warm-up ------------------------------------------------------------------------
def test_warmup_lr_rises_linearly_then_holds():
    cfg = TrainConfig(lr=0.002, lr_warmup=4)
    assert [warmup_lr(cfg, s) for s in range(6)] == pytest.approx(
        [0.0005, 0.001, 0.0015, 0.002, 0.002, 0.002]
    )
    assert warmup_lr(TrainConfig(lr=0.002), 0) == 0.002  # 0: off
    with pytest.raises(ValueError, match="lr_warmup"):
        TrainConfig(lr_warmup=-1)


def test_warmed_up_steps_equal_steps_at_the_reduced_rate(tmp_path):
    # two steps with a 4-step warm-up from lr L are two steps at L/4 then L/2: compare the first
    # against a run at L/4 without warm-up, from the same weights and batch
    model_cfg, warm_cfg = small(5, lr=0.004, lr_warmup=4)
    _, flat_cfg = small(1, lr=0.001)
    warm = Trainer(model_cfg, warm_cfg, tmp_path / "warm")
    warm.fit(steps=1, progress=False)
    flat = Trainer(model_cfg, flat_cfg, tmp_path / "flat")  # re-seeds: the same latent draws
    flat.fit(progress=False)
    for (name, a), (_, b) in zip(warm.svg.state_dict().items(), flat.svg.state_dict().items()):
        assert torch.allclose(a, b, atol=1e-7), name
    warm.fit(progress=False)
    assert warm.optimizer.param_groups[0]["lr"] == pytest.approx(0.004)  # full rate after W
    with pytest.raises(ValueError, match="past the run's TrainConfig.steps=5"):
        warm.fit(steps=6, progress=False)


# -- starting from other weights (--init-from) ----------------------------------------------------
def test_init_from_starts_at_the_sources_weights_with_a_fresh_optimizer(tmp_path):
    model_cfg, train_cfg = small(2)
    source = Trainer(model_cfg, train_cfg, tmp_path / "a")
    source.fit(progress=False)
    run = Trainer(model_cfg, train_cfg, tmp_path / "b", init_from=tmp_path / "a/checkpoint.pt")
    assert run.step == 0 and not run.optimizer.state  # fresh Adam moments
    for (name, a), (_, b) in zip(source.svg.state_dict().items(), run.svg.state_dict().items()):
        assert torch.equal(a, b), name
    info = json.loads((tmp_path / "b/config.json").read_text())["init_from"]
    assert info == {"source": str(tmp_path / "a/checkpoint.pt"), "step": 2, "total_step": 2}
    run.fit(progress=False)
    assert load_checkpoint(tmp_path / "b/checkpoint.pt")["init_from"] == info  # kept on resume
    assert Trainer(model_cfg, train_cfg, tmp_path / "b", resume=True).init_from == info
    # a run started from b counts the steps behind b too: 2 of a + 2 of b
    chained = Trainer(model_cfg, train_cfg, tmp_path / "c", init_from=tmp_path / "b/checkpoint.pt")
    assert chained.init_from["total_step"] == 4


def test_init_from_with_resume_starts_then_resumes_with_the_same_command(tmp_path):
    model_cfg, train_cfg = small(2)
    Trainer(model_cfg, train_cfg, tmp_path / "a").fit(progress=False)
    same = dict(resume=True, init_from=tmp_path / "a/checkpoint.pt")
    first = Trainer(model_cfg, train_cfg, tmp_path / "b", **same)  # no checkpoint yet: starts
    assert first.step == 0 and first.init_from["step"] == 2
    first.fit(steps=1, progress=False)
    first.save()
    again = Trainer(model_cfg, train_cfg, tmp_path / "b", **same)  # the run's own wins
    assert again.step == 1 and again.init_from == first.init_from
    with pytest.raises(FileNotFoundError, match="--resume: no checkpoint.pt"):
        Trainer(model_cfg, train_cfg, tmp_path / "c", resume=True)


def test_init_from_other_weights_than_the_model_is_refused(tmp_path):
    model_cfg, train_cfg = small(1)
    Trainer(model_cfg, train_cfg, tmp_path / "a").fit(progress=False)
    other, _ = small(1, z_dim=5)
    with pytest.raises(ValueError, match=r"do not fit this model \(z_dim: 4 -> 5\)"):
        Trainer(other, train_cfg, tmp_path / "b", init_from=tmp_path / "a/checkpoint.pt")
    with pytest.raises(FileNotFoundError, match="not a shipped model"):
        Trainer(model_cfg, train_cfg, tmp_path / "c", init_from=tmp_path / "missing.pt")


def test_init_from_through_the_cli_takes_the_sources_model_settings(tmp_path, capsys):
    model_cfg, train_cfg = small(2, beta=1e-4)
    Trainer(model_cfg, train_cfg, tmp_path / "a").fit(progress=False)
    # the tiny preset has nf 8, the source nf 4: the source's model settings win, and a model
    # flag that does not change the weights' shapes (beta) still applies
    flags = ["--preset", "tiny", "--steps", "2", "--batch-size", "4", "--device", "cpu"]
    args = ["train", "--out", str(tmp_path / "b"), "--init-from", str(tmp_path / "a/checkpoint.pt")]
    assert main([*args, *flags, "--beta", "0.001", "--no-progress"]) == 0
    assert "from the weights of" in capsys.readouterr().err
    config = json.loads((tmp_path / "b/config.json").read_text())
    assert config["model"]["nf"] == 4 and config["model"]["beta"] == 0.001
    assert config["train"]["batch_size"] == 4 and config["init_from"]["step"] == 2
    # the same command with --resume continues the run instead of starting again
    again = [*args, *flags[:3], "3", *flags[4:], "--beta", "0.001", "--resume", "--no-progress"]
    assert main(again) == 0
    assert load_checkpoint(tmp_path / "b/checkpoint.pt")["step"] == 3
    # a model flag that changes the weights' shapes is refused in one line
    assert main([*args[:2], str(tmp_path / "c"), *args[3:], *flags, "--z-dim", "6"]) == 2
    assert "do not fit this model (z_dim: 4 -> 6)" in capsys.readouterr().err


def test_free_running_through_the_cli(tmp_path):
    """``--free-running true`` reaches the training config (the model's is the paper's); its
    steps train and resume."""
    flags = ["--preset", "tiny", "--nf", "4", "--g-dim", "16", "--rnn-size", "32"]
    args = ["train", "--out", str(tmp_path), *flags, "--batch-size", "2", "--device", "cpu"]
    args.append("--no-progress")
    assert main([*args, "--steps", "2", "--free-running", "true"]) == 0
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["train"]["free_running"] is True and "free_running" not in config["model"]
    assert main([*args, "--steps", "3", "--free-running", "true", "--resume"]) == 0
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ckpt["step"] == 3 and ckpt["train_config"]["free_running"] is True
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert all(math.isfinite(r["loss"]) for r in rows if "loss" in r)


def test_init_from_a_shipped_model(tmp_path):
    flags = ["--preset", "smmnist-cpu", "--steps", "1", "--batch-size", "2", "--device", "cpu"]
    out = tmp_path / "run"
    args = ["train", "--out", str(out), "--init-from", "smmnist-lp", *flags, "--no-progress"]
    assert main(args) == 0
    info = json.loads((out / "config.json").read_text())["init_from"]
    shipped = load_checkpoint("smmnist-lp")
    assert info["source"] == "smmnist-lp" and info["step"] == shipped["step"]


def test_train_particles_runs_them_vectorized_and_logs_per_sequence(tmp_path):
    flags = ["--preset", "tiny", "--nf", "4", "--g-dim", "16", "--rnn-size", "32"]
    flags += ["--steps", "2", "--batch-size", "4", "--log-every", "1", "--device", "cpu"]
    assert main(["train", "--out", str(tmp_path), *flags, "--particles", "3", "--no-progress"]) == 0
    assert json.loads((tmp_path / "config.json").read_text())["train"]["particles"] == 3
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    model_cfg, train_cfg = small(2, particles=3)
    trainer = Trainer(model_cfg, train_cfg, tmp_path / "b")
    assert trainer.loss_fn.elbo.vectorize_particles and trainer.loss_fn.elbo.num_particles == 3
    for r in rows:  # per sequence and averaged over particles: the one-particle scale
        assert r["loss"] == pytest.approx(r["recon"] + 1e-4 * r["kl"], rel=1e-4)
        assert 0.01 < r["recon"] < 2.0
    with pytest.raises(ValueError, match="particles"):
        TrainConfig(particles=0)


def test_ema_is_the_moving_average_of_the_weights_by_hand(tmp_path):
    """After each step avg <- d * avg + (1 - d) * weights, starting from the initial weights;
    the checkpoint carries it, and every reader of the checkpoint (load_model, export, resume,
    --init-from) takes it."""
    from svg_pyro import pretrained
    from svg_pyro.checkpoint import load_model

    model_cfg, train_cfg = small(3, ema=0.5)
    trainer = Trainer(model_cfg, train_cfg, tmp_path / "a")
    states = _states_after_each_step(trainer)
    trainer.fit(progress=False)
    name = next(k for k, v in states[0].items() if v.is_floating_point() and v.dim() > 1)
    expect = states[0][name]
    for s in states[1:]:
        expect = 0.5 * expect + 0.5 * s[name]
    ckpt = load_checkpoint(tmp_path / "a/checkpoint.pt")
    assert torch.allclose(ckpt["ema"][name], expect, atol=1e-6)
    assert not torch.allclose(ckpt["model"][name], expect)  # the live weights differ
    counter = next(k for k, v in states[-1].items() if not v.is_floating_point())
    assert torch.equal(ckpt["ema"][counter], states[-1][counter])  # counters copied
    svg, _ = load_model(tmp_path / "a/checkpoint.pt")
    assert torch.equal(svg.state_dict()[name], ckpt["ema"][name])
    path = pretrained.export_weights(ckpt, "e", tmp_path / "w")
    assert torch.equal(pretrained.read_weights(path)["model"][name], ckpt["ema"][name])
    again = Trainer(model_cfg, small(4, ema=0.5)[1], tmp_path / "a", resume=True)
    assert torch.equal(again.ema.module.state_dict()[name], ckpt["ema"][name])  # not restarted
    child = Trainer(model_cfg, small(1)[1], tmp_path / "b", init_from=tmp_path / "a/checkpoint.pt")
    assert torch.equal(child.svg.state_dict()[name], ckpt["ema"][name]) and child.ema is None


def test_ema_heldout_scores_the_average_and_leaves_the_weights(tmp_path, monkeypatch):
    from svg_pyro.heldout import HeldOut

    model_cfg, train_cfg = small(2, ema=0.9, eval_every=2, eval_sequences=2, eval_samples=1)
    trainer = Trainer(model_cfg, train_cfg, tmp_path)
    scored = []
    evaluate = HeldOut.evaluate

    def spy(self, svg, step, preview_dir=None):
        scored.append({k: v.clone() for k, v in svg.state_dict().items()})
        return evaluate(self, svg, step, preview_dir)

    monkeypatch.setattr(HeldOut, "evaluate", spy)
    trainer.fit(progress=False)
    ema = trainer.ema.module.state_dict()
    name = next(k for k, v in ema.items() if v.is_floating_point() and v.dim() > 1)
    assert torch.equal(scored[0][name], ema[name])  # the average was scored
    assert not torch.equal(trainer.svg.state_dict()[name], ema[name])  # weights back
    best = load_checkpoint(tmp_path / "best.pt")
    assert torch.equal(best["ema"][name], ema[name])
    with pytest.raises(ValueError, match="ema"):
        TrainConfig(ema=1.0)


def _states_after_each_step(trainer):
    """Record the live state dict after every step of ``trainer`` (the first: before any)."""
    states = [{k: v.clone() for k, v in trainer.svg.state_dict().items()}]

    def keep(frames):
        out = Trainer.train_step(trainer, frames)
        states.append({k: v.clone() for k, v in trainer.svg.state_dict().items()})
        return out

    trainer.train_step = keep
    return states


def test_ema_by_averaged_model_is_the_hand_written_average_bit_for_bit(tmp_path):
    """torch's AveragedModel (with buffers) gives what the hand-written average gave: a lerp by
    1 - d of every float tensor, BatchNorm statistics included, counters copied; and a resumed
    run's average goes on as an uninterrupted run's does."""
    model_cfg, train_cfg = small(4, ema=0.9)
    trainer = Trainer(model_cfg, train_cfg, tmp_path / "a")
    states = _states_after_each_step(trainer)
    trainer.fit(progress=False)
    hand = {k: v.clone() for k, v in states[0].items()}
    for live in states[1:]:
        for k, v in live.items():
            if v.is_floating_point():
                hand[k] = torch.lerp(hand[k], v, 1.0 - 0.9)  # the former _update_ema
            else:
                hand[k] = v.clone()
    ema = trainer.ema.module.state_dict()
    assert list(ema) == list(hand)
    for k, v in hand.items():
        assert torch.equal(ema[k], v), k
        if v.is_floating_point():  # the formula: d * avg + (1 - d) * weights, to fp32 rounding
            avg = states[0][k]
            for live in states[1:]:
                avg = 0.9 * avg + 0.1 * live[k]
            torch.testing.assert_close(v, avg, rtol=1e-5, atol=1e-6)
    assert any(k.endswith("running_mean") for k in hand)  # BatchNorm statistics averaged
    # stopped after 2 steps and resumed: the same average after 4
    Trainer(model_cfg, small(2, ema=0.9)[1], tmp_path / "b").fit(progress=False)
    resumed = Trainer(model_cfg, train_cfg, tmp_path / "b", resume=True)
    resumed.fit(progress=False)
    for k, v in resumed.ema.module.state_dict().items():
        assert torch.equal(v, ema[k]), k


def test_warmup_schedule_gives_each_step_its_rate_and_survives_a_resume(tmp_path):
    """The LambdaLR sets, before the update of run step s, warmup_lr(s): lr (s + 1) / W over the
    first W steps, then lr; a skipped (non-finite) step moves the schedule on too; a resumed run
    (also from a checkpoint whose optimizer never had a scheduler) goes on with its warm-up."""
    model_cfg, train_cfg = small(6, lr=0.004, lr_warmup=4)
    trainer = Trainer(model_cfg, train_cfg, tmp_path / "a")
    rates, forward = [], trainer.forward

    def spy(frames):
        rates.append(trainer.optimizer.param_groups[0]["lr"])
        loss = forward(frames)
        return loss * float("nan") if len(rates) == 2 else loss  # step 1 is skipped

    trainer.forward = spy
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no torch warning for the skipped step's schedule
        trainer.fit(steps=3, progress=False)
    assert trainer.skipped == 1
    expected = [warmup_lr(train_cfg, s) for s in range(6)]
    assert expected == pytest.approx([0.001, 0.002, 0.003, 0.004, 0.004, 0.004])
    assert expected == [0.004 * (s + 1) / 4 for s in range(4)] + [0.004] * 2
    assert rates == expected[:3]
    trainer.forward = forward
    trainer.save()
    # resumed mid-warm-up: step 3's rate, then the full rate
    again = Trainer(model_cfg, train_cfg, tmp_path / "a", resume=True)
    assert again.step == 3 and again.optimizer.param_groups[0]["lr"] == expected[3]
    # a checkpoint written before the scheduler: no initial_lr, the last step's rate
    ckpt = torch.load(tmp_path / "a/checkpoint.pt", weights_only=True)
    for group in ckpt["optimizer"]["param_groups"]:
        group.pop("initial_lr")
        group["lr"] = expected[2]
    torch.save(ckpt, tmp_path / "a/checkpoint.pt")
    old = Trainer(model_cfg, train_cfg, tmp_path / "a", resume=True)
    assert old.optimizer.param_groups[0]["lr"] == expected[3]
    old.fit(progress=False)
    assert old.optimizer.param_groups[0]["lr"] == 0.004
    # the schedule alone, built at a step
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    schedule = warmup_schedule(opt, train_cfg, step=1)
    got = []
    for _ in range(5):
        got.append(opt.param_groups[0]["lr"])
        opt.step()
        schedule.step()
    assert got == expected[1:]
