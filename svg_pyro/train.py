"""The training loop: :class:`Trainer` and what it builds on (data stream, optimiser, speed).

A run folder ``DIR`` (names in :mod:`svg_pyro.checkpoint`) holds ``config.json``,
``metrics.jsonl`` (one JSON object per logged step: ``step``, ``loss`` (the paper's objective),
``recon``, ``kl``, ``neg_elbo``, ``seconds``), TensorBoard scalars under ``DIR/tb`` and
``checkpoint.pt``. With ``eval_every`` set, held-out rows (``"eval": true``, see
:mod:`svg_pyro.heldout`) join ``metrics.jsonl``, previews go to
``DIR/previews/step_NNNNNN.{png,gif}`` and ``best.pt`` holds the best held-out model so far.

SIGINT and SIGTERM during :meth:`Trainer.fit` finish the step in flight, write ``checkpoint.pt``
for it and raise :class:`svg_pyro.signals.Interrupted` (all ranks stop at the same step under
``torchrun``); a second signal quits at once and leaves the previous checkpoint as it was.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import signal
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyro
import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.lr_scheduler import LambdaLR
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, Dataset

from svg_pyro import distributed, signals
from svg_pyro.checkpoint import (
    BEST,
    CHECKPOINT,
    CONFIG,
    atomic_save,
    config_differences,
    load_checkpoint,
    rng_state,
    run_folder_lock,
    seed_everything,
    set_rng_state,
)
from svg_pyro.config import SVGConfig, TrainConfig, build_configs
from svg_pyro.data import VIDEO_DATASETS, StochasticMovingMNIST
from svg_pyro.device import autocast, resolve_device, retain_freed_memory
from svg_pyro.elbo import SVGLoss
from svg_pyro.errors import TrainingError
from svg_pyro.heldout import BEST_SCORE, HeldOut
from svg_pyro.pretrained import model_weights
from svg_pyro.runlog import RunLog
from svg_pyro.svg import SVG


def require_data_root(train_config: TrainConfig) -> None:
    """Raise ``ValueError`` when the dataset is read from files (KTH, BAIR) and no
    ``data_root`` says where they are."""
    if train_config.dataset in VIDEO_DATASETS and not train_config.data_root:
        raise ValueError(
            f"dataset {train_config.dataset!r} needs --data-root (the folder with its files)"
        )


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
    if train_config.dataset in VIDEO_DATASETS:
        name = train_config.dataset
        cls, channels = VIDEO_DATASETS[name]
        require_data_root(train_config)
        if model_config.channels != channels:
            raise ValueError(
                f"dataset {name!r} has {channels} channel(s) but the model has "
                f"channels={model_config.channels}; pass --channels {channels}"
            )
        return cls(
            train_config.data_root,
            split="train",
            seq_len=model_config.seq_len,
            length=max(train_config.steps, 1) * train_config.batch_size,
            seed=train_config.seed,
        )
    raise ValueError(
        f"unknown dataset {train_config.dataset!r}; choose from {['smmnist', *VIDEO_DATASETS]}"
    )


def _ignore_stop_signals(worker_id: int) -> None:
    """DataLoader workers ignore SIGINT/SIGTERM: the main process decides when to stop (a
    Ctrl-C reaches the whole process group, and a dead worker would fail the step in flight)."""
    for s in signals.SIGNALS:
        signal.signal(s, signal.SIG_IGN)


def batches(
    dataset: Dataset,
    batch_size: int,
    start_step: int,
    num_workers: int = 0,
    rank: int = 0,
    world_size: int = 1,
) -> Iterator[dict[str, torch.Tensor]]:
    """Batches of ``batch_size`` items for one process, from ``start_step`` on.

    Global batch ``s`` holds items ``s*G .. s*G+G-1`` (G = ``batch_size * world_size``) and rank
    ``r`` takes its r-th slice, so the data stream depends only on the step: a resumed run and a
    data-parallel run see exactly the data of an uninterrupted single-process run.
    """
    g = batch_size * world_size
    n_batches = len(dataset) // g
    sampler = (
        list(range(s * g + rank * batch_size, s * g + (rank + 1) * batch_size))
        for s in range(start_step, n_batches)
    )
    loader = DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=num_workers,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=False,
        worker_init_fn=_ignore_stop_signals if num_workers else None,
        # its own generator: creating the iterator must not draw from the global torch RNG,
        # or a resumed run's latent noise would be shifted by one draw
        generator=torch.Generator().manual_seed(start_step),
    )
    return iter(loader)


def init_configs(
    preset: str, source: str | Path, **overrides: Any
) -> tuple[SVGConfig, TrainConfig]:
    """Configs for a run that starts from the weights of ``source`` (a checkpoint path or a
    shipped name): the model configuration is the source's, with the model ``overrides`` given;
    the training configuration is the preset's, with the training ``overrides``."""
    model_fields = {f.name for f in dataclasses.fields(SVGConfig)}
    given = {k: v for k, v in overrides.items() if v is not None}
    train = {k: v for k, v in given.items() if k not in model_fields}
    saved = SVGConfig.from_dict(load_checkpoint(source)["config"])
    model = dataclasses.replace(saved, **{k: v for k, v in given.items() if k in model_fields})
    return model, build_configs(preset, **train)[1]


