"""VGG-64 encoder and decoder with skip connections (the original release's ``vgg_64``).

Used for KTH and BAIR. Same interface as :mod:`svg_pyro.nets.dcgan`: the encoder returns
``(h, skips)`` with four skip maps, finest first, and the decoder takes them back.
"""

from __future__ import annotations

import torch
from torch import nn


def _vgg_layer(c_in: int, c_out: int) -> nn.Sequential:
    """3x3 convolution (stride 1, padding 1) + BatchNorm + LeakyReLU(0.2): keeps H and W."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, 1, 1), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2, inplace=True)
    )


def _stage(*widths: int) -> nn.Sequential:
    """Consecutive VGG layers ``widths[0] -> widths[1] -> ... -> widths[-1]``."""
    return nn.Sequential(*(_vgg_layer(a, b) for a, b in zip(widths[:-1], widths[1:])))


class VGGEncoder(nn.Module):
    """Frames ``[N, C, 64, 64]`` -> ``(h [N, g_dim], skips)``.

    Four stages of 3x3 VGG layers at 64, 32, 16 and 8 pixels (2, 2, 3 and 3 layers; widths
    nf, 2nf, 4nf, 8nf), each followed by a 2x2 max-pool, then ``Conv(8nf -> g_dim, k4)`` +
    BatchNorm + Tanh on the 4x4 map. ``skips`` are the stage outputs before pooling:
    ``[N, nf, 64, 64]``, ``[N, 2nf, 32, 32]``, ``[N, 4nf, 16, 16]``, ``[N, 8nf, 8, 8]``.
    """

    def __init__(self, g_dim: int, channels: int = 1, nf: int = 64):
        super().__init__()
        self.g_dim = g_dim
        self.blocks = nn.ModuleList(
            [
                _stage(channels, nf, nf),
                _stage(nf, nf * 2, nf * 2),
                _stage(nf * 2, nf * 4, nf * 4, nf * 4),
                _stage(nf * 4, nf * 8, nf * 8, nf * 8),
            ]
        )
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.head = nn.Sequential(
            nn.Conv2d(nf * 8, g_dim, 4, 1, 0), nn.BatchNorm2d(g_dim), nn.Tanh()
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        skips = []
        for i, block in enumerate(self.blocks):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        return self.head(self.pool(x)).flatten(1), skips


class VGGDecoder(nn.Module):
    """``(g [N, g_dim], skips)`` -> frame means ``[N, C, 64, 64]`` in (0, 1).

    Mirrors :class:`VGGEncoder`: ``ConvTranspose(g_dim -> 8nf, k4)`` to a 4x4 map, then at 8,
    16, 32 and 64 pixels a nearest x2 upsampling, concatenation with the matching skip map and
    3, 3, 2 and 1 VGG layers; the last layer is a 3x3 (transposed) convolution to C channels
    with a Sigmoid, as in the original.
    """

    # forward is head, then stage(cat([x, skip])) per skip: svg_pyro.skipshare may split it
    skip_stages = True

    def __init__(self, g_dim: int, channels: int = 1, nf: int = 64):
        super().__init__()
        self.g_dim = g_dim
        self.head = nn.Sequential(
            nn.ConvTranspose2d(g_dim, nf * 8, 4, 1, 0),
            nn.BatchNorm2d(nf * 8),
            nn.LeakyReLU(0.2, inplace=True),
        )
        self.blocks = nn.ModuleList(
            [
                _stage(nf * 16, nf * 8, nf * 8, nf * 4),  # 8x8
                _stage(nf * 8, nf * 4, nf * 4, nf * 2),  # 16x16
                _stage(nf * 4, nf * 2, nf),  # 32x32
            ]
        )
        self.out = nn.Sequential(
            _vgg_layer(nf * 2, nf),  # 64x64
            nn.ConvTranspose2d(nf, channels, 3, 1, 1),
            nn.Sigmoid(),
        )
        self.up = nn.Upsample(scale_factor=2, mode="nearest")

    def forward(self, g: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        x = self.head(g.reshape(g.shape[0], self.g_dim, 1, 1))
        for block, skip in zip(self.blocks, reversed(skips[1:])):
            x = block(torch.cat([self.up(x), skip], 1))
        return self.out(torch.cat([self.up(x), skips[0]], 1))
