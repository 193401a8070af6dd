"""``svg-pyro bench``: how fast SVG trains (or samples), on random 64x64 sequences.

``--mode train`` (the default) times full training steps, exactly as
:meth:`svg_pyro.train.Trainer.train_step` runs them (the Pyro loss, backward, fused Adam, and the
speed settings ``--precision``, ``--compile``, ``--channels-last``), with Pyro's validation off
as in :meth:`~svg_pyro.train.Trainer.fit`. ``--mode sample`` times
:meth:`svg_pyro.svg.SVG.generate` of ``--samples`` futures for each sequence of a batch.

One JSON line (``--json``) holds the speed (``seq_per_s``, ``step_ms``; ``frames_per_s`` when
sampling), the device, the precision and the configuration, and the cost model:

* ``flops_per_step``: FLOPs of one step (convolutions, matrix products and LSTMs, forward and
  backward) counted with :class:`torch.utils.flop_counter.FlopCounterMode` on an eager copy of
  the networks at two small batches and extrapolated (FLOPs are affine in the batch);
* ``matmul_tflops``: the dense matmul throughput of this device at this precision, measured in the
  same run; ``mfu`` = ``flops_per_step / step time / matmul throughput``;
* ``activations_mb``: bytes autograd saves for the backward pass at this batch (same
  extrapolation), ``params_mb``, and ``train_state_mb`` = activations + 4 x parameters (weights,
  gradients, two Adam moments): an estimate of training memory that needs no GPU;
* ``peak_memory_mb``: CUDA's peak allocated memory over the timed steps (``null`` on CPU, where
  ``peak_rss_mb`` gives the process's peak resident memory instead).

``--no-shared-skips`` decodes plainly instead of with :mod:`svg_pyro.skipshare` (each distinct
skip frame's convolutions once per sequence, what training runs), to measure that lever.
``--count-only`` times nothing and reports the FLOPs and memory estimate of a configuration,
e.g. to size a GPU run.

The package also holds what ``benchmarks/`` builds on: :class:`DirectSVGLoss`
(:mod:`svg_pyro.bench.direct`: the same networks and objective driven without Pyro, to measure
Pyro's own overhead), the cost model (:mod:`svg_pyro.bench.cost`), the timing helpers and
:func:`skip_decoding`, the one switch between shared and plain skip decoding. Results and
method: ``docs/PERFORMANCE.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pyro
import torch
from torch import nn

from svg_pyro import options
from svg_pyro.bench.cost import count_cost, count_once, matmul_flops_per_s, synchronize
from svg_pyro.bench.direct import DirectSVGLoss
from svg_pyro.config import ENCODERS, PRECISIONS, PRESETS, SVGConfig, TrainConfig
from svg_pyro.device import autocast
from svg_pyro.elbo import SVGLoss
from svg_pyro.svg import SVG
from svg_pyro.train import Trainer

__all__ = [
    "DirectSVGLoss",
    "SIZES",
    "SVGBench",
    "add_bench_arguments",
    "count_cost",
    "count_once",
    "matmul_flops_per_s",
    "plain_skip_decoding",
    "random_frames",
    "resolve_size",
    "skip_decoding",
    "synchronize",
    "time_steps",
]

MODES = ("train", "sample")


# -- the command line ----------------------------------------------------------------------------
def _preset_size(name: str, **changes: Any) -> dict[str, Any]:
    model, train = PRESETS[name].model, PRESETS[name].train
    size = {k: model[k] for k in ("nf", "g_dim", "z_dim", "rnn_size")}
    size.update(batch_size=train["batch_size"], channels_last=train.get("channels_last", False))
    return size | changes


SIZED = ("nf", "g_dim", "z_dim", "rnn_size", "batch_size", "channels_last")
#: Named sizes for ``--size``: the widths, batch and layout of the CPU recipe (``smmnist-cpu``),
#: its nf-16 variant (``smmnist-cpu-nf16``) and the paper's networks (``paper``, the default).
SIZES: dict[str, dict[str, Any]] = {
    # the paper's SM-MNIST networks at batch 16 (the default)
    "paper": dict(nf=64, g_dim=128, z_dim=10, rnn_size=256, batch_size=16, channels_last=False),
    # the shipped models' CPU recipe (`train --preset smmnist-cpu`): nf 8, g 64, z 8, rnn 128,
    # batch 32, channels_last
    "smmnist-cpu": _preset_size("smmnist-cpu"),
    # the same recipe grown (issue 22): nf 16, g 128, z 10, rnn 256, batch 16
    "smmnist-cpu-nf16": _preset_size(
        "smmnist-cpu", nf=16, g_dim=128, z_dim=10, rnn_size=256, batch_size=16
    ),
}


def resolve_size(args: argparse.Namespace) -> argparse.Namespace:
    """Fill the width, batch and layout flags not given on the command line from ``--size``
    (default ``paper``); flags given explicitly win. Idempotent; returns ``args``."""
    size = SIZES[getattr(args, "size", None) or "paper"]
    for key in SIZED:
        if getattr(args, key, None) is None:
            setattr(args, key, size[key])
    return args


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags shared by ``svg-pyro bench`` and ``benchmarks/*.py`` (paper sizes by default;
    ``--size`` names another)."""
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    parser.add_argument("--mode", choices=MODES, default="train", help="time training or sampling")
    parser.add_argument(
        "--size",
        choices=sorted(SIZES),
        default="paper",
        help="widths, batch and layout: paper (nf 64, g 128, z 10, rnn 256, batch 16), "
        "smmnist-cpu (the CPU recipe: nf 8, g 64, z 8, rnn 128, batch 32, channels_last) or "
        "smmnist-cpu-nf16 (nf 16, g 128, z 10, rnn 256, batch 16, channels_last); the flags "
        "below override it",
    )
    parser.add_argument("--batch-size", type=int, default=None, help="sequences per step")
    parser.add_argument("--frames", type=int, default=15, help="frames per sequence (15)")
    parser.add_argument("--n-past", type=int, default=5, help="context frames (5)")
    parser.add_argument("--channels", type=int, default=1, help="frame channels (1)")
    parser.add_argument("--encoder", choices=ENCODERS, default="dcgan", help="frame networks")
    parser.add_argument(
        "--rnn", choices=("fc", "conv"), default="fc", help="LSTMs over vectors or ConvLSTMs"
    )
    parser.add_argument(
        "--feature-size", type=int, default=8, help="--rnn conv: feature map side (8)"
    )
    parser.add_argument("--nf", type=int, default=None, help="encoder/decoder width")
    parser.add_argument("--g-dim", type=int, default=None, help="frame encoding size")
    parser.add_argument("--z-dim", type=int, default=None, help="latent size")
    parser.add_argument("--rnn-size", type=int, default=None, help="LSTM width")
    parser.add_argument("--predictor-layers", type=int, default=2)
    parser.add_argument("--posterior-layers", type=int, default=1)
    parser.add_argument("--prior-layers", type=int, default=1)
    parser.add_argument("--beta", type=float, default=1e-4, help="KL weight (1e-4)")
    parser.add_argument("--samples", type=int, default=10, help="--mode sample: K per sequence")
    parser.add_argument("--steps", type=int, default=5, help="timed steps (5)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (2)")
    options.add_device(parser)
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32")
    parser.add_argument("--compile", action="store_true", help="torch.compile encoder/decoder")
    parser.add_argument(
        "--channels-last",
        action="store_true",
        default=None,
        help="NHWC conv weights (the smmnist-cpu sizes' default)",
    )
    parser.add_argument(
        "--no-channels-last", dest="channels_last", action="store_false", help="NCHW weights"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--no-shared-skips",
        dest="shared_skips",
        action="store_false",
        help="decode plainly, not with svg_pyro.skipshare (to measure that lever)",
    )
    parser.add_argument(
        "--no-count", action="store_true", help="skip the FLOP/memory count and the matmul probe"
    )
    parser.add_argument(
        "--count-only",
        action="store_true",
        help="only count FLOPs and memory (on CPU, no timing): sizes a run before a GPU is at hand",
    )


