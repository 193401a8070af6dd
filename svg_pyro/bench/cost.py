"""The cost model of ``svg-pyro bench``: FLOPs and saved activations of a step, counted with
:class:`torch.utils.flop_counter.FlopCounterMode` (with formulas for the fused LSTM kernels it
lacks), and the dense matmul throughput of a device (the denominator of MFU)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_flops_per_s(device: torch.device, precision: str = "fp32", reps: int = 3) -> float:
    """Dense matmul throughput (FLOP/s) of ``device`` at ``precision``: best of ``reps`` timings.

    Square products of 2048 (CPU) or 8192 (CUDA) in fp32 or bf16; on CUDA each timing runs ten
    products so that launch overhead does not count.
    """
    n, inner = (8192, 10) if device.type == "cuda" else (2048, 1)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g).to(device, dtype)
    b = torch.randn(n, n, generator=g).to(device, dtype)
    a @ b
    best = math.inf
    for _ in range(reps):
        synchronize(device)
        start = time.perf_counter()
        for _ in range(inner):
            a @ b
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 * inner / best


def _rnn_flops(multiplier: int) -> Callable[..., int]:
    """FLOP formula for fused RNN kernels: ``2 * rows * (sum of the weight matrices' sizes)``.

    ``FlopCounterMode`` has no formula for the oneDNN and cuDNN LSTM kernels; every gate
    pre-activation is one matrix-vector product per row (time step x sequence) and weight
    matrix. Backward computes input and weight gradients: twice the forward.
    """

    def count(*args: Any, out_val: Any = None, **kwargs: Any) -> int:
        x = args[0]
        mats: list[torch.Tensor] = []
        for a in args[1:5]:  # (mkldnn) weight0..weight3, or (cudnn) the weight list
            for w in a if isinstance(a, (list, tuple)) else [a]:
                if torch.is_tensor(w) and w.dim() == 2:
                    mats.append(w)
        rows = x.numel() // x.shape[-1]
        return multiplier * 2 * rows * sum(w.numel() for w in mats)

    count._get_raw = True  # type: ignore[attr-defined]  # FlopCounterMode: pass tensors, not shapes
    return count


def _rnn_flop_mapping() -> dict[Any, Callable[..., int]]:
    aten = torch.ops.aten
    mapping = {}
    for name, mult in (
        ("mkldnn_rnn_layer", 1),
        ("mkldnn_rnn_layer_backward", 2),
        ("_cudnn_rnn", 1),
        ("_cudnn_rnn_backward", 2),
    ):
        if hasattr(aten, name):
            mapping[getattr(aten, name)] = _rnn_flops(mult)
    return mapping


def count_once(run: Callable[[], Any], exclude: list[torch.Tensor]) -> tuple[int, int]:
    """``(FLOPs, bytes saved for backward)`` of one call of ``run`` (which should run backward).

    Saved tensors are counted once per storage; the storages of ``exclude`` (the parameters)
    are left out.
    """
    skip = {p.untyped_storage().data_ptr() for p in exclude}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in skip:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    counter = FlopCounterMode(display=False, custom_mapping=_rnn_flop_mapping())
    with counter, torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        run()
    return counter.get_total_flops(), sum(saved.values())


def count_cost(run: Callable[[int], Any], units: int, exclude: list[torch.Tensor]) -> dict:
    """FLOPs and saved bytes of ``run(units)``, from eager runs at 2 and 4 units.

    ``run(n)`` does the work for ``n`` sequences (or samples). Both quantities are affine in
    ``n`` (batch-sized tensors plus batch-independent ones such as bf16 weight copies), so two
    small runs give them exactly at any size.
    """
    f2, s2 = count_once(lambda: run(2), exclude)
    f4, s4 = count_once(lambda: run(4), exclude)
    return {
        "flops": f2 + (f4 - f2) * (units - 2) // 2,
        "saved_bytes": s2 + (s4 - s2) * (units - 2) // 2,
    }
