"""The 4x4, stride-2 transposed convolution of DCGAN-64, five ways: milliseconds per call.

The decoder upsamples with it, and the input gradient of every encoder convolution is one; at
these channel counts oneDNN runs it 2.5-4x slower than a forward convolution of the same FLOPs.
For each shape (batch x in -> out channels, input side) it times, on the CPU, channels_last:

* ``torch``: ``F.conv_transpose2d`` (oneDNN);
* ``aten``: the same with oneDNN switched off (aten's own kernel);
* ``phases``: the four output phases as one 2x2 convolution to 4x the channels (exact, no zero
  taps), then an interleave copy into the output; ``phases conv`` is its convolution alone;
* ``sub-pixel``: :func:`svg_pyro.skipshare.conv_transpose_k4s2_subpixel` (a 3x3 convolution
  with zero taps, then one permute copy), which the decoder's last layer uses;
* ``adjoint``: the forward convolution that is this one's adjoint (same FLOPs), for scale.

and checks that ``phases`` and ``sub-pixel`` equal ``torch`` to fp32 rounding.

    OMP_NUM_THREADS=1 python benchmarks/transposed_conv.py
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
import torch.nn.functional as F

from svg_pyro.skipshare import conv_transpose_k4s2_subpixel

CL = torch.channels_last
# (batch, in, out, side): the nf-8 decoder's stages at batch 32 x 14 frames, and the encoder's
# input gradients at 32 x 15
SHAPES = [
    (448, 64, 32, 4),
    (448, 32, 16, 8),
    (448, 16, 8, 16),
    (448, 8, 1, 32),
    (480, 64, 32, 4),
    (480, 32, 16, 8),
    (480, 16, 8, 16),
]
# output row 2m + a reads, through kernel row 3 - a - 2u, input row m - 1 + a + u (u = 0, 1)
_ROWS = torch.tensor([[3, 1], [2, 0]])


def phase_weight(weight: torch.Tensor) -> torch.Tensor:
    """``[C, O, 4, 4]`` -> ``[4 O, C, 2, 2]``: channel ``(a, b, o)`` holds the taps of phase
    ``(a, b)``."""
    c, o = weight.shape[:2]
    k = weight[:, :, _ROWS[:, None, :, None], _ROWS[None, :, None, :]]  # [C, O, a, b, u, v]
    return k.permute(2, 3, 1, 0, 4, 5).reshape(4 * o, c, 2, 2)


def conv_transpose_phases(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``conv_transpose2d(x, weight, stride=2, padding=1)`` as a 2x2 convolution over the padded
    input to the four phases (output ``[N, 4 O, H + 1, W + 1]``), then phase ``(a, b)`` read at
    offset ``(a, b)`` into the interleaved output: ``x [N, C, H, W]`` -> ``[N, O, 2H, 2W]``."""
    n, _, h, w = x.shape
    o = weight.shape[1]
    full = F.conv2d(x, phase_weight(weight).contiguous(memory_format=CL), None, 1, 1)
    f = full.permute(0, 2, 3, 1)  # NHWC view
    out = x.new_empty(n, h, 2, w, 2, o)
    for a in (0, 1):
        for b in (0, 1):
            p = 2 * a + b
            out[:, :, a, :, b, :] = f[:, a : a + h, b : b + w, p * o : (p + 1) * o]
    return out.view(n, 2 * h, 2 * w, o).permute(0, 3, 1, 2)


def ms(fn, reps: int) -> float:
    """Wall milliseconds per call of ``fn`` (after two untimed calls)."""
    fn()
    fn()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return 1e3 * (time.perf_counter() - t0) / reps


def time_shape(n: int, c: int, o: int, h: int, reps: int) -> list[float]:
    """The six timings of one shape (see the module docstring), after checking the two
    reformulations against torch."""
    x = torch.randn(n, c, h, h).contiguous(memory_format=CL)
    w = (0.1 * torch.randn(c, o, 4, 4)).contiguous(memory_format=CL)
    ref = F.conv_transpose2d(x, w, None, 2, 1)
    for name, y in [
        ("phases", conv_transpose_phases(x, w)),
        ("sub-pixel", conv_transpose_k4s2_subpixel(x, w)),
    ]:
        err = (y - ref).abs().max().item()
        if err > 1e-4:
            raise SystemExit(f"{name} differs from torch by {err} at {(n, c, o, h)}")
    kp = phase_weight(w).contiguous(memory_format=CL)
    with torch.backends.mkldnn.flags(enabled=False):
        aten = ms(lambda: F.conv_transpose2d(x, w, None, 2, 1), reps)
    return [
        ms(lambda: F.conv_transpose2d(x, w, None, 2, 1), reps),
        aten,
        ms(lambda: conv_transpose_phases(x, w), reps),
        ms(lambda: F.conv2d(x, kp, None, 1, 1), reps),
        ms(lambda: conv_transpose_k4s2_subpixel(x, w).contiguous(), reps),
        ms(lambda: F.conv2d(ref, w, None, 2, 1), reps),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=6)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    print("| batch x in -> out, side | torch | aten | phases | phases conv | sub-pixel | adjoint |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for n, c, o, h in SHAPES:
        cells = " | ".join(f"{t:.1f}" for t in time_shape(n, c, o, h, args.reps))
        print(f"| {n} x {c} -> {o}, {h} | {cells} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
