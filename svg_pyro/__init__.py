"""svg-pyro: Stochastic Video Generation with a Learned Prior as a Pyro program.

Public surface::

    SVGConfig, TrainConfig, PRESETS   configuration (svg_pyro.config)
    SVG                               networks + Pyro model/guide + generate (svg_pyro.svg)
    SVGLoss, SVGELBO                  the training objective (svg_pyro.elbo)
    Prior, register_prior             the pluggable prior interface (svg_pyro.models)
    load_pretrained                   the shipped trained models (svg_pyro.pretrained)
"""

from svg_pyro.config import PRESETS, SVGConfig, TrainConfig, get_preset
from svg_pyro.elbo import SVGELBO, SVGLoss
from svg_pyro.models import PRIORS, Prior, register_prior
from svg_pyro.pretrained import load_pretrained
from svg_pyro.svg import SVG

__version__ = "0.1.0"

__all__ = [
    "PRESETS",
    "PRIORS",
    "SVG",
    "SVGELBO",
    "SVGConfig",
    "SVGLoss",
    "Prior",
    "TrainConfig",
    "get_preset",
    "load_pretrained",
    "register_prior",
]
