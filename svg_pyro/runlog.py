"""The run log of a training run: ``metrics.jsonl``, TensorBoard scalars, the progress bar, and
the time the run has spent.

:class:`RunLog` is what :class:`svg_pyro.train.Trainer` reports through. A training row every
``log_every`` steps averages the terms of the steps since the last row (the window; checkpoints
carry it, so a run resumed mid-window logs what an uninterrupted one does); held-out rows
(``"eval": true``, :mod:`svg_pyro.heldout`) join the same file. Under ``torchrun`` every rank
averages its window with the others' and rank 0 writes.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from svg_pyro import distributed
from svg_pyro.checkpoint import METRICS

#: The terms of a training row (:class:`svg_pyro.elbo.SVGLoss`'s ``last_terms``), per sequence.
TERMS = ("loss", "recon", "kl", "neg_elbo")


class RunLog:
    """A run's rows, scalars and progress bar (:meth:`open` for the length of a ``fit``), and
    its time: ``elapsed``, the seconds spent so far (checkpoints carry it), advanced by
    :meth:`tick`."""

    def __init__(self, out: Path, dist: distributed.DistInfo, device: torch.device):
        self.out, self.dist = Path(out), dist
        self.elapsed = 0.0
        self.sums = {k: torch.zeros((), device=device) for k in TERMS}  # the window's terms
        self.n_summed = 0  # steps in the window that gave terms (not skipped)
        self.last_eval: dict[str, Any] | None = None
        self.writer: Any = _NullWriter()
        self._file: Any = None
        self._bar: Any = None
        self._clock = time.perf_counter()

    @contextlib.contextmanager
    def open(self, total: int, initial: int, progress: bool = True) -> Iterator[RunLog]:
        """Within the block: ``metrics.jsonl`` open for appending and the TensorBoard writer
        (rank 0), the progress bar at ``initial`` of ``total`` steps, and the clock running."""
        main = self.dist.is_main
        with contextlib.ExitStack() as stack:
            quiet = not (progress and main)
            bar = tqdm(total=total, initial=initial, disable=quiet, desc="train", unit="step")
            self._bar = stack.enter_context(bar)
            if main:
                self.writer = _summary_writer(self.out / "tb")
                stack.callback(self.writer.close)
                self._file = stack.enter_context(open(self.out / METRICS, "a"))
            try:
                self._clock = time.perf_counter()
                yield self
            finally:
                self.writer, self._file, self._bar = _NullWriter(), None, None

    def tick(self) -> None:
        """Add the time since the last tick (or :meth:`open`) to ``elapsed``."""
        now = time.perf_counter()
        self.elapsed += now - self._clock
        self._clock = now

    # -- training rows ----------------------------------------------------------------------
    def add(self, terms: dict[str, torch.Tensor] | None) -> None:
        """One step: its terms join the window (``None``: a skipped step); the bar moves on."""
        if terms is not None:
            for k in TERMS:
                self.sums[k] += terms[k]
            self.n_summed += 1
        if self._bar is not None:
            self._bar.update(1)

    def write(self, step: int, skipped: int) -> dict[str, Any]:
        """The training row of ``step`` (the window's means over every rank, ``None`` when all
        its steps were skipped; ``seconds``, ``skipped_steps``): written (rank 0) and returned.
        The window starts again."""
        self.tick()
        n = self.n_summed
        means = {k: v / max(n, 1) for k, v in self.sums.items()}
        means = {k: distributed.all_reduce_mean(v, self.dist) for k, v in means.items()}
        record: dict[str, Any] = {"step": step}
        record.update({k: float(v) if n else None for k, v in means.items()})
        record["seconds"] = round(self.elapsed, 3)
        record["skipped_steps"] = skipped
        if self.dist.is_main:
            self._line(record)
            for k in TERMS:
                if record[k] is not None:
                    self.writer.add_scalar(f"train/{k}", record[k], step)
            if n and self._bar is not None:
                post = {"loss": f"{record['loss']:.4g}", "kl": f"{record['kl']:.3g}"}
                if self.last_eval is not None:
                    post["ssim"] = f"{self.last_eval['ssim_best']:.3f}"
                self._bar.set_postfix(post)
        for v in self.sums.values():
            v.zero_()
        self.n_summed = 0
        return record

    def window(self) -> dict[str, Any]:
        """The window so far, as a checkpoint stores it (``pending_log_per_rank``)."""
        return {"n": self.n_summed, **{k: v.detach().cpu().clone() for k, v in self.sums.items()}}

    def resume_window(self, window: dict[str, Any]) -> None:
        """Continue the :meth:`window` a checkpoint stored."""
        self.n_summed = int(window["n"])
        for k in TERMS:
            self.sums[k] = window[k].to(self.sums[k].device).clone()

    # -- held-out rows ----------------------------------------------------------------------
    def write_eval(self, row: dict[str, Any], image: np.ndarray | None = None) -> None:
        """A held-out row (rank 0): its line, its float scores as ``heldout/*`` scalars and the
        preview ``image`` (uint8 ``[H, W, 3]``)."""
        step = row["step"]
        self._line(row)
        for k, v in row.items():
            if k not in ("eval", "step") and isinstance(v, float):
                self.writer.add_scalar(f"heldout/{k}", v, step)
        if image is not None:
            self.writer.add_image("heldout/preview", image, step, dataformats="HWC")
        self.last_eval = row

    # -- the file ---------------------------------------------------------------------------
    def _line(self, row: dict[str, Any]) -> None:
        if self._file is not None:
            self._file.write(json.dumps(row) + "\n")
            self._file.flush()

    def truncate(self, step: int) -> None:
        """Drop the lines logged past ``step`` (written after the checkpoint being resumed)."""
        path = self.out / METRICS
        if not path.exists():
            return
        keep = []
        for line in path.read_text().splitlines():
            try:
                if json.loads(line)["step"] <= step:
                    keep.append(line)
            except (ValueError, KeyError):
                continue  # a line cut short by a crash
        path.write_text("".join(line + "\n" for line in keep))


class _NullWriter:
    def add_scalar(self, *args: Any, **kwargs: Any) -> None:
        pass

    def add_image(self, *args: Any, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass


def _summary_writer(path: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is a dependency, but training must not need it
        return _NullWriter()
    return SummaryWriter(str(path))
