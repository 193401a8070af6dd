"""Plain-torch networks (no Pyro here): encoders, decoders and recurrent cells."""

from svg_pyro.nets.dcgan import DCGANDecoder, DCGANEncoder
from svg_pyro.nets.init import init_weights
from svg_pyro.nets.lstm import GaussianLSTM, PredictorLSTM, StackedLSTM

__all__ = [
    "DCGANDecoder",
    "DCGANEncoder",
    "GaussianLSTM",
    "PredictorLSTM",
    "StackedLSTM",
    "init_weights",
]
