"""svg_pyro.analysis.kl: the KL per frame of the training objective (``svg-pyro analyze kl``)."""

import json

import matplotlib
import numpy as np
import pytest
import torch

from svg_pyro import SVG, TrainConfig
from svg_pyro.analysis import kl_per_frame, step_distributions, step_kl
from svg_pyro.checkpoint import load_model
from svg_pyro.commands.cli import main
from svg_pyro.data import load_testset, write_smmnist_testset
from svg_pyro.train import Trainer
from tests.conftest import tiny_config

matplotlib.use("Agg")


def _sharpen(svg: SVG) -> SVG:
    """Random posterior and prior heads far from their initialisation, so that the KL is large
    and differs between frames and sequences."""
    torch.manual_seed(0)
    with torch.no_grad():
        for net in (svg.posterior, svg.prior):
            for m in net.modules():
                if isinstance(m, torch.nn.Linear):
                    m.weight.normal_(0.0, 0.5)
    return svg.eval()


def _hand_kl(svg: SVG, frames: torch.Tensor) -> torch.Tensor:
    """KL of two diagonal Gaussians, per dimension, from the networks' own loc and scale."""
    with torch.no_grad():
        h, _ = svg.encode(frames)
        post, _ = svg.posterior(h[:, 1:])
        prior, _ = svg.prior(h[:, :-1])
    cols = []
    for q, p in zip(post, prior):
        mq, sq = q.base_dist.loc, q.base_dist.scale
        mp, sp = p.base_dist.loc, p.base_dist.scale
        cols.append(torch.log(sp / sq) + (sq**2 + (mq - mp) ** 2) / (2 * sp**2) - 0.5)
    return torch.stack(cols, 1)  # [B, T-1, z]


