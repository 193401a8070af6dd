"""DCGAN-64 encoder and decoder with skip connections (the original release's ``dcgan_64``)."""

from __future__ import annotations

import torch
from torch import nn


def _down(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 4, 2, 1), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2, inplace=True)
    )


def _up(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(c_in, c_out, 4, 2, 1),
        nn.BatchNorm2d(c_out),
        nn.LeakyReLU(0.2, inplace=True),
    )


class DCGANEncoder(nn.Module):
    """Frames ``[N, C, 64, 64]`` -> ``(h [N, g_dim], skips)``.

    ``skips`` are the four intermediate maps ``[N, nf, 32, 32]``, ``[N, 2nf, 16, 16]``,
    ``[N, 4nf, 8, 8]`` and ``[N, 8nf, 4, 4]`` that the decoder concatenates back in.
    """

    def __init__(self, g_dim: int, channels: int = 1, nf: int = 64):
        super().__init__()
        self.g_dim = g_dim
        self.blocks = nn.ModuleList(
            [_down(channels, nf), _down(nf, nf * 2), _down(nf * 2, nf * 4), _down(nf * 4, nf * 8)]
        )
        self.head = nn.Sequential(
            nn.Conv2d(nf * 8, g_dim, 4, 1, 0), nn.BatchNorm2d(g_dim), nn.Tanh()
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        skips = []
        for block in self.blocks:
            x = block(x)
            skips.append(x)
        return self.head(x).flatten(1), skips


class DCGANDecoder(nn.Module):
    """``(g [N, g_dim], skips)`` -> frame means ``[N, C, 64, 64]`` in (0, 1)."""

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
        self.blocks = nn.ModuleList([_up(nf * 16, nf * 4), _up(nf * 8, nf * 2), _up(nf * 4, nf)])
        self.out = nn.Sequential(nn.ConvTranspose2d(nf * 2, channels, 4, 2, 1), nn.Sigmoid())

    def forward(self, g: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        x = self.head(g.reshape(g.shape[0], self.g_dim, 1, 1))
        for block, skip in zip(self.blocks, reversed(skips[1:])):
            x = block(torch.cat([x, skip], 1))
        return self.out(torch.cat([x, skips[0]], 1))


class DCGANMapEncoder(nn.Module):
    """Frames ``[N, C, 64, 64]`` -> ``(h [N, g_dim, s, s], skips)`` for the ConvLSTM variant.

    The DCGAN-64 stages down to ``s`` x ``s`` (s = 8 or 4), then a 3x3 conv + BatchNorm + tanh to
    ``g_dim`` channels. ``skips`` are the stage outputs, finest first, as in :class:`DCGANEncoder`.
    """

    def __init__(self, g_dim: int, channels: int = 1, nf: int = 64, feature_size: int = 8):
        super().__init__()
        widths = [nf, nf * 2, nf * 4, nf * 8][: {8: 3, 4: 4}[feature_size]]
        ins = [channels, *widths[:-1]]
        self.blocks = nn.ModuleList([_down(i, o) for i, o in zip(ins, widths)])
        self.head = nn.Sequential(
            nn.Conv2d(widths[-1], g_dim, 3, 1, 1), nn.BatchNorm2d(g_dim), nn.Tanh()
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        skips = []
        for block in self.blocks:
            x = block(x)
            skips.append(x)
        return self.head(x), skips


class DCGANMapDecoder(nn.Module):
    """``(g [N, g_dim, s, s], skips)`` -> frame means ``[N, C, 64, 64]`` in (0, 1)."""

    # forward is head, then stage(cat([x, skip])) per skip: svg_pyro.skipshare may split it
    skip_stages = True

    def __init__(self, g_dim: int, channels: int = 1, nf: int = 64, feature_size: int = 8):
        super().__init__()
        widths = [nf, nf * 2, nf * 4, nf * 8][: {8: 3, 4: 4}[feature_size]]
        self.head = nn.Sequential(
            nn.Conv2d(g_dim, widths[-1], 3, 1, 1),
            nn.BatchNorm2d(widths[-1]),
            nn.LeakyReLU(0.2, inplace=True),
        )
        self.blocks = nn.ModuleList(
            [_up(2 * widths[k], widths[k - 1]) for k in range(len(widths) - 1, 0, -1)]
        )
        self.out = nn.Sequential(nn.ConvTranspose2d(2 * nf, channels, 4, 2, 1), nn.Sigmoid())

    def forward(self, g: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        x = self.head(g)
        for block, skip in zip(self.blocks, reversed(skips[1:])):
            x = block(torch.cat([x, skip], 1))
        return self.out(torch.cat([x, skips[0]], 1))
