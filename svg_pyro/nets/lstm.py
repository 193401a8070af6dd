"""The recurrent networks: the frame predictor and the Gaussian LSTMs (prior and posterior).

Each is the original's ``Linear`` embedding followed by ``n_layers`` stacked LSTM cells of
``rnn_size``. The stack is one :class:`torch.nn.LSTM`: its parameters and arithmetic are those of
the original's stacked ``LSTMCell`` s, and it runs a whole sequence in one call when every input
is known (teacher-forced training) or a single step when it is not (generation). The same module
serves both, so the recurrence is written once.
"""

from __future__ import annotations

import torch
from torch import nn

State = tuple[torch.Tensor, torch.Tensor] | None


class StackedLSTM(nn.Module):
    """``x [B, L, input_size]`` -> ``(top hidden states [B, L, rnn_size], state)``.

    ``state`` is ``(h, c)`` each ``[n_layers, B, rnn_size]``; ``None`` starts from zeros, as the
    original does for every sequence.
    """

    def __init__(self, input_size: int, rnn_size: int, n_layers: int):
        super().__init__()
        self.embed = nn.Linear(input_size, rnn_size)
        self.lstm = nn.LSTM(rnn_size, rnn_size, num_layers=n_layers, batch_first=True)

    def forward(self, x: torch.Tensor, state: State = None) -> tuple[torch.Tensor, State]:
        return self.lstm(self.embed(x), state)


class PredictorLSTM(nn.Module):
    """The frame predictor: ``[h_{t-1}, z_t]`` ``[B, L, input_size]`` -> ``g_t [B, L, g_dim]``."""

    def __init__(self, input_size: int, g_dim: int, rnn_size: int, n_layers: int):
        super().__init__()
        self.rnn = StackedLSTM(input_size, rnn_size, n_layers)
        self.out = nn.Sequential(nn.Linear(rnn_size, g_dim), nn.Tanh())

    def forward(self, x: torch.Tensor, state: State = None) -> tuple[torch.Tensor, State]:
        y, state = self.rnn(x, state)
        return self.out(y), state


class GaussianLSTM(nn.Module):
    """``x [B, L, input_size]`` -> ``(mu, logvar)`` each ``[B, L, z_dim]``, and the state."""

    def __init__(self, input_size: int, z_dim: int, rnn_size: int, n_layers: int):
        super().__init__()
        self.rnn = StackedLSTM(input_size, rnn_size, n_layers)
        self.mu = nn.Linear(rnn_size, z_dim)
        self.logvar = nn.Linear(rnn_size, z_dim)

    def forward(
        self, x: torch.Tensor, state: State = None
    ) -> tuple[torch.Tensor, torch.Tensor, State]:
        y, state = self.rnn(x, state)
        return self.mu(y), self.logvar(y), state