def model_config(args: argparse.Namespace) -> SVGConfig:
    """The SVG-LP configuration that the bench flags describe."""
    resolve_size(args)
    if args.frames <= args.n_past:
        raise ValueError(f"--frames ({args.frames}) must exceed --n-past ({args.n_past})")
    return SVGConfig(
        prior="learned",
        encoder=args.encoder,
        rnn=getattr(args, "rnn", "fc"),
        feature_size=getattr(args, "feature_size", 8),
        channels=args.channels,
        nf=args.nf,
        g_dim=args.g_dim,
        z_dim=args.z_dim,
        rnn_size=args.rnn_size,
        predictor_layers=args.predictor_layers,
        posterior_layers=args.posterior_layers,
        prior_layers=args.prior_layers,
        n_past=args.n_past,
        n_future=args.frames - args.n_past,
        beta=args.beta,
    )


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The training settings (batch, device, speed levers) that the bench flags describe."""
    resolve_size(args)
    for name in ("batch_size", "steps", "samples"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1")
    if args.warmup < 0:
        raise ValueError("--warmup must be >= 0")
    return TrainConfig(
        batch_size=args.batch_size,
        steps=1,
        seed=args.seed,
        device=args.device,
        precision=args.precision,
        compile=args.compile,
        channels_last=args.channels_last,
    )


def random_frames(
    batch: int, config: SVGConfig, device: torch.device | str = "cpu", seed: int = 0
) -> torch.Tensor:
    """Uniform random frames ``[batch, seq_len, C, 64, 64]`` in [0, 1] (fixed by ``seed``)."""
    g = torch.Generator().manual_seed(seed)
    shape = (batch, config.seq_len, config.channels, config.image_size, config.image_size)
    return torch.rand(shape, generator=g).to(device)


# -- timing --------------------------------------------------------------------------------------
def time_steps(step: Callable[[], Any], steps: int, device: torch.device) -> float:
    """Seconds per call of ``step``: ``steps`` calls between two synchronisations, none inside."""
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    return (time.perf_counter() - start) / steps


def svg_cost_runner(
    config: SVGConfig, precision: str, mode: str = "train", shared_skips: bool = True
) -> tuple[Callable[[int], Any], list[torch.Tensor]]:
    """``(run, parameters)`` for :func:`count_cost` on a fresh eager CPU copy of the networks.

    ``mode="train"``: ``run(n)`` is the Pyro loss's forward and backward on ``n`` sequences.
    ``mode="sample"``: ``run(n)`` generates ``n`` futures of one context (in eval mode).
    ``shared_skips=False``: decode plainly, as within :func:`plain_skip_decoding`.
    """
    svg = SVG(config)
    loss_fn = SVGLoss(svg)
    cpu = torch.device("cpu")

    def run(n: int) -> None:
        frames = random_frames(n, config, cpu, seed=n)
        with (
            pyro.validation_enabled(False),
            autocast(cpu, precision),
            skip_decoding(svg, shared_skips),
        ):
            if mode == "train":
                svg.train()
                loss_fn(frames).backward()
            else:
                svg.eval()
                svg.generate(frames[:1, : config.n_past], config.n_future, n_samples=n)

    return run, list(svg.parameters())


@contextlib.contextmanager
def plain_skip_decoding(svg: SVG) -> Iterator[None]:
    """Within the block, ``svg`` decodes without :mod:`svg_pyro.skipshare` (every frame's skip
    convolutions computed, as the plain loop does): the same function, more work."""
    before = vars(svg).get("share_skips")
    svg.share_skips = False  # an instance attribute shadows the class default
    try:
        yield
    finally:
        if before is None:
            del svg.share_skips
        else:
            svg.share_skips = before


def skip_decoding(svg: SVG, shared: bool = True) -> contextlib.AbstractContextManager[None]:
    """The block decodes with shared skips (``svg``'s default) or, with ``shared=False``, plainly
    (:func:`plain_skip_decoding`): how ``--no-shared-skips`` is applied everywhere."""
    return contextlib.nullcontext() if shared else plain_skip_decoding(svg)


@contextlib.contextmanager
def loss_swapped(trainer: Any, loss: nn.Module) -> Iterator[None]:
    """Within the block, ``trainer.train_step`` uses ``loss`` in place of its ``SVGLoss``."""
    saved = {k: getattr(trainer, k) for k in ("loss_fn", "forward") if hasattr(trainer, k)}
    for k in saved:
        setattr(trainer, k, loss)
    try:
        yield
    finally:
        for k, v in saved.items():
            setattr(trainer, k, v)


# -- runners -------------------------------------------------------------------------------------
class SVGBench:
    """A :class:`~svg_pyro.train.Trainer` on random frames, in a temporary run folder.

    ``train_step()`` is one training step as training runs it; ``direct_step()`` the same step
    with :class:`DirectSVGLoss` in place of the Pyro loss; ``plain_skips_step()`` the training
    step with :func:`plain_skip_decoding`; ``sample_step()`` one call of ``generate``
    (``samples`` futures of each sequence's context). Call :meth:`close` at the end.
    """

    def __init__(self, model_cfg: SVGConfig, train_cfg: TrainConfig, samples: int = 1):
        self._tmp = tempfile.TemporaryDirectory(prefix="svg-bench-")
        self.trainer = Trainer(model_cfg, train_cfg, self._tmp.name)
        self.device = self.trainer.device
        self.svg = self.trainer.svg
        self.config = model_cfg
        self.precision = train_cfg.precision
        self.samples = samples
        self.frames = random_frames(train_cfg.batch_size, model_cfg, self.device, train_cfg.seed)
        self.direct = DirectSVGLoss(self.svg)

    def train_step(self) -> Any:
        with pyro.validation_enabled(False):
            return self.trainer.train_step(self.frames)

    def plain_skips_step(self) -> Any:
        with plain_skip_decoding(self.svg):
            return self.train_step()

    def direct_step(self) -> Any:
        with loss_swapped(self.trainer, self.direct):
            return self.trainer.train_step(self.frames)

    def sample_step(self) -> torch.Tensor:
        self.svg.eval()
        context = self.frames[:, : self.config.n_past]
        with autocast(self.device, self.precision):
            return self.svg.generate(context, self.config.n_future, n_samples=self.samples)

    def close(self) -> None:
        self._tmp.cleanup()


def device_name(device: torch.device) -> str:
    """``cpu`` or ``cuda (<GPU name>)``."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return "cpu"


def peak_rss_mb() -> float:
    """This process's peak resident memory in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_record(
    *,
    impl: str,
    args: argparse.Namespace,
    config: SVGConfig,
    device: torch.device,
    step_s: float | None,
    cost: dict | None,
    matmul: float | None,
    params: int,
    peak_memory: int | None,
) -> dict[str, Any]:
    """The JSON record of one benchmark (see the module docstring for the keys)."""
    b = args.batch_size
    rec: dict[str, Any] = {
        "impl": impl,
        "mode": args.mode,
        "size": getattr(args, "size", None),
        "device": device_name(device),
        "precision": args.precision,
        "compile": bool(args.compile),
        "channels_last": bool(args.channels_last),
        "shared_skips": bool(getattr(args, "shared_skips", True)),
        "step_ms": None if step_s is None else round(step_s * 1e3, 3),
        "seq_per_s": None if step_s is None else round(b / step_s, 4),
    }
    if args.mode == "sample" and step_s is not None:
        rec["frames_per_s"] = round(args.samples * b * config.n_future / step_s, 3)
    rec["config"] = {
        "batch_size": b,
        "frames": config.seq_len,
        "n_past": config.n_past,
        "n_future": config.n_future,
        "channels": config.channels,
        "encoder": config.encoder,
        "rnn": config.rnn,
        **({"feature_size": config.feature_size} if config.rnn == "conv" else {}),
        "nf": config.nf,
        "g_dim": config.g_dim,
        "z_dim": config.z_dim,
        "rnn_size": config.rnn_size,
        "layers": [config.predictor_layers, config.posterior_layers, config.prior_layers],
        "beta": config.beta,
        **({"samples": args.samples} if args.mode == "sample" else {}),
    }
    rec.update(steps=args.steps, warmup=args.warmup)
    params_mb = params * 4 / 2**20
    rec["params"] = params
    rec["params_mb"] = round(params_mb, 2)
    if cost is not None:
        rec["flops_per_step"] = int(cost["flops"])
        act = cost["saved_bytes"] / 2**20
        rec["activations_mb"] = round(act, 1)
        if args.mode == "train":
            rec["train_state_mb"] = round(act + 4 * params_mb, 1)
    if matmul is not None:
        rec["matmul_tflops"] = round(matmul / 1e12, 4)
        if cost is not None and step_s is not None:
            rec["mfu"] = round(cost["flops"] / step_s / matmul, 4)
    rec["peak_memory_mb"] = None if peak_memory is None else round(peak_memory / 2**20, 1)
    rec["peak_rss_mb"] = round(peak_rss_mb(), 1)
    rec["torch"] = torch.__version__
    rec["threads"] = torch.get_num_threads()
    return rec


def run_bench(args: argparse.Namespace) -> dict[str, Any]:
    """Build, warm up and time ``svg-pyro bench``'s workload; return its record."""
    model_cfg, train_cfg = model_config(args), train_config(args)
    if getattr(args, "count_only", False):
        return count_only(args, model_cfg)
    bench = SVGBench(model_cfg, train_cfg, samples=args.samples)
    try:
        return _time_bench(bench, args, model_cfg)
    finally:
        bench.close()


def _time_bench(bench: SVGBench, args: argparse.Namespace, model_cfg: SVGConfig) -> dict[str, Any]:
    device = bench.device
    step = bench.train_step if args.mode == "train" else bench.sample_step
    with skip_decoding(bench.svg, args.shared_skips):
        for _ in range(args.warmup):
            step()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        step_s = time_steps(step, args.steps, device)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    cost = matmul = None
    if not args.no_count:
        matmul = matmul_flops_per_s(device, args.precision)
        units = args.batch_size * (args.samples if args.mode == "sample" else 1)
        run, params = svg_cost_runner(model_cfg, args.precision, args.mode, args.shared_skips)
        with _quiet():
            cost = count_cost(run, units, params)
    n_params = sum(p.numel() for p in bench.svg.parameters())
    return make_record(
        impl="svg-pyro",
        args=args,
        config=model_cfg,
        device=device,
        step_s=step_s,
        cost=cost,
        matmul=matmul,
        params=n_params,
        peak_memory=peak,
    )


def count_only(args: argparse.Namespace, model_cfg: SVGConfig) -> dict[str, Any]:
    """The record of ``--count-only``: FLOPs and memory of the workload, nothing timed."""
    units = args.batch_size * (args.samples if args.mode == "sample" else 1)
    run, params = svg_cost_runner(model_cfg, args.precision, args.mode, args.shared_skips)
    with _quiet():
        cost = count_cost(run, units, params)
    return make_record(
        impl="svg-pyro",
        args=args,
        config=model_cfg,
        device=torch.device("cpu"),
        step_s=None,
        cost=cost,
        matmul=None,
        params=sum(p.numel() for p in params),
        peak_memory=None,
    ) | {"device": "none (counted on CPU)"}


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def describe(rec: dict[str, Any]) -> str:
    """A one-line human summary of a record."""
    c = rec["config"]
    if rec["step_ms"] is None:
        return (
            f"{rec['impl']} {rec['mode']} ({rec['precision']}), batch {c['batch_size']} x "
            f"{c['frames']} frames: {rec['flops_per_step'] / 1e12:.3f} TFLOP per step, "
            f"{rec['activations_mb']:.0f} MiB activations, {rec['params_mb']:.1f} MiB weights"
        )
    levers = [rec["precision"]] + [
        label
        for key, label in (
            ("compile", "compiled"),
            ("channels_last", "channels_last"),
            ("shared_skips", "shared skips"),
        )
        if rec.get(key)
    ]
    text = (
        f"{rec['impl']} {rec['mode']} on {rec['device']} ({', '.join(levers)}): "
        f"batch {c['batch_size']} x {c['frames']} frames: {rec['step_ms']:.1f} ms/step, "
        f"{rec['seq_per_s']:.2f} seq/s"
    )
    if "frames_per_s" in rec:
        text += f", {rec['frames_per_s']:.1f} frames/s"
    if "mfu" in rec:
        text += f", MFU {100 * rec['mfu']:.1f}% of {rec['matmul_tflops']:.3g} TFLOP/s"
    return text
