"""SVG-LP trained the way the original release trains it: the plain-PyTorch baseline.

Written after the original ``train_svg_lp.py`` (Denton & Fergus, 2018): a Python loop over
frames; at every step the input frame *and* the target frame go through the encoder; the
recurrences are stacks of ``nn.LSTMCell`` stepped one frame at a time (the original's
``lstm`` / ``gaussian_lstm`` modules); the loss is ``sum_t [MSE_t + beta * KL_t]`` written by
hand; the mean squared error and KL are read back to the host at the end of every step (the
original returns them as numpy values). One Adam over all networks (the original keeps one per
network, which is the same arithmetic).

The encoder and decoder are this package's (``svg_pyro.svg.build_frame_nets``: DCGAN-64 as in
the original), so both sides of ``benchmarks/compare.py`` run the same networks at the same
sizes. :meth:`PlainSVG.load_from` copies an :class:`svg_pyro.SVG`'s weights (``nn.LSTM``
layers map one to one onto ``LSTMCell`` s), which the tests use to check that both compute the
same objective.

    python benchmarks/plain_svg.py --json [the flags of ``svg-pyro bench``]

prints the same JSON record as ``svg-pyro bench`` (``impl: "plain-loop"``). The baseline is
the original's: fp32, eager, training mode only.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from svg_pyro import bench
from svg_pyro.config import SVGConfig
from svg_pyro.device import resolve_device
from svg_pyro.nets import init_weights
from svg_pyro.svg import SVG, build_frame_nets

Hidden = list[tuple[torch.Tensor, torch.Tensor]]


class _Cells(nn.Module):
    """A Linear embedding into ``n_layers`` stacked ``LSTMCell`` s of ``hidden_size``."""

    def __init__(self, input_size: int, hidden_size: int, n_layers: int):
        super().__init__()
        self.hidden_size = hidden_size
        self.embed = nn.Linear(input_size, hidden_size)
        self.lstm = nn.ModuleList([nn.LSTMCell(hidden_size, hidden_size) for _ in range(n_layers)])

    def init_hidden(self, batch: int, device: torch.device) -> Hidden:
        """Zero ``(h, c)`` per layer, each ``[B, hidden_size]``, as at the start of a sequence."""
        z = torch.zeros(batch, self.hidden_size, device=device)
        return [(z, z) for _ in self.lstm]

    def cells(self, x: torch.Tensor, hidden: Hidden) -> tuple[torch.Tensor, Hidden]:
        """One time step: ``x [B, input_size]`` -> top hidden state ``[B, hidden_size]``."""
        h_in = self.embed(x)
        new = []
        for cell, state in zip(self.lstm, hidden):
            state = cell(h_in, state)
            new.append(state)
            h_in = state[0]
        return h_in, new


class CellLSTM(_Cells):
    """The original's ``lstm``: ``forward(x [B, in], hidden) -> (y [B, out], hidden)``."""

    def __init__(self, input_size: int, output_size: int, hidden_size: int, n_layers: int):
        super().__init__(input_size, hidden_size, n_layers)
        self.output = nn.Sequential(nn.Linear(hidden_size, output_size), nn.Tanh())

    def forward(self, x: torch.Tensor, hidden: Hidden) -> tuple[torch.Tensor, Hidden]:
        h, hidden = self.cells(x, hidden)
        return self.output(h), hidden


class CellGaussianLSTM(_Cells):
    """The original's ``gaussian_lstm``: ``forward(x [B, in], hidden) -> (z, mu, logvar, hidden)``.

    ``z = mu + eps * exp(logvar / 2)`` with ``eps ~ N(0, I)``, each ``[B, output_size]``.
    """

    def __init__(self, input_size: int, output_size: int, hidden_size: int, n_layers: int):
        super().__init__(input_size, hidden_size, n_layers)
        self.mu_net = nn.Linear(hidden_size, output_size)
        self.logvar_net = nn.Linear(hidden_size, output_size)

    def forward(self, x: torch.Tensor, hidden: Hidden) -> tuple[Any, ...]:
        h, hidden = self.cells(x, hidden)
        mu, logvar = self.mu_net(h), self.logvar_net(h)
        std = logvar.mul(0.5).exp()
        eps = torch.empty_like(std).normal_()
        return eps.mul(std).add(mu), mu, logvar, hidden


