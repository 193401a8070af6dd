"""Run ``svg-pyro`` (alone or under torchrun) with hooks for the signal tests.

``STEP_SLEEP=s``: every optimiser step sleeps ``s`` seconds first (a signal then lands in a step).
``STEP_LOG=path``: after each optimiser step, ``path.rank<r>`` holds the number of steps done.
``SAVE_LOG=path``: every checkpoint write appends ``rank step`` to ``path``.
``SLOW_SAVE=n``: the n-th ``torch.save`` writes part of the file, creates ``SLOW_SAVE_MARKER``
and sleeps a minute (long enough to send a second signal).
``PID_DIR=dir``: writes ``dir/rank<r>.pid``; ``RC_DIR=dir``: writes ``dir/rank<r>.rc`` at exit.
"""

import os
import sys
import time
from pathlib import Path

import torch

import svg_pyro.train as train
from svg_pyro.commands.cli import main

RANK = int(os.environ.get("RANK", 0))

if "PID_DIR" in os.environ:
    Path(os.environ["PID_DIR"], f"rank{RANK}.pid").write_text(str(os.getpid()))

if "STEP_SLEEP" in os.environ or "STEP_LOG" in os.environ:
    pause, done = float(os.environ.get("STEP_SLEEP", 0)), [0]
    log = Path(os.environ["STEP_LOG"] + f".rank{RANK}") if "STEP_LOG" in os.environ else None
    real_step = torch.optim.Adam.step

    def step(self, *args, **kwargs):
        time.sleep(pause)
        out = real_step(self, *args, **kwargs)
        done[0] += 1
        if log is not None:
            log.write_text(str(done[0]))
        return out

    torch.optim.Adam.step = step

if "SAVE_LOG" in os.environ:
    real_atomic_save = train.atomic_save

    def atomic_save(obj, path):
        real_atomic_save(obj, path)
        with open(os.environ["SAVE_LOG"], "a") as f:
            f.write(f"{RANK} {obj['step']}\n")

    train.atomic_save = atomic_save

if "SLOW_SAVE" in os.environ:
    target, seen = int(os.environ["SLOW_SAVE"]), [0]
    real_save = torch.save

    def save(obj, f, *args, **kwargs):
        seen[0] += 1
        if seen[0] == target:
            f.write(b"PK\x03\x04 part of a checkpoint")
            f.flush()
            Path(os.environ["SLOW_SAVE_MARKER"]).write_text("saving")
            time.sleep(60)
        return real_save(obj, f, *args, **kwargs)

    torch.save = save

rc = main(sys.argv[1:])
if "RC_DIR" in os.environ:
    Path(os.environ["RC_DIR"], f"rank{RANK}.rc").write_text(str(rc))
sys.exit(rc)
