"""Checkpoints and run folders: what a training run writes and every command reads back.

A run folder holds ``config.json`` (:data:`CONFIG`), ``metrics.jsonl`` (:data:`METRICS`),
``checkpoint.pt`` (:data:`CHECKPOINT`) and, with held-out evaluation, ``best.pt``
(:data:`BEST`); ``.lock`` is held by the training process writing it (:func:`run_folder_lock`).

This room sits just above the model (:mod:`svg_pyro.svg`) and the shipped-weights registry
(:mod:`svg_pyro.pretrained`): it knows files, never a training loop. Checkpoints are written
atomically (:func:`atomic_save`) and read with ``weights_only=True`` (:func:`load_checkpoint`,
which also resolves the name of a shipped model); the RNG state they carry is taken and restored
by :func:`rng_state` / :func:`set_rng_state`.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyro
import torch

from svg_pyro import pretrained
from svg_pyro.config import SVGConfig
from svg_pyro.data.testsets import check_frames, load_testset
from svg_pyro.errors import InputFileError, UsageError
from svg_pyro.pretrained import model_weights
from svg_pyro.rollout_bn import record_statistics
from svg_pyro.svg import SVG

CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"
METRICS = "metrics.jsonl"
CONFIG = "config.json"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    pyro.set_rng_seed(seed)  # seeds torch (CPU and CUDA) as well


def rng_state() -> dict[str, Any]:
    """Every RNG state the training loop draws from, in a ``weights_only``-loadable form."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    random.setstate(_as_tuple(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(x: Any) -> Any:
    return tuple(_as_tuple(v) for v in x) if isinstance(x, (list, tuple)) else x


def atomic_save(obj: Any, path: Path) -> None:
    """Write ``obj`` to ``path`` via a temporary file and a rename: never a half-written file."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_json(obj: Any, path: str | Path, indent: int = 1) -> Path:
    """Write ``obj`` as JSON to ``path`` (parent folders created) via a temporary file and a
    rename: a stop mid-write leaves the previous file, never half a new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=indent) + "\n")
    tmp.replace(path)
    return path


def config_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Fields whose values differ between two config dicts, as ``name: saved -> current``."""
    keys = sorted(set(saved) | set(current))
    return [
        f"{k}: {saved.get(k)!r} -> {current.get(k)!r}"
        for k in keys
        if saved.get(k) != current.get(k)
    ]


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``: a file that would run code is refused.

    ``path`` may also name a shipped model (``"smmnist-lp"``, see :mod:`svg_pyro.pretrained`):
    its weights file is checked against the registry's sha256 and read the same way.

    A missing file raises ``FileNotFoundError``; a folder, an empty, truncated or damaged file,
    another kind of file (a test set, a text file) or one that holds Python objects raises
    :class:`~svg_pyro.errors.InputFileError` (a ``ValueError``), in one line that says which.
    """
    if not Path(path).exists() and pretrained.is_pretrained_name(path):
        return pretrained.read_weights(pretrained.weights_path(str(path)), map_location)
    path = Path(path)
    if path.is_dir():
        raise InputFileError(_folder_message(path))
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint {path} does not exist (and is not a shipped model: {_shipped()})"
        )
    hint = (
        "a .pt file written by `svg-pyro train`, `recalibrate-bn` or `export-weights`, "
        f"or a shipped model's name: {_shipped()}"
    )
    ckpt = pretrained.read_torch_file(path, map_location, "an svg-pyro checkpoint", hint)
    if not isinstance(ckpt, dict) or "model" not in ckpt or "config" not in ckpt:
        raise InputFileError(
            f"{path} is a PyTorch file without 'model' and 'config' entries, "
            f"not an svg-pyro checkpoint ({hint})"
        )
    return ckpt


def _shipped() -> str:
    return ", ".join(pretrained.available()) or "none"


def _folder_message(path: Path) -> str:
    for name in (CHECKPOINT, BEST):
        if (path / name).is_file():
            return f"{path} is a folder, not a checkpoint file; did you mean {path / name}?"
    return (
        f"{path} is a folder, not a checkpoint file (a run folder holds {CHECKPOINT}; "
        "this one has none)"
    )


def check_testset(
    testset: str | Path | dict[str, np.ndarray] | np.ndarray,
    model: SVG | SVGConfig | dict[str, Any],
    n_frames: int | None = None,
    name: str | Path | None = None,
) -> np.ndarray:
    """Check, before any work starts, that a test set suits a model: its frames must be the
    model's ``[C, 64, 64]`` (and, given ``n_frames``, its sequences at least that long). Raises
    :class:`~svg_pyro.errors.InputFileError` (a ``ValueError``) in one line otherwise, e.g.
    ``"small32.npz has frames of 1x32x32 (C x H x W); the model takes 1x64x64 frames (...)"``.

    ``testset``: a path (read with :func:`~svg_pyro.data.load_testset`), what that returned, or
    its ``frames`` array; ``model``: an :class:`SVG`, its :class:`SVGConfig`, a config dict or a
    checkpoint (:func:`load_checkpoint`). Returns the frames, uint8 ``[N, T, C, H, W]``.
    """
    if isinstance(testset, (str, Path)):
        name = testset if name is None else name
        testset = load_testset(testset)
    frames = testset["frames"] if isinstance(testset, dict) else testset
    if isinstance(model, SVG):
        config = model.config
    elif isinstance(model, SVGConfig):
        config = model
    else:
        config = SVGConfig.from_dict(model.get("config", model))
    shape = (config.channels, config.image_size, config.image_size)
    check_frames(frames, shape, "the test set" if name is None else name, n_frames)
    return frames


def load_model(
    path: str | Path, device: str | torch.device = "cpu", warn: bool = True
) -> tuple[SVG, dict[str, Any]]:
    """Rebuild the :class:`SVG` a checkpoint was made with (its
    :func:`~svg_pyro.pretrained.model_weights`); returns ``(svg, checkpoint)``.

    ``svg.bn_statistics`` says which BatchNorm statistics it holds; with ``warn``, a model that
    needs statistics of its own forecasts and lacks them is warned about here
    (:func:`svg_pyro.rollout_bn.record_statistics`)."""
    ckpt = load_checkpoint(path, map_location=device)
    svg = SVG(SVGConfig.from_dict(ckpt["config"])).to(device)
    svg.load_state_dict(model_weights(ckpt))
    record_statistics(svg, ckpt, warn)
    return svg, ckpt


@contextlib.contextmanager
def run_folder_lock(out: Path) -> Iterator[None]:
    """Hold an exclusive lock on the run folder ``out`` (``out/.lock``), so that two training
    processes never write the same checkpoint and metrics; raises :class:`UsageError` naming the
    holder when another process has it. No-op where ``fcntl`` is missing (Windows)."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    path = out / ".lock"
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise UsageError(
                f"run folder {out} is in use by a training process ({holder}); "
                "wait for it or choose another --out"
            ) from None
        try:
            f.seek(0)
            f.truncate()
            f.write(f"pid {os.getpid()}")
            f.flush()
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