class PlainSVG(nn.Module):
    """SVG-LP's five networks, as the original builds them: ``encoder``, ``decoder``,
    ``frame_predictor``, ``posterior`` and ``prior``."""

    def __init__(self, config: SVGConfig):
        super().__init__()
        if config.prior != "learned":
            raise ValueError("the plain baseline is SVG-LP (prior='learned')")
        self.config = config
        c = config
        self.encoder, self.decoder = build_frame_nets(c)
        self.frame_predictor = CellLSTM(c.g_dim + c.z_dim, c.g_dim, c.rnn_size, c.predictor_layers)
        self.posterior = CellGaussianLSTM(c.g_dim, c.z_dim, c.rnn_size, c.posterior_layers)
        self.prior = CellGaussianLSTM(c.g_dim, c.z_dim, c.rnn_size, c.prior_layers)
        self.apply(init_weights)

    @torch.no_grad()
    def load_from(self, svg: SVG) -> PlainSVG:
        """Copy the weights of ``svg`` (an SVG-LP with the same config) into these networks."""
        self.encoder.load_state_dict(svg.encoder.state_dict())
        self.decoder.load_state_dict(svg.decoder.state_dict())
        pairs = [
            (self.frame_predictor, svg.predictor.rnn, {"output": svg.predictor.out}),
            (
                self.posterior,
                svg.posterior.net.rnn,
                {"mu_net": svg.posterior.net.mu, "logvar_net": svg.posterior.net.logvar},
            ),
            (
                self.prior,
                svg.prior.net.rnn,
                {"mu_net": svg.prior.net.mu, "logvar_net": svg.prior.net.logvar},
            ),
        ]
        for cells, stacked, heads in pairs:
            cells.embed.load_state_dict(stacked.embed.state_dict())
            for k, cell in enumerate(cells.lstm):
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(cell, name).copy_(getattr(stacked.lstm, f"{name}_l{k}"))
            for name, module in heads.items():
                getattr(cells, name).load_state_dict(module.state_dict())
        return self


def kl_criterion(
    mu1: torch.Tensor, logvar1: torch.Tensor, mu2: torch.Tensor, logvar2: torch.Tensor
) -> torch.Tensor:
    """KL(N(mu1, sigma1) || N(mu2, sigma2)) summed over latent dims, averaged over the batch."""
    sigma1 = logvar1.mul(0.5).exp()
    sigma2 = logvar2.mul(0.5).exp()
    kld = (
        torch.log(sigma2 / sigma1)
        + (torch.exp(logvar1) + (mu1 - mu2) ** 2) / (2 * torch.exp(logvar2))
        - 1 / 2
    )
    return kld.sum() / mu1.shape[0]