def prepare_networks(svg: SVG, train_config: TrainConfig, device: torch.device) -> None:
    """Apply the speed settings of ``train_config`` to ``svg`` in place, before training.

    ``channels_last`` converts 4-D weights to NHWC; ``compile`` compiles the encoder and the
    decoder with ``torch.compile`` in place (state-dict keys are unchanged; Pyro's tracing and
    the LSTMs stay eager); on CUDA, cuDNN autotuning is switched on.
    """
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    if train_config.channels_last:
        svg.to(memory_format=torch.channels_last)
    if train_config.compile:
        svg.encoder.compile()
        svg.decoder.compile()


def loss_scale(model_config: SVGConfig, train_config: TrainConfig) -> float:
    """The factor between our training loss and the paper's objective: ``B * P / (2 sigma^2)``.

    The loss backpropagated is the negative ELBO summed over the (global) batch of ``B``
    sequences; the paper's objective is ``sum_t [MSE_t + beta KL_t]`` averaged over the batch.
    Up to a constant, the first is the second times this factor.
    """
    return train_config.batch_size * model_config.pixels / (2.0 * model_config.obs_sigma**2)


def adam_eps(model_config: SVGConfig | None, train_config: TrainConfig) -> float:
    """The ``eps`` handed to Adam so that ``train_config.adam_eps`` acts in its stated units."""
    if train_config.adam_eps_units == "loss" or model_config is None:
        return train_config.adam_eps
    return train_config.adam_eps * loss_scale(model_config, train_config)


def make_adam(
    module: torch.nn.Module, train_config: TrainConfig, model_config: SVGConfig | None = None
) -> torch.optim.Adam:
    """Adam over ``module``'s parameters, with the fused kernel where torch has one (CUDA, CPU).

    With ``model_config`` and ``adam_eps_units="paper"``, eps is scaled by :func:`loss_scale`,
    so the updates are those of Adam on the paper's objective (Adam is otherwise invariant to a
    constant factor on the loss). Without ``model_config`` eps is used as given.
    """
    kwargs: dict[str, Any] = dict(
        lr=train_config.lr,
        betas=(train_config.adam_beta1, train_config.adam_beta2),
        eps=adam_eps(model_config, train_config),
    )
    try:
        return torch.optim.Adam(module.parameters(), fused=True, **kwargs)
    except (RuntimeError, TypeError):  # no fused kernel for these parameters' device or dtype
        return torch.optim.Adam(module.parameters(), **kwargs)


def warmup_factor(train_config: TrainConfig, step: int) -> float:
    """The factor on ``lr`` of the update made at run step ``step`` (0-based).

    With ``lr_warmup`` W > 0 it rises linearly, ``(step + 1) / W``, over the first W steps of the
    run, then stays at 1. A fresh Adam (``--init-from``) moves every weight by about ``lr`` in
    its first updates, whatever the gradient's size; the warm-up keeps those first moves small
    while Adam's moment estimates settle.
    """
    warmup = train_config.lr_warmup
    if warmup and step < warmup:
        return (step + 1) / warmup
    return 1.0


