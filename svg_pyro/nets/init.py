"""The original release's weight initialisation."""

from torch import nn


def init_weights(module: nn.Module) -> None:
    """Conv and Linear weights N(0, 0.02) with zero bias; BatchNorm weight N(1, 0.02), bias 0.

    Recurrent cells keep PyTorch's default uniform initialisation, as in the original.
    Use as ``net.apply(init_weights)``.
    """
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)
