"""The Pyro guide of SVG: the inference LSTM (installed as ``svg_pyro.guides``)."""

from svg_pyro.guides.posterior import Posterior, guide, posterior_latents

__all__ = ["Posterior", "guide", "posterior_latents"]
