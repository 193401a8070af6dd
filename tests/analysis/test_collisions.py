"""svg_pyro.analysis.collisions: the prior's sigma, ROC AUC and the collision study."""

import matplotlib
import numpy as np
import pytest
import torch

from svg_pyro import SVG
from svg_pyro.analysis import (
    collision_analysis,
    collision_labels,
    collision_scores,
    plot_collisions,
    prior_scale,
    roc_auc,
    sigma_maps,
    smmnist_collision_data,
)
from tests.conftest import tiny_config

matplotlib.use("Agg")


@pytest.fixture
def lp() -> SVG:
    return SVG(tiny_config(prior="learned")).eval()


def test_prior_scale_is_the_learned_sigma(lp, frames):
    sigma = prior_scale(lp, frames)
    assert sigma.shape == (frames.shape[0], frames.shape[1] - 1, lp.config.z_dim)
    h, _ = lp.encode(frames)
    with torch.no_grad():
        _, logvar, _ = lp.prior.net(h[:, :-1])
    torch.testing.assert_close(sigma, logvar.mul(0.5).exp())


def test_prior_scale_errors_for_fixed_and_deterministic(frames):
    with pytest.raises(ValueError, match="constant"):
        prior_scale(SVG(tiny_config(prior="fixed")), frames)
    with pytest.raises(ValueError, match="no latent"):
        prior_scale(SVG(tiny_config(prior="none")), frames)


def test_roc_auc_hand_cases():
    # 4 positive/negative pairs; (0.35 < 0.4) is the only one ranked wrongly.
    assert roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    # Ties count one half: pos 1 ties neg 1 (0.5), pos 2 beats it (1) -> 1.5 / 2.
    assert roc_auc([1, 1, 2], [0, 1, 1]) == pytest.approx(0.75)
    assert roc_auc([3, 3, 3, 3], [0, 1, 0, 1]) == pytest.approx(0.5)
    assert roc_auc([1, 2, 3], [1, 0, 0]) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="both classes"):
        roc_auc([1, 2], [1, 1])
    with pytest.raises(ValueError, match="differ"):
        roc_auc([1, 2, 3], [1, 0])


def test_roc_auc_matches_sklearn():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    for _ in range(20):
        y = rng.random(300) < rng.uniform(0.05, 0.6)
        s = np.round(rng.normal(size=300) + y * rng.uniform(0, 2), 1)  # rounding makes ties
        if y.all() or not y.any():
            continue
        assert roc_auc(s, y) == pytest.approx(sklearn_metrics.roc_auc_score(y, s), abs=1e-12)


def test_collision_labels_align_latents_with_frames():
    # One sequence, T = 5 frames, two digits: digit 0 hits in frame 1, digit 1 in frame 3.
    bounces = np.zeros((1, 5, 2), dtype=bool)
    bounces[0, 1, 0] = bounces[0, 3, 1] = True
    hits, valid = collision_labels(bounces, lag=1)  # z_t <- frame t-1; columns are z_1..z_4
    np.testing.assert_array_equal(hits[0], [False, True, False, True])
    assert valid.all()
    hits, valid = collision_labels(bounces, lag=0)  # z_t <- frame t
    np.testing.assert_array_equal(hits[0], [True, False, True, False])
    hits, valid = collision_labels(bounces, lag=2)  # z_1 has no frame -1
    np.testing.assert_array_equal(valid[0], [False, True, True, True])
    np.testing.assert_array_equal(hits[0], [False, False, True, False])


def test_collision_auc_on_a_synthetic_case_with_known_answer():
    rng = np.random.default_rng(1)
    bounces = rng.random((50, 12, 2)) < 0.08
    hits, _ = collision_labels(bounces, lag=1)
    n_pos, n_neg = int(hits.sum()), int((~hits).sum())
    # Sigma 1 after a hit and 0 elsewhere: perfect ranking.
    assert collision_scores(hits * 1.0, bounces)["auc"] == pytest.approx(1.0)
    # Then raise m of the other steps to 1: each ties with every positive -> 1 - m / (2 n_neg).
    sigma = hits * 1.0
    others = np.argwhere(~hits)[:17]
    sigma[others[:, 0], others[:, 1]] = 1.0
    scores = collision_scores(sigma, bounces)
    assert scores["auc"] == pytest.approx(1 - 17 / (2 * n_neg))
    assert scores["n_hit"] == n_pos and scores["n_other"] == n_neg
    assert scores["mean_sigma_hit"] == 1.0
    assert scores["mean_sigma_other"] == pytest.approx(17 / n_neg)
    # The wrong alignment scores the same sigma differently; burn-in drops the first steps.
    assert collision_scores(hits * 1.0, bounces, lag=0)["auc"] < 0.9
    dropped = collision_scores(sigma, bounces, burn_in=3)
    assert dropped["n_hit"] + dropped["n_other"] == 50 * (11 - 3)
    with pytest.raises(ValueError, match="need both kinds"):
        collision_scores(sigma, np.zeros_like(bounces))
    with pytest.raises(ValueError, match="burn_in"):
        collision_scores(sigma, bounces, burn_in=-1)


def test_collision_analysis_on_sequences_and_plot(lp, tmp_path):
    x, bounces = smmnist_collision_data(sequences=6, frames=8, num_digits=2, seed=0)
    assert x.shape == (6, 8, 1, 64, 64) and bounces.shape == (6, 8, 2)
    out = collision_analysis(lp, x, bounces, lag=1, batch_size=4)
    sigma = prior_scale(lp, x).mean(-1).numpy()
    np.testing.assert_allclose(out["sigma"], sigma, rtol=1e-6)
    hits, _ = collision_labels(bounces, 1)
    assert out["auc"] == pytest.approx(roc_auc(sigma, hits))
    assert set(out["auc_by_lag"]) == {"0", "1", "2"}
    png = plot_collisions(out["sigma"], bounces, tmp_path / "c.png", n_show=2)
    assert png.stat().st_size > 1000


def test_sigma_maps_of_a_convlstm_model_cover_the_frame():
    svg = SVG(tiny_config(rnn="conv", feature_size=8)).eval()
    x, _ = smmnist_collision_data(2, 6, 1, seed=0)
    maps = sigma_maps(svg, x)
    assert maps.shape == (2, 5, 64, 64)
    coarse = prior_scale(svg, x).mean(2)  # [B, T-1, 8, 8]: each cell covers an 8x8 pixel block
    torch.testing.assert_close(maps[:, :, ::8, ::8], coarse)
    torch.testing.assert_close(maps[:, :, 7::8, 7::8], coarse)
    with pytest.raises(ValueError, match="ConvLSTM"):
        sigma_maps(SVG(tiny_config()), x)
