"""Plain-torch networks (no Pyro here): encoders, decoders and recurrent cells."""

from svg_pyro.nets.convlstm import ConvLSTMCell, ConvPredictor, GaussianConvLSTM, StackedConvLSTM
from svg_pyro.nets.dcgan import DCGANDecoder, DCGANEncoder, DCGANMapDecoder, DCGANMapEncoder
from svg_pyro.nets.init import init_weights
from svg_pyro.nets.lstm import GaussianLSTM, PredictorLSTM, StackedLSTM
from svg_pyro.nets.vgg import VGGDecoder, VGGEncoder

__all__ = [
    "ConvLSTMCell",
    "ConvPredictor",
    "DCGANMapDecoder",
    "DCGANMapEncoder",
    "GaussianConvLSTM",
    "StackedConvLSTM",
    "DCGANDecoder",
    "DCGANEncoder",
    "GaussianLSTM",
    "PredictorLSTM",
    "StackedLSTM",
    "VGGDecoder",
    "VGGEncoder",
    "init_weights",
]
