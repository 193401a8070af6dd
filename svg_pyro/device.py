"""Which device and precision a command runs on (plain torch; imports nothing of ours)."""

from __future__ import annotations

import torch


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
