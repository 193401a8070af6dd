"""Which device and precision a command runs on, and how the process allocates memory (plain
torch; imports nothing of ours)."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

import torch

# glibc's mallopt parameters (malloc.h) and the values retain_freed_memory sets
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 << 20  # glibc's largest allowed value on 64-bit
TRIM_THRESHOLD = 1 << 30
_retained: bool | None = None


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but no CUDA device is available")
    return torch.device(name)


def autocast(device: torch.device, precision: str = "fp32") -> torch.autocast:
    """bf16 autocast on ``device`` when ``precision == "bf16"``, else a disabled one.

    Convolutions, linear layers and LSTMs then run in bf16; the model and guide cast the
    distributions' parameters to fp32, so log-densities, the KL and the loss are fp32.
    """
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def retain_freed_memory() -> bool:
    """Make glibc keep freed blocks of up to 32 MiB for reuse instead of handing them back to the
    kernel; returns whether the setting is in force.

    A CPU training step allocates and frees dozens of 1-16 MiB tensors (the 8-channel 32x32 maps
    of a batch of frames, their gradients). With glibc's adaptive defaults many of them are
    fresh ``mmap`` regions or trimmed heap top, so every step page-faults the same memory in
    again, page by page; in a virtual machine a fault is expensive. With the mmap threshold at
    32 MiB and the trim threshold at 1 GiB they come from (and return to) the heap, which keeps
    its pages: on the `smmnist-cpu` training step, x1.17 on two threads (whose page faults
    contend for the process's memory map) and x1.02 on one (docs/PERFORMANCE.md).
    The process keeps its peak heap for reuse. Linux with glibc only (elsewhere, and with
    ``SVG_PYRO_MALLOC=default``, it changes nothing and returns False). Called once by the
    ``svg-pyro`` command and by :class:`svg_pyro.train.Trainer`; later calls return the first
    answer.
    """
    global _retained
    if _retained is not None:
        return _retained
    _retained = False
    if os.environ.get("SVG_PYRO_MALLOC", "") == "default" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # mallopt returns 1 on success; the mmap threshold first, as the trim setting alone would
    # switch off glibc's adaptive thresholds and leave the mmap threshold at 128 KiB
    _retained = bool(
        mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
    return _retained
