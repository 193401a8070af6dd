"""Training loop, run folder and checkpoints.

A run folder ``DIR`` holds ``config.json``, ``metrics.jsonl`` (one JSON object per logged step:
``step``, ``loss`` (the paper's objective), ``recon``, ``kl``, ``neg_elbo``, ``seconds``),
TensorBoard scalars under ``DIR/tb`` and ``checkpoint.pt``.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import pyro
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from svg_pyro.config import SVGConfig, TrainConfig
from svg_pyro.data import StochasticMovingMNIST
from svg_pyro.elbo import SVGLoss
from svg_pyro.svg import SVG

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"
CONFIG = "config.json"
TERMS = ("loss", "recon", "kl", "neg_elbo")


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but no CUDA device is available")
    return torch.device(name)


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


def config_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Fields whose values differ between two config dicts, as ``name: saved -> current``."""
    keys = sorted(set(saved) | set(current))
    return [
        f"{k}: {saved.get(k)!r} -> {current.get(k)!r}"
        for k in keys
        if saved.get(k) != current.get(k)
    ]


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``: a file that would run code is refused."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # UnpicklingError for code, others for corrupt files
        raise ValueError(
            f"refusing to load {path}: not a plain-tensor checkpoint ({err})"
        ) from None
    if not isinstance(ckpt, dict) or "model" not in ckpt or "config" not in ckpt:
        raise ValueError(f"{path} is not an svg-pyro checkpoint (no 'model'/'config' entries)")
    return ckpt


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[SVG, dict[str, Any]]:
    """Rebuild the :class:`SVG` a checkpoint was made with; returns ``(svg, checkpoint)``."""
    ckpt = load_checkpoint(path, map_location=device)
    svg = SVG(SVGConfig.from_dict(ckpt["config"])).to(device)
    svg.load_state_dict(ckpt["model"])
    return svg, ckpt


def train_dataset(model_config: SVGConfig, train_config: TrainConfig) -> Dataset:
    """The training Dataset that ``train_config.dataset`` names (items hold ``frames``)."""
    if train_config.dataset == "smmnist":
        return StochasticMovingMNIST(
            num_digits=train_config.num_digits,
            seq_len=model_config.seq_len,
            deterministic=train_config.deterministic_motion,
            split="train",
            seed=train_config.seed,
            length=max(train_config.steps, 1) * train_config.batch_size,
            mnist_root=train_config.mnist_root,
        )
    raise ValueError(f"unknown dataset {train_config.dataset!r}; choose from ['smmnist']")


def batches(
    dataset: Dataset, batch_size: int, start_step: int, num_workers: int = 0
) -> Iterator[dict[str, torch.Tensor]]:
    """Batch ``s`` holds items ``s*B .. s*B+B-1``: the data stream depends only on the step."""
    n_batches = len(dataset) // batch_size
    sampler = (
        list(range(s * batch_size, (s + 1) * batch_size)) for s in range(start_step, n_batches)
    )
    loader = DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=num_workers,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=False,
    )
    return iter(loader)


