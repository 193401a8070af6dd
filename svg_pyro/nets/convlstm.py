"""Convolutional LSTMs (Shi et al., 2015) over feature maps: the ``rnn="conv"`` variant.

Shapes mirror :mod:`svg_pyro.nets.lstm` with a map in place of a vector: inputs are
``[B, L, C, h, w]`` and states are per-layer ``(h, c)`` maps ``[B, hidden, h, w]``. The input
convolution of every gate is applied to all L steps in one call; only the hidden-state
convolution steps through time.
"""

from __future__ import annotations

import torch
from torch import nn

ConvState = list[tuple[torch.Tensor, torch.Tensor]] | None


class ConvLSTMCell(nn.Module):
    """One ConvLSTM layer. Gates ``i, f, g, o`` from ``W_x * x + W_h * h + b`` (3x3 'same' convs);
    ``c' = f c + i g``, ``h' = o tanh(c')`` with sigmoid ``i, f, o`` and tanh ``g``."""

    def __init__(self, in_channels: int, hidden: int, kernel_size: int = 3):
        super().__init__()
        self.hidden = hidden
        pad = kernel_size // 2
        self.x2gates = nn.Conv2d(in_channels, 4 * hidden, kernel_size, padding=pad)
        self.h2gates = nn.Conv2d(hidden, 4 * hidden, kernel_size, padding=pad, bias=False)

    def step(
        self, x_gates: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``x_gates [B, 4*hidden, h, w]`` (this step's input part), ``state`` -> new ``(h, c)``."""
        h, c = state
        i, f, g, o = (x_gates + self.h2gates(h)).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """``x [B, L, C, h, w]`` -> ``(hidden maps [B, L, hidden, h, w], last state)``."""
        b, length = x.shape[:2]
        gates = self.x2gates(x.flatten(0, 1)).unflatten(0, (b, length))
        if state is None:
            zeros = x.new_zeros(b, self.hidden, *x.shape[3:])
            state = (zeros, zeros)
        out = []
        for t in range(length):
            state = self.step(gates[:, t], state)
            out.append(state[0])
        return torch.stack(out, 1), state


class StackedConvLSTM(nn.Module):
    """A 3x3 conv embedding to ``hidden`` channels, then ``n_layers`` stacked ConvLSTM cells."""

    def __init__(self, in_channels: int, hidden: int, n_layers: int):
        super().__init__()
        self.embed = nn.Conv2d(in_channels, hidden, 3, padding=1)
        self.cells = nn.ModuleList([ConvLSTMCell(hidden, hidden) for _ in range(n_layers)])

    def forward(self, x: torch.Tensor, state: ConvState = None) -> tuple[torch.Tensor, ConvState]:
        b, length = x.shape[:2]
        y = self.embed(x.flatten(0, 1)).unflatten(0, (b, length))
        new_state = []
        for i, cell in enumerate(self.cells):
            y, s = cell(y, None if state is None else state[i])
            new_state.append(s)
        return y, new_state


def _per_step(conv: nn.Module, y: torch.Tensor) -> torch.Tensor:
    """Apply a 2-d module to every step of ``y [B, L, C, h, w]``."""
    return conv(y.flatten(0, 1)).unflatten(0, y.shape[:2])


class ConvPredictor(nn.Module):
    """The frame predictor over maps: ``[h_{t-1}, z_t]`` ``[B, L, C_in, h, w]`` ->
    ``g_t [B, L, g_dim, h, w]`` (tanh)."""

    def __init__(self, in_channels: int, g_dim: int, hidden: int, n_layers: int):
        super().__init__()
        self.rnn = StackedConvLSTM(in_channels, hidden, n_layers)
        self.out = nn.Sequential(nn.Conv2d(hidden, g_dim, 3, padding=1), nn.Tanh())

    def forward(self, x: torch.Tensor, state: ConvState = None) -> tuple[torch.Tensor, ConvState]:
        y, state = self.rnn(x, state)
        return _per_step(self.out, y), state


class GaussianConvLSTM(nn.Module):
    """``x [B, L, C_in, h, w]`` -> ``(mu, logvar)`` each ``[B, L, z_channels, h, w]``, and state."""

    def __init__(self, in_channels: int, z_channels: int, hidden: int, n_layers: int):
        super().__init__()
        self.rnn = StackedConvLSTM(in_channels, hidden, n_layers)
        self.mu = nn.Conv2d(hidden, z_channels, 3, padding=1)
        self.logvar = nn.Conv2d(hidden, z_channels, 3, padding=1)

    def forward(self, x: torch.Tensor, state: ConvState = None):
        y, state = self.rnn(x, state)
        return _per_step(self.mu, y), _per_step(self.logvar, y), state
