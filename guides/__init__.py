"""The Pyro guide of SVG: the inference LSTM (installed as ``svg_pyro.guides``)."""

from svg_pyro.guides.posterior import Posterior, guide

__all__ = ["Posterior", "guide"]
