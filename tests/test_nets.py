import pytest
import torch
from torch import nn

from svg_pyro.nets import (
    DCGANDecoder,
    DCGANEncoder,
    GaussianLSTM,
    PredictorLSTM,
    StackedLSTM,
    init_weights,
)


@pytest.mark.parametrize("channels,nf,g_dim", [(1, 4, 8), (3, 8, 16)])
def test_dcgan_shapes(channels, nf, g_dim):
    enc, dec = DCGANEncoder(g_dim, channels, nf), DCGANDecoder(g_dim, channels, nf)
    x = torch.rand(5, channels, 64, 64)
    h, skips = enc(x)
    assert h.shape == (5, g_dim)
    assert [tuple(s.shape) for s in skips] == [
        (5, nf, 32, 32),
        (5, 2 * nf, 16, 16),
        (5, 4 * nf, 8, 8),
        (5, 8 * nf, 4, 4),
    ]
    assert h.abs().max() <= 1  # tanh head
    y = dec(h, skips)
    assert y.shape == x.shape
    assert ((y > 0) & (y < 1)).all()  # sigmoid output


def test_paper_encoder_layers():
    enc = DCGANEncoder(128, 1, 64)
    convs = [m for m in enc.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride) for c in convs] == [
        (1, 64, (4, 4), (2, 2)),
        (64, 128, (4, 4), (2, 2)),
        (128, 256, (4, 4), (2, 2)),
        (256, 512, (4, 4), (2, 2)),
        (512, 128, (4, 4), (1, 1)),
    ]
    dec = DCGANDecoder(128, 1, 64)
    ups = [m for m in dec.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [(c.in_channels, c.out_channels) for c in ups] == [
        (128, 512),
        (1024, 256),
        (512, 128),
        (256, 64),
        (128, 1),
    ]


def test_lstm_shapes_and_stepping_equals_sequence():
    pred = PredictorLSTM(input_size=7, g_dim=5, rnn_size=12, n_layers=2)
    x = torch.randn(4, 6, 7)
    y, state = pred(x)
    assert y.shape == (4, 6, 5) and state[0].shape == (2, 4, 12)
    # one call over the sequence == one call per step carrying the state
    steps, s = [], None
    for t in range(6):
        out, s = pred(x[:, t : t + 1], s)
        steps.append(out)
    torch.testing.assert_close(torch.cat(steps, 1), y)
    g = GaussianLSTM(7, 3, 12, 1)
    mu, logvar, _ = g(x)
    assert mu.shape == logvar.shape == (4, 6, 3)


def test_stacked_lstm_matches_original_lstmcell_stack():
    """nn.LSTM layers compute exactly what the original's stacked LSTMCells compute."""
    torch.manual_seed(0)
    net = StackedLSTM(5, 8, n_layers=2)
    cells = [nn.LSTMCell(8, 8) for _ in range(2)]
    for i, cell in enumerate(cells):
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, name).data.copy_(getattr(net.lstm, f"{name}_l{i}"))
    x = torch.randn(3, 4, 5)
    y, _ = net(x)
    hidden = [(torch.zeros(3, 8), torch.zeros(3, 8)) for _ in cells]
    for t in range(4):
        h_in = net.embed(x[:, t])
        for i, cell in enumerate(cells):
            hidden[i] = cell(h_in, hidden[i])
            h_in = hidden[i][0]
        torch.testing.assert_close(h_in, y[:, t])


def test_init_weights_matches_original():
    torch.manual_seed(0)
    conv, lin, bn = nn.Conv2d(64, 64, 4), nn.Linear(512, 512), nn.BatchNorm2d(4096)
    for m in (conv, lin, bn):
        nn.init.constant_(m.weight, 5.0)
        nn.init.constant_(m.bias, 5.0)
        init_weights(m)
    for m in (conv, lin):
        assert abs(m.weight.std().item() - 0.02) < 0.002 and abs(m.weight.mean().item()) < 0.002
        assert (m.bias == 0).all()
    assert abs(bn.weight.mean().item() - 1.0) < 0.002 and abs(bn.weight.std().item() - 0.02) < 0.002
    assert (bn.bias == 0).all()