def warmup_lr(train_config: TrainConfig, step: int) -> float:
    """The learning rate of the update made at run step ``step``: ``lr`` times
    :func:`warmup_factor` (what :func:`warmup_schedule` sets)."""
    return train_config.lr * warmup_factor(train_config, step)


def warmup_schedule(
    optimizer: torch.optim.Optimizer, train_config: TrainConfig, step: int = 0
) -> LambdaLR:
    """The learning rate of every update, :func:`warmup_lr`: torch's ``LambdaLR`` of
    :func:`warmup_factor` on ``train_config.lr``, built at run step ``step`` (the rate it sets is
    that step's, so a resumed run goes on with its warm-up). Step it once per run step, skipped
    steps included."""
    for group in optimizer.param_groups:
        group["initial_lr"] = train_config.lr  # this run's rate, also for a restored optimizer
    return LambdaLR(optimizer, functools.partial(warmup_factor, train_config), last_epoch=step - 1)


def moving_average(module: nn.Module, decay: float) -> AveragedModel:
    """The moving average of ``module``'s weights (``--ema``): torch's ``AveragedModel`` with
    buffers, starting at ``module``'s weights (load others into its ``.module`` to start there).

    Each ``update_parameters(module)`` sets ``avg <- decay * avg + (1 - decay) * weights`` for
    every float tensor, BatchNorm statistics included (``get_ema_multi_avg_fn``), and copies the
    counters (``num_batches_tracked``).
    """
    ema = get_ema_multi_avg_fn(decay)

    @torch.no_grad()
    def update(averaged: list[Tensor], current: list[Tensor], n_averaged: Tensor) -> None:
        if averaged[0].is_floating_point():  # the tensors come grouped by dtype
            ema(averaged, current, n_averaged)
        else:
            torch._foreach_copy_(averaged, current)

    average = AveragedModel(module, multi_avg_fn=update, use_buffers=True)
    average.n_averaged.fill_(1)  # the weights it starts at count: the first update averages
    return average


def processes(train_config: TrainConfig) -> tuple[distributed.DistInfo, torch.device, int]:
    """The processes a run trains in: ``(dist, device, local_batch)``, this process's rank
    information (``torchrun``), device and share of the global batch."""
    device = resolve_device(train_config.device)
    if device.type == "cpu":
        retain_freed_memory()  # no page faults on the step's big temporaries
    dist = distributed.init_from_env(device)
    world = dist.world_size
    if train_config.batch_size % world:
        raise ValueError(
            f"batch_size {train_config.batch_size} is not divisible by {world} processes"
        )
    return dist, distributed.local_device(device, dist), train_config.batch_size // world


def restore_rng(checkpoint: dict[str, Any], dist: distributed.DistInfo) -> None:
    """Every RNG where ``checkpoint`` left this rank's (with another number of processes, rank 0
    takes the run's stream and the others keep theirs)."""
    per_rank = checkpoint.get("rng_per_rank") or [checkpoint["rng"]]
    if len(per_rank) == dist.world_size:
        set_rng_state(per_rank[dist.rank])
    elif dist.is_main:
        set_rng_state(checkpoint["rng"])


@contextlib.contextmanager
def holding(module: nn.Module, state: dict[str, torch.Tensor] | None) -> Iterator[None]:
    """Inside the block ``module`` holds ``state`` (``None``: its own); its own come back on
    exit."""
    if state is None:
        yield
        return
    own = {k: v.detach().clone() for k, v in module.state_dict().items()}
    module.load_state_dict(state)
    try:
        yield
    finally:
        module.load_state_dict(own)