class Trainer:
    """Trains an :class:`SVG` with the negative ELBO and writes the run folder ``out``."""

    def __init__(
        self,
        model_config: SVGConfig,
        train_config: TrainConfig,
        out: str | Path,
        resume: bool = False,
        preset: str | None = None,
    ):
        self.model_config = model_config
        self.cfg = train_config
        self.out = Path(out)
        self.device = resolve_device(train_config.device)
        self.out.mkdir(parents=True, exist_ok=True)
        seed_everything(train_config.seed)
        self.svg = SVG(model_config).to(self.device)
        self.loss_fn = SVGLoss(self.svg)
        adam_kwargs: dict[str, Any] = {}
        if self.device.type == "cuda":
            adam_kwargs["fused"] = True
        self.optimizer = torch.optim.Adam(
            self.svg.parameters(),
            lr=train_config.lr,
            betas=(train_config.adam_beta1, train_config.adam_beta2),
            **adam_kwargs,
        )
        self.step = 0
        self.elapsed = 0.0
        if resume and (self.out / CHECKPOINT).exists():
            self._restore(self.out / CHECKPOINT)
        elif resume:
            raise FileNotFoundError(f"--resume: no {CHECKPOINT} in {self.out}")
        self.dataset = train_dataset(model_config, train_config)
        config = {
            "preset": preset,
            "model": model_config.to_dict(),
            "train": train_config.to_dict(),
        }
        (self.out / CONFIG).write_text(json.dumps(config, indent=2) + "\n")

    # -- checkpoints ------------------------------------------------------------------------
    def checkpoint(self) -> dict[str, Any]:
        return {
            "model": self.svg.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "elapsed": self.elapsed,
            "config": self.model_config.to_dict(),
            "train_config": self.cfg.to_dict(),
            "rng": rng_state(),
            "format": 1,
        }

    def save(self) -> Path:
        path = self.out / CHECKPOINT
        atomic_save(self.checkpoint(), path)
        return path

    def _restore(self, path: Path) -> None:
        ckpt = load_checkpoint(path, map_location=self.device)
        diff = config_differences(ckpt["config"], self.model_config.to_dict())
        if diff:
            raise ValueError(
                f"{path} was made with a different model configuration: " + "; ".join(diff)
            )
        self.svg.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.step = int(ckpt["step"])
        self.elapsed = float(ckpt.get("elapsed", 0.0))
        set_rng_state(ckpt["rng"])
        self._truncate_metrics(self.step)

    def _truncate_metrics(self, step: int) -> None:
        """Drop logged lines past ``step`` (written after the checkpoint being resumed)."""
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

    # -- the loop ---------------------------------------------------------------------------
    def train_step(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        """One optimiser step on ``frames [B, T, C, H, W]``; returns detached per-sequence terms."""
        self.svg.train()
        loss = self.loss_fn(frames)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return self.loss_fn.last_terms

    def fit(
        self,
        steps: int | None = None,
        progress: bool = True,
        callback: Callable[[dict[str, Any]], None] | None = None,
    ) -> list[dict[str, Any]]:
        """Train until ``steps`` (default: the config's) total steps; returns the logged records."""
        total = self.cfg.steps if steps is None else steps
        records: list[dict[str, Any]] = []
        if self.step >= total:
            return records
        data = batches(self.dataset, self.cfg.batch_size, self.step, self.cfg.num_workers)
        writer = _summary_writer(self.out / "tb")
        sums = {k: torch.zeros((), device=self.device) for k in TERMS}
        n_summed = 0
        bar = tqdm(total=total, initial=self.step, disable=not progress, desc="train", unit="step")
        t_last = time.perf_counter()
        try:
            with pyro.validation_enabled(False), open(self.out / METRICS, "a") as log:
                while self.step < total:
                    frames = next(data)["frames"].to(self.device, non_blocking=True)
                    terms = self.train_step(frames)
                    for k in TERMS:
                        sums[k] += terms[k]
                    n_summed += 1
                    self.step += 1
                    bar.update(1)
                    last = self.step == total
                    if self.step % self.cfg.log_every == 0 or last:
                        now = time.perf_counter()
                        self.elapsed += now - t_last
                        t_last = now
                        record = {"step": self.step}
                        record.update({k: float(v) / n_summed for k, v in sums.items()})
                        record["seconds"] = round(self.elapsed, 3)
                        log.write(json.dumps(record) + "\n")
                        log.flush()
                        for k in TERMS:
                            writer.add_scalar(f"train/{k}", record[k], self.step)
                        bar.set_postfix(loss=f"{record['loss']:.4g}", kl=f"{record['kl']:.3g}")
                        records.append(record)
                        if callback is not None:
                            callback(record)
                        for k in TERMS:
                            sums[k].zero_()
                        n_summed = 0
                    if self.step % self.cfg.checkpoint_every == 0 or last:
                        now = time.perf_counter()
                        self.elapsed += now - t_last
                        t_last = now
                        self.save()
        finally:
            bar.close()
            writer.close()
        return records


class _NullWriter:
    def add_scalar(self, *args: Any, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass


def _summary_writer(path: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is a dependency, but training must not need it
        return _NullWriter()
    return SummaryWriter(str(path))


def build_configs(preset: str, **overrides: Any) -> tuple[SVGConfig, TrainConfig]:
    """Configs of a named preset with field overrides (``None`` values are ignored)."""
    from svg_pyro.config import get_preset

    return get_preset(preset).build(**{k: v for k, v in overrides.items() if v is not None})


def all_setting_names() -> list[str]:
    """Every field of SVGConfig and TrainConfig (the CLI exposes each as ``--field-name``)."""
    return [f.name for f in fields(SVGConfig)] + [f.name for f in fields(TrainConfig)]
