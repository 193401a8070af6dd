"""How commands pick their device, and how the process keeps freed memory for reuse."""

import subprocess
import sys

import pytest
import torch

from svg_pyro.device import resolve_device

# allocates and frees a 16 MiB tensor twice and prints the minor page faults of the second time:
# with freed memory retained the second allocation reuses the first one's pages
FAULTS = """
import resource, sys, torch
from svg_pyro import device
print(device.retain_freed_memory() if sys.argv[1] == "retain" else "off")
def faults():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    x = torch.empty(4 << 20).fill_(1.0)  # 16 MiB
    del x
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
faults()
print(faults())
"""


def _faults(mode: str, env: dict | None = None) -> tuple[str, int]:
    out = subprocess.run(
        [sys.executable, "-c", FAULTS, mode], capture_output=True, text=True, check=True, env=env
    ).stdout.split()
    return out[0], int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_retained_memory_is_reused_without_page_faults():
    state, retained = _faults("retain")
    assert state == "True"
    _, default = _faults("default")
    pages = (16 << 20) // 4096
    assert default > pages // 2  # glibc's default: the block is mapped afresh and faulted in
    assert retained < pages // 20  # retained: its pages are still there


def test_retain_freed_memory_can_be_switched_off():
    import os

    env = dict(os.environ, SVG_PYRO_MALLOC="default")
    assert _faults("retain", env)[0] == "False"


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            resolve_device("cuda")