def initial_weights(svg: SVG, source: str | Path, device: torch.device) -> dict[str, Any]:
    """Load the weights of ``source`` (a checkpoint or shipped name; its moving average, if it
    has one) into ``svg``, whose configuration must match (see :func:`init_configs`); returns
    the record of them, ``{"source", "step", "total_step"}`` (the steps behind them, in all)."""
    ckpt = load_checkpoint(source, map_location=device)
    try:
        svg.load_state_dict(model_weights(ckpt))
    except RuntimeError as err:
        saved = SVGConfig.from_dict(ckpt["config"]).to_dict()
        diff = config_differences(saved, svg.config.to_dict())
        raise ValueError(
            f"--init-from {source}: its weights do not fit this model ("
            + ("; ".join(diff) or str(err).splitlines()[0])
            + ")"
        ) from None
    step = int(ckpt.get("step", 0))
    behind = (ckpt.get("init_from") or {}).get("total_step", 0)  # the source's own source
    return {"source": str(source), "step": step, "total_step": step + int(behind)}


def refuse_nonfinite(states: list[dict[str, torch.Tensor]], path: Path) -> None:
    """Raise :class:`TrainingError` if a float tensor of ``states`` is not finite (before
    writing them to ``path``)."""
    bad = [
        k
        for state in states
        for k, v in state.items()
        if v.is_floating_point() and not v.isfinite().all()
    ]
    if bad:
        raise TrainingError(f"refusing to write non-finite values into {path}: {bad[:5]}")


def improves(best: dict[str, Any] | None, row: dict[str, Any]) -> bool:
    """Whether a held-out ``row`` beats the ``best`` so far (:data:`svg_pyro.heldout.BEST_SCORE`,
    higher is better). Scores under other BatchNorm statistics (a run from before
    ``heldout_bn``) do not compare: the first under new ones is the best."""
    return (
        best is None
        or best.get("bn_statistics", "running") != row["bn_statistics"]
        or row[BEST_SCORE] > best["score"]
    )


def stop_request(
    dist: distributed.DistInfo, on_second: Callable[[int], None]
) -> signals.StopRequest:
    """What SIGINT and SIGTERM do while a run trains: the first asks it to stop after the step
    in flight (rank 0 says so), a second calls ``on_second`` and quits (repeats within
    ``ECHO_WINDOW_S`` under ``torchrun`` are the launcher's echo)."""
    launched = dist.enabled or "TORCHELASTIC_RUN_ID" in os.environ
    return signals.StopRequest(
        notice="svg-pyro train: {signal}: finishing the step in flight, then saving "
        "(send it again to quit at once)"
        if dist.is_main
        else None,
        on_second=on_second,
        echo_window=signals.ECHO_WINDOW_S if launched else 0.0,
    )