def plain_loss(
    net: PlainSVG, frames: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(mse + beta * kld, mse, kld)`` of ``frames [B, T, C, H, W]``, the original's loop.

    ``mse`` is the sum over predicted frames of the mean squared error over batch and pixels,
    ``kld`` the sum over frames of the batch-mean KL.
    """
    c = net.config
    x = frames.transpose(0, 1).contiguous()  # the original's data layout: [T, B, C, H, W]
    batch, device = x.shape[1], x.device
    pred_hidden = net.frame_predictor.init_hidden(batch, device)
    post_hidden = net.posterior.init_hidden(batch, device)
    prior_hidden = net.prior.init_hidden(batch, device)
    last = {"last_context": c.n_past - 1, "original": max(c.n_past - 2, 0)}.get(c.skip_source)
    mse = kld = x.new_zeros(())
    skip = None
    for i in range(1, x.shape[0]):
        h, h_skips = net.encoder(x[i - 1])
        h_target = net.encoder(x[i])[0]
        if last is None or i - 1 <= last:  # skips of frame i-1 while it is a context frame
            skip = h_skips
        z_t, mu, logvar, post_hidden = net.posterior(h_target, post_hidden)
        _, mu_p, logvar_p, prior_hidden = net.prior(h, prior_hidden)
        h_pred, pred_hidden = net.frame_predictor(torch.cat([h, z_t], 1), pred_hidden)
        x_pred = net.decoder(h_pred, skip)
        mse = mse + F.mse_loss(x_pred, x[i])
        kld = kld + kl_criterion(mu, logvar, mu_p, logvar_p)
    return mse + kld * c.beta, mse, kld


class PlainTrainer:
    """The original's training step: ``step(frames)`` -> ``(mse, kld)`` per frame, as floats."""

    def __init__(self, config: SVGConfig, lr: float = 0.002, device: str | torch.device = "cpu"):
        self.net = PlainSVG(config).to(device)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=lr, betas=(0.9, 0.999))

    def step(self, frames: torch.Tensor) -> tuple[float, float]:
        self.net.train()
        self.optimizer.zero_grad()
        loss, mse, kld = plain_loss(self.net, frames)
        loss.backward()
        self.optimizer.step()
        t = frames.shape[1]
        return mse.item() / t, kld.item() / t


def plain_cost_runner(config: SVGConfig) -> tuple[Any, list[torch.Tensor]]:
    """``(run, parameters)`` for :func:`svg_pyro.bench.count_cost`: the loop's forward and
    backward on ``n`` random sequences, on a fresh CPU copy of the networks."""
    net = PlainSVG(config)

    def run(n: int) -> None:
        frames = bench.random_frames(n, config, "cpu", seed=n)
        net.train()
        plain_loss(net, frames)[0].backward()

    return run, list(net.parameters())


def check_plain_args(args: argparse.Namespace) -> None:
    """The baseline is fp32, eager, training only: refuse flags that would change that."""
    if args.mode != "train":
        raise ValueError("the plain loop only times training (--mode train)")
    if args.precision != "fp32" or args.compile or args.channels_last:
        raise ValueError("the plain loop runs as the original does: fp32, eager, NCHW")


def run_plain(args: argparse.Namespace) -> dict[str, Any]:
    """Build, warm up and time the plain loop; return its record (``svg-pyro bench``'s keys)."""
    check_plain_args(args)
    config = bench.model_config(args)
    bench.train_config(args)  # the same checks of batch size, steps, ...
    device = resolve_device(args.device)
    torch.manual_seed(args.seed)
    trainer = PlainTrainer(config, device=device)
    frames = bench.random_frames(args.batch_size, config, device, args.seed)
    for _ in range(args.warmup):
        trainer.step(frames)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    step_s = bench.time_steps(lambda: trainer.step(frames), args.steps, device)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    cost = matmul = None
    if not args.no_count:
        matmul = bench.matmul_flops_per_s(device, "fp32")
        run, params = plain_cost_runner(config)
        cost = bench.count_cost(run, args.batch_size, params)
    return bench.make_record(
        impl="plain-loop",
        args=args,
        config=config,
        device=device,
        step_s=step_s,
        cost=cost,
        matmul=matmul,
        params=sum(p.numel() for p in trainer.net.parameters()),
        peak_memory=peak,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    bench.add_bench_arguments(parser)
    args = parser.parse_args(argv)
    if args.channels_last is None:  # the original's NCHW, whatever --size says
        args.channels_last = False
    bench.resolve_size(args)
    try:
        rec = run_plain(args)
    except ValueError as err:
        print(f"plain_svg: error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(rec) if args.json else bench.describe(rec))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
