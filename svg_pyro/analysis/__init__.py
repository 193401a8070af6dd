"""Posterior analysis of a trained model, by concern:

* :mod:`svg_pyro.analysis.arviz_export`: :func:`to_inference_data`, a model's latents,
  reconstructions, log-likelihood, per-frame KL and forecasts as an :class:`arviz.InferenceData`.
* :mod:`svg_pyro.analysis.collisions`: the learned prior's sigma (:func:`prior_scale`,
  :func:`sigma_maps`) and the collision study (:func:`collision_analysis`, the paper's Figure 6
  as a ROC AUC).
* :mod:`svg_pyro.analysis.identity`: do forecast digits keep their identity? (:func:`best_match`,
  :func:`identity_frames`, :func:`calibrate`, :func:`ink`, :func:`teacher_forced_matches`,
  :func:`identity_grid`, :func:`run_identity`, :func:`testset_identity`, and
  :class:`IdentityLabels`, the labels of ``svg-pyro sample --identity``).
* :mod:`svg_pyro.analysis.kl`: the KL per frame of the training objective
  (:func:`step_distributions`, :func:`step_kl`, :func:`kl_per_frame`, :func:`run_kl`): has the
  posterior collapsed?

Their command line, ``svg-pyro analyze collisions|identity|kl``, is
:mod:`svg_pyro.commands.analyze`. Every public name of the four is re-exported here, so ``from
svg_pyro.analysis import to_inference_data`` works as it always has.
"""

from svg_pyro.analysis.arviz_export import to_inference_data
from svg_pyro.analysis.collisions import (
    DEFAULT_LAGS,
    collision_analysis,
    collision_labels,
    collision_scores,
    plot_collisions,
    plot_sigma_heatmap,
    prior_scale,
    roc_auc,
    run_collisions,
    sigma_maps,
    smmnist_collision_data,
)
from svg_pyro.analysis.identity import (
    IdentityLabels,
    best_match,
    calibrate,
    digit_images,
    forecast_matches,
    identity_frames,
    identity_grid,
    ink,
    run_identity,
    summarize_identity,
    teacher_forced_matches,
    teacher_forced_means,
    testset_identity,
)
from svg_pyro.analysis.kl import kl_per_frame, plot_kl, run_kl, step_distributions, step_kl

__all__ = [
    "DEFAULT_LAGS",
    "IdentityLabels",
    "best_match",
    "calibrate",
    "digit_images",
    "forecast_matches",
    "identity_frames",
    "identity_grid",
    "ink",
    "run_identity",
    "summarize_identity",
    "testset_identity",
    "teacher_forced_matches",
    "teacher_forced_means",
    "collision_analysis",
    "collision_labels",
    "collision_scores",
    "plot_collisions",
    "plot_sigma_heatmap",
    "prior_scale",
    "roc_auc",
    "run_collisions",
    "sigma_maps",
    "smmnist_collision_data",
    "to_inference_data",
    "kl_per_frame",
    "plot_kl",
    "run_kl",
    "step_distributions",
    "step_kl",
]