class Trainer:
    """Trains an :class:`SVG` with the negative ELBO and writes the run folder ``out``.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) it trains data-parallel: the global batch of
    ``batch_size`` sequences is split over the ranks, BatchNorm statistics are synchronised,
    gradients are all-reduced by DistributedDataParallel, each rank draws its own latent noise,
    and only rank 0 writes the run folder.

    Built from torch's parts: Adam (:func:`make_adam`), the warm-up as a ``LambdaLR``
    (:func:`warmup_schedule`), the moving average of the weights as an ``AveragedModel``
    (:func:`moving_average`, ``ema``), and the run log (:class:`svg_pyro.runlog.RunLog`, ``log``).
    """

    def __init__(
        self,
        model_config: SVGConfig,
        train_config: TrainConfig,
        out: str | Path,
        resume: bool = False,
        preset: str | None = None,
        init_from: str | Path | None = None,
    ):
        self.model_config, self.cfg, self.out = model_config, train_config, Path(out)
        self.dist, self.device, self.local_batch = processes(train_config)
        if self.dist.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            with run_folder_lock(self.out):  # fail before touching a folder another run writes
                pass
        seed_everything(train_config.seed)  # the same initial weights on every rank
        self.svg = SVG(model_config).to(self.device)
        # a copy that is never run: taken before the networks are synchronised, wrapped, compiled
        self.ema = moving_average(self.svg, train_config.ema) if train_config.ema else None
        self.loss_fn = SVGLoss(
            self.svg, num_particles=train_config.particles, free_running=train_config.free_running
        )
        self.forward = self.loss_fn  # what a step calls: the loss module, or its DDP wrapper
        if self.dist.enabled:
            distributed.convert_sync_batchnorm(self.svg, self.device)
            self.svg.to(self.device)
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.forward = DistributedDataParallel(self.loss_fn, device_ids=ids)
            seed_everything(train_config.seed + 7919 * self.dist.rank)  # per-rank latent noise
        prepare_networks(self.svg, train_config, self.device)
        self.optimizer = make_adam(self.svg, train_config, model_config)
        self.log = RunLog(self.out, self.dist, self.device)
        self.step = 0
        self.skipped = 0  # non-finite steps skipped so far
        self.bad_in_a_row = 0
        self.heldout: Any = None  # the held-out set (rank 0, built at the first evaluation)
        self.best: dict[str, Any] | None = None  # {"metric", "score", "step", "bn_statistics"}
        # {"source", "step", "total_step"}: the weights this run started from (None: random)
        self.init_from: dict[str, Any] | None = None
        self._last_saved: int | None = None
        saved_average = None
        if resume and (self.out / CHECKPOINT).exists():
            saved_average = self._restore(self.out / CHECKPOINT)  # wins over init_from
        elif resume and init_from is None:
            raise FileNotFoundError(f"--resume: no {CHECKPOINT} in {self.out}")
        elif init_from is not None:  # a new run (also with --resume: the command that restarts)
            self.init_from = initial_weights(self.svg, init_from, self.device)
        if self.ema is not None:  # goes on from the checkpoint's, or starts at the run's weights
            self.ema.module.load_state_dict(saved_average or self.svg.state_dict())
        self.scheduler = warmup_schedule(self.optimizer, train_config, self.step)
        self.dataset = train_dataset(model_config, train_config)
        if self.dist.is_main:
            config = {"preset": preset, "model": model_config.to_dict(),
                      "train": train_config.to_dict(), "world_size": self.dist.world_size,
                      "init_from": self.init_from}  # fmt: skip
            (self.out / CONFIG).write_text(json.dumps(config, indent=2) + "\n")

    # -- checkpoints ------------------------------------------------------------------------
    def checkpoint(self) -> dict[str, Any]:
        """Everything a resume needs; every rank's RNG state (a collective under torchrun)."""
        return {
            "model": self.svg.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "elapsed": self.log.elapsed,
            "skipped": self.skipped,
            "config": self.model_config.to_dict(),
            "train_config": self.cfg.to_dict(),
            "rng": rng_state(),
            "rng_per_rank": distributed.gather_objects(rng_state(), self.dist),
            "pending_log_per_rank": distributed.gather_objects(self.log.window(), self.dist),
            "best": self.best,
            "init_from": self.init_from,
            "ema": self.ema.module.state_dict() if self.ema is not None else None,
            "format": 1,
        }

    def save(self, name: str = CHECKPOINT) -> Path | None:
        """Write ``checkpoint.pt`` (or ``name``) atomically (rank 0); refuses non-finite weights."""
        ckpt = self.checkpoint()
        path = self.out / name
        if not self.dist.is_main:
            return None
        refuse_nonfinite([ckpt["model"], ckpt["ema"] or {}], path)
        atomic_save(ckpt, path)
        return path

    def _restore(self, path: Path) -> dict[str, torch.Tensor] | None:
        """Go on from the checkpoint ``path``; returns its moving average (``None``: none)."""
        ckpt = load_checkpoint(path, map_location=self.device)
        # missing fields (checkpoints older than a new setting) take the setting's default
        saved = SVGConfig.from_dict(ckpt["config"]).to_dict()
        diff = config_differences(saved, self.model_config.to_dict())
        if diff:
            raise ValueError(
                f"{path} was made with a different model configuration: " + "; ".join(diff)
            )
        self.svg.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.step = int(ckpt["step"])
        self.log.elapsed = float(ckpt.get("elapsed", 0.0))
        self.skipped = int(ckpt.get("skipped", 0))
        restore_rng(ckpt, self.dist)
        pending = ckpt.get("pending_log_per_rank") or []
        if len(pending) == self.dist.world_size:
            self.log.resume_window(pending[self.dist.rank])
        self._last_saved = self.step
        self.best = ckpt.get("best")
        self.init_from = ckpt.get("init_from")
        if self.dist.is_main:
            self.log.truncate(self.step)
        return ckpt.get("ema")

    # -- the loop ---------------------------------------------------------------------------
    def train_step(self, frames: torch.Tensor) -> dict[str, torch.Tensor] | None:
        """One optimiser step on ``frames [B, T, C, H, W]``.

        Returns the detached per-sequence terms, or ``None`` when the loss or a gradient was not
        finite: then nothing is updated (weights, optimiser state and BatchNorm statistics stay as
        they were) and the step is counted in ``skipped``. Either way the learning-rate schedule
        moves on to the next step.
        """
        self.svg.train()
        buffers = list(self.svg.buffers())
        saved = [b.clone() for b in buffers]
        # DDP averages gradients over ranks; scaling by the world size makes them the gradient
        # of the loss summed over the global batch, as in a single process.
        with autocast(self.device, self.cfg.precision):
            loss = self.forward(frames) * self.dist.world_size
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grads = [p.grad for p in self.svg.parameters() if p.grad is not None]
        norms = torch.stack(torch._foreach_norm(grads)) if grads else loss.new_zeros(1)
        finite = bool(torch.isfinite(loss) & torch.isfinite(norms).all())
        if distributed.all_true(finite, self.dist, self.device):
            self.optimizer.step()
            self.scheduler.step()
            if self.ema is not None:
                self.ema.update_parameters(self.svg)
            self.bad_in_a_row = 0
            return self.loss_fn.last_terms
        self.optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            torch._foreach_copy_(buffers, saved)
        with warnings.catch_warnings():  # torch's hint for a schedule stepped without an update
            warnings.filterwarnings("ignore", "Detected call of `lr_scheduler.step")
            self.scheduler.step()
        self.skipped += 1
        self.bad_in_a_row += 1
        return None

    def fit(
        self,
        steps: int | None = None,
        progress: bool = True,
        callback: Callable[[dict[str, Any]], None] | None = None,
        handle_signals: bool = True,
    ) -> list[dict[str, Any]]:
        """Train until ``steps`` (default, and at most: the config's) total steps; returns the
        logged records.

        Raises :class:`TrainingError` after ``max_bad_steps`` non-finite steps in a row; the last
        checkpoint written before them is left as it was. With ``handle_signals`` (main thread
        only), SIGINT or SIGTERM ends the step in flight, saves ``checkpoint.pt`` for it and
        raises :class:`svg_pyro.signals.Interrupted` (``.step``, ``.checkpoint``,
        ``.exit_status`` 130 / 143); a second signal ends the process at once.
        """
        total = self.cfg.steps if steps is None else steps
        if total > self.cfg.steps:
            raise ValueError(
                f"fit(steps={total}) goes past the run's TrainConfig.steps={self.cfg.steps}, "
                "which sets the length of its data stream; raise TrainConfig.steps instead"
            )
        records: list[dict[str, Any]] = []
        if self.step >= total:
            return records
        data = batches(
            self.dataset, self.local_batch, self.step, self.cfg.num_workers,
            rank=self.dist.rank, world_size=self.dist.world_size,
        )  # fmt: skip
        with contextlib.ExitStack() as stack:
            if self.dist.is_main:
                stack.enter_context(run_folder_lock(self.out))
            log = stack.enter_context(self.log.open(total, self.step, progress))
            request = stack.enter_context(
                stop_request(self.dist, self._quit_now)
                if handle_signals
                else contextlib.nullcontext(signals.StopRequest())
            )
            stack.enter_context(pyro.validation_enabled(False))
            while self.step < total:
                self._advance(next(data)["frames"].to(self.device, non_blocking=True))
                last = self.step == total
                if self.step % self.cfg.log_every == 0 or last:
                    records.append(log.write(self.step, self.skipped))
                    if callback is not None:
                        callback(records[-1])
                if self.cfg.eval_every and self.step % self.cfg.eval_every == 0:
                    log.tick()
                    self._heldout_eval()
                    log.tick()  # the evaluation's time counts too
                if self.step % self.cfg.checkpoint_every == 0 or last:
                    log.tick()
                    self.save()
                    self._last_saved = self.step
                # every rank learns of a signal to any rank, and all stop after this step
                signum = distributed.max_int(request.signum or 0, self.dist, self.device)
                if signum and not last:
                    log.tick()
                    self._stop(signum)
        return records

    def _advance(self, frames: torch.Tensor) -> None:
        """One run step: :meth:`train_step`, its terms to the log, the step counter on."""
        terms = self.train_step(frames)
        if terms is None and self.bad_in_a_row >= self.cfg.max_bad_steps:
            raise TrainingError(
                f"{self.bad_in_a_row} non-finite steps in a row at step {self.step + 1}; "
                f"stopped. The last good checkpoint ({self.out / CHECKPOINT}, step "
                f"{self._last_saved}) is intact."
            )
        self.log.add(terms)
        self.step += 1

    def _heldout_eval(self) -> None:
        """Score the held-out set (rank 0), log it, and write ``best.pt`` when the score is the
        best so far (:data:`svg_pyro.heldout.BEST_SCORE`, higher is better). Touches no RNG
        stream, weight or statistic of the training run."""
        improved = 0
        if self.dist.is_main:
            row, image = self._score_heldout()
            improved = int(improves(self.best, row))
            if improved:
                self.best = {"metric": BEST_SCORE, "score": row[BEST_SCORE], "step": self.step,
                             "bn_statistics": row["bn_statistics"]}  # fmt: skip
            row["best_step"] = self.best["step"] if self.best else None
            self.log.write_eval(row, image)
        if distributed.max_int(improved, self.dist, self.device):
            self.save(BEST)  # a collective (every rank's RNG state); rank 0 writes

    def _score_heldout(self) -> tuple[dict[str, Any], Any]:
        """The held-out row and preview of the weights ``best.pt`` stands for (the moving
        average, with ``--ema``); builds the held-out set the first time."""
        setup = None
        if self.heldout is None:
            t0 = time.perf_counter()
            self.heldout = HeldOut(self.model_config, self.cfg, self.device)
            setup = round(time.perf_counter() - t0, 3)
        average = self.ema.module.state_dict() if self.ema is not None else None
        with holding(self.svg, average):  # what best.pt and the export stand for
            row, image = self.heldout.evaluate(self.svg, self.step, self.out / "previews")
        if setup is not None:
            row["setup_seconds"] = setup  # drawing the held-out set, once per process
        row["seconds"] = round(self.log.elapsed + row["eval_seconds"], 3)
        return row, image

    def _stop(self, signum: int) -> None:
        """Save the last completed step (unless just saved) on every rank's behalf; raise."""
        if self._last_saved != self.step:
            self.save()
            self._last_saved = self.step
        distributed.barrier(self.dist)  # no rank exits (and so no launcher kills) mid-write
        path = self.out / CHECKPOINT
        err = signals.Interrupted(
            signum, f"stopped by {signals.signal_name(signum)}; saved step {self.step} to {path}"
        )
        err.step, err.checkpoint = self.step, path
        raise err

    def _quit_now(self, signum: int) -> None:
        """A second signal: drop a half-written checkpoint; the previous one stays as it was."""
        if not self.dist.is_main:
            return
        (self.out / (CHECKPOINT + ".tmp")).unlink(missing_ok=True)
        kept = (
            f"{self.out / CHECKPOINT} (step {self._last_saved}) is as it was"
            if self._last_saved is not None
            else "no checkpoint was written"
        )
        print(
            f"svg-pyro train: second {signals.signal_name(signum)}: quitting now; {kept}",
            file=sys.stderr,
            flush=True,
        )
