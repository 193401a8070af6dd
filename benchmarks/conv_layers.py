"""Each convolution of the DCGAN-64 networks at a size, alone: milliseconds and GFLOP/s.

Times forward and forward + backward (input and weight gradients; the first encoder layer's
input needs none) of every encoder and decoder convolution as training runs them (the decoder
stages on their own channels; the skip halves of shared-skip decoding are smaller copies), in
the layout ``--channels-last`` chooses, with CPU time per call. Shows which layers run far from
the matrix-product throughput.

    OMP_NUM_THREADS=1 python benchmarks/conv_layers.py --nf 8 --batch-size 32 --channels-last
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
from torch import nn


def cpu_ms(fn, reps: int) -> float:
    """CPU milliseconds per call of ``fn`` (after one untimed call)."""
    fn()
    t0 = time.process_time()
    for _ in range(reps):
        fn()
    return 1e3 * (time.process_time() - t0) / reps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nf", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--frames", type=int, default=15)
    parser.add_argument("--g-dim", type=int, default=64)
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--reps", type=int, default=10)
    args = parser.parse_args(argv)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    nf, g = args.nf, args.g_dim
    n_enc = args.batch_size * args.frames  # every frame encoded once
    n_dec = args.batch_size * (args.frames - 1)  # every predicted frame decoded
    layers = [  # name, transposed, batch, c_in, c_out, input side, kernel, stride, padding
        ("encoder 1", False, n_enc, 1, nf, 64, 4, 2, 1),
        ("encoder 2", False, n_enc, nf, 2 * nf, 32, 4, 2, 1),
        ("encoder 3", False, n_enc, 2 * nf, 4 * nf, 16, 4, 2, 1),
        ("encoder 4", False, n_enc, 4 * nf, 8 * nf, 8, 4, 2, 1),
        ("encoder head", False, n_enc, 8 * nf, g, 4, 4, 1, 0),
        ("decoder head", True, n_dec, g, 8 * nf, 1, 4, 1, 0),
        ("decoder 1", True, n_dec, 8 * nf, 4 * nf, 4, 4, 2, 1),
        ("decoder 2", True, n_dec, 4 * nf, 2 * nf, 8, 4, 2, 1),
        ("decoder 3", True, n_dec, 2 * nf, nf, 16, 4, 2, 1),
        ("decoder out (torch)", True, n_dec, nf, 1, 32, 4, 2, 1),
    ]
    print("| layer | batch x in -> out, side | fwd ms | GFLOP/s | fwd+bwd ms | GFLOP/s |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, transposed, n, cin, cout, side, k, s, p in layers:
        conv = (nn.ConvTranspose2d if transposed else nn.Conv2d)(cin, cout, k, s, p)
        conv = conv.to(memory_format=fmt)
        x = torch.randn(n, cin, side, side).contiguous(memory_format=fmt)
        x.requires_grad_(name != "encoder 1")
        y = conv(x)
        grad = torch.randn_like(y)
        # a transposed convolution spreads each input pixel over k x k outputs
        flops = 2 * n * (side if transposed else y.shape[-1]) ** 2 * cin * cout * k * k
        wrt = [x, conv.weight] if x.requires_grad else [conv.weight]
        fwd = cpu_ms(lambda c=conv, x=x: c(x), args.reps)
        both = cpu_ms(lambda c=conv, x=x, w=wrt, g=grad: torch.autograd.grad(c(x), w, g), args.reps)
        total = flops * (1 + len(wrt))
        print(
            f"| {name} | {n} x {cin} -> {cout}, {side} | {fwd:.1f} | {flops / fwd / 1e6:.0f} "
            f"| {both:.1f} | {total / both / 1e6:.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