def test_kl_per_frame_matches_the_gaussian_formula(frames):
    svg = _sharpen(SVG(tiny_config(prior="learned")))
    kl, per_dim, methods = kl_per_frame(svg, frames, batch_size=2)
    expected = _hand_kl(svg, frames)
    assert methods == {"analytic"}
    assert kl.shape == (3, 4) and per_dim.shape == (3, 4, svg.config.z_dim)
    np.testing.assert_allclose(per_dim, expected.double().numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(kl, expected.sum(-1).double().numpy(), rtol=1e-4, atol=1e-6)
    assert kl.min() > 0 and kl.std() > 0


def test_fixed_prior_kl_is_against_the_standard_normal(frames):
    svg = _sharpen(SVG(tiny_config(prior="fixed")))
    kl, per_dim, _ = kl_per_frame(svg, frames)
    with torch.no_grad():
        h, _ = svg.encode(frames)
        post, _ = svg.posterior(h[:, 1:])
    mu = torch.stack([q.base_dist.loc for q in post], 1)
    sd = torch.stack([q.base_dist.scale for q in post], 1)
    expected = (-torch.log(sd) + (sd**2 + mu**2) / 2 - 0.5).sum(-1)
    np.testing.assert_allclose(kl, expected.double().numpy(), rtol=1e-4, atol=1e-6)
    assert per_dim is not None


def test_monte_carlo_kl_of_a_mixture_prior_uses_the_given_draws(frames):
    svg = SVG(tiny_config(prior="mixture")).eval()
    with torch.no_grad():
        post, prior = step_distributions(svg, frames)
        z = torch.stack([q.sample((5,)) for q in post], 2)  # [5, B, T-1, z]
        kl, methods, per_dim = step_kl(post, prior, z=z, by_dimension=True)
    assert methods == {"monte-carlo"} and per_dim is None
    assert kl.shape == (5, 3, 4)
    expected = post[2].log_prob(z[:, :, 2]) - prior[2].log_prob(z[:, :, 2])
    torch.testing.assert_close(kl[..., 2], expected)
    assert kl_per_frame(svg, frames)[1] is None  # no closed form per dimension


def test_kl_per_frame_restores_the_mode_and_refuses_the_deterministic_model(frames):
    svg = SVG(tiny_config(prior="learned")).train()
    kl_per_frame(svg, frames)
    assert svg.training
    with pytest.raises(ValueError, match="no latent"):
        kl_per_frame(SVG(tiny_config(prior="none")), frames)


def _checkpoint(tmp_path, prior: str, **overrides) -> str:
    cfg = tiny_config(prior=prior, n_past=2, n_future=3, **overrides)
    trainer = Trainer(
        cfg,
        TrainConfig(num_digits=1, batch_size=2, steps=1, device="cpu"),
        tmp_path / (prior + "".join(overrides)),
    )
    return str(trainer.save())


def test_analyze_kl_cli_reports_what_a_hand_computation_gives(tmp_path, capsys):
    ckpt = _checkpoint(tmp_path, "learned")
    testset = write_smmnist_testset(
        tmp_path / "t.npz", sequences=6, frames=8, num_digits=1, seed=0, progress=False
    )
    out, png = tmp_path / "kl.json", tmp_path / "kl.png"
    args = ["analyze", "kl", "--checkpoint", ckpt, "--testset", str(testset),
            "--sequences", "5", "--batch-size", "2", "--json", str(out), "--plot", str(png),
            "--no-progress"]  # fmt: skip
    assert main(args) == 0
    report = json.loads(out.read_text())
    assert "KL per frame" in capsys.readouterr().err
    assert report["sequences"] == 5 and report["frames"] == 5  # the model's training length
    assert png.is_file() and report["plot"] == str(png)
    svg, _ = load_model(ckpt)
    x = torch.from_numpy(load_testset(testset)["frames"][:5, :5]).float() / 255.0
    expected = _hand_kl(svg, x)  # load_model returns the network in eval mode
    np.testing.assert_allclose(report["kl_by_time"]["mean"], expected.sum(-1).mean(0), atol=1e-5)
    assert report["kl_per_frame"] == pytest.approx(float(expected.sum(-1).mean()), abs=1e-5)
    assert report["kl_by_time"]["time"] == [1, 2, 3, 4]
    by_dim = expected.mean((0, 1))
    np.testing.assert_allclose(report["kl_by_dimension"], by_dim, atol=1e-5)
    assert report["active_dimensions"] == int((by_dim > report["active_nats"]).sum())
    assert len(report["kl_by_time"]["ci95"]) == 4 and min(report["kl_by_time"]["ci95"]) >= 0


def test_analyze_kl_of_a_model_saved_with_free_running_is_teacher_forced(tmp_path, capsys):
    """A checkpoint of an older version kept ``free_running`` in its model configuration: it
    loads, and its KL is the paper's model's, on the true frames (the hand computation), with
    or without the old ``--teacher-forced`` flag."""
    ckpt = _checkpoint(tmp_path, "learned")
    saved = torch.load(ckpt, weights_only=True)
    saved["config"]["free_running"] = True
    torch.save(saved, ckpt)
    testset = write_smmnist_testset(
        tmp_path / "t.npz", sequences=4, frames=8, num_digits=1, seed=0, progress=False
    )
    args = ["analyze", "kl", "--checkpoint", ckpt, "--testset", str(testset), "--no-progress"]
    assert main([*args, "--json", str(tmp_path / "tf.json"), "--teacher-forced"]) == 0
    assert main([*args, "--json", str(tmp_path / "plain.json")]) == 0
    assert "teacher-forced)" in capsys.readouterr().err
    forced = json.loads((tmp_path / "tf.json").read_text())
    plain = json.loads((tmp_path / "plain.json").read_text())
    assert plain["setting"].startswith("teacher-forced")
    svg, _ = load_model(ckpt)
    x = torch.from_numpy(load_testset(testset)["frames"][:, :5]).float() / 255.0
    expected = _hand_kl(svg, x).sum(-1).mean(0)
    np.testing.assert_allclose(forced["kl_by_time"]["mean"], expected, atol=1e-5)
    np.testing.assert_allclose(plain["kl_by_time"]["mean"], expected, atol=1e-5)


def test_analyze_kl_cli_errors(tmp_path, capsys):
    testset = write_smmnist_testset(
        tmp_path / "t.npz", sequences=2, frames=4, num_digits=1, seed=0, progress=False
    )
    ckpt = _checkpoint(tmp_path, "learned")
    base = ["analyze", "kl", "--checkpoint", ckpt, "--testset", str(testset),
            "--json", str(tmp_path / "kl.json"), "--no-progress"]  # fmt: skip
    assert main(base) == 2  # the model's 5 frames are more than the test set's 4
    assert "--frames must be in 2..4" in capsys.readouterr().err
    assert main([*base, "--frames", "4", "--sequences", "0"]) == 2
    assert "--sequences must be >= 1" in capsys.readouterr().err
    det = _checkpoint(tmp_path, "none")
    assert main([*base[:3], det, *base[4:], "--frames", "4"]) == 2
    assert "no latent" in capsys.readouterr().err
    assert not (tmp_path / "kl.json").exists()
