"""The Pyro model of SVG and its priors (installed as ``svg_pyro.models``)."""

from svg_pyro.models.priors import (
    PRIORS,
    FixedPrior,
    LearnedPrior,
    Prior,
    build_prior,
    gaussian_steps,
    register_prior,
)
from svg_pyro.models.priors_extra import LaplacePrior, MixturePrior, StudentTPrior
from svg_pyro.models.svg import model

__all__ = [
    "PRIORS",
    "FixedPrior",
    "LaplacePrior",
    "LearnedPrior",
    "MixturePrior",
    "Prior",
    "StudentTPrior",
    "build_prior",
    "gaussian_steps",
    "model",
    "register_prior",
]
