"""Run ``svg-pyro`` in a subprocess that kills itself with SIGKILL at a chosen moment.

``KILL_ON_SAVE=n``: during the n-th checkpoint write, after part of the file is on disk.
``KILL_ON_STEP=n``: inside the n-th optimiser step, after half of the parameters were updated.
"""

import os
import signal
import sys

import torch

from svg_pyro.commands.cli import main


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


if "KILL_ON_SAVE" in os.environ:
    target, seen = int(os.environ["KILL_ON_SAVE"]), [0]
    real_save = torch.save

    def save(obj, f, *args, **kwargs):
        seen[0] += 1
        if seen[0] == target:
            f.write(b"PK\x03\x04 half a checkpoint")
            f.flush()
            _die()
        return real_save(obj, f, *args, **kwargs)

    torch.save = save

if "KILL_ON_STEP" in os.environ:
    target, seen = int(os.environ["KILL_ON_STEP"]), [0]
    real_step = torch.optim.Adam.step

    def step(self, *args, **kwargs):
        seen[0] += 1
        if seen[0] == target:
            with torch.no_grad():
                params = [p for g in self.param_groups for p in g["params"]]
                for p in params[: len(params) // 2]:
                    p.add_(1.0)
            _die()
        return real_step(self, *args, **kwargs)

    torch.optim.Adam.step = step

sys.exit(main(sys.argv[1:]))
