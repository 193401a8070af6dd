"""``svg-pyro train``: every SVGConfig and TrainConfig field as a ``--field-name`` flag over a
named preset, then :class:`svg_pyro.train.Trainer` on the run folder ``--out``."""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
import typing
from pathlib import Path
from typing import Any

from svg_pyro import options, signals
from svg_pyro.checkpoint import CHECKPOINT
from svg_pyro.config import PRESETS, SVGConfig, TrainConfig, build_configs
from svg_pyro.device import resolve_device
from svg_pyro.errors import UsageError
from svg_pyro.train import Trainer, init_configs, require_data_root


def _parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def add_setting_flags(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """Add ``--field-name`` for every SVGConfig and TrainConfig field (default: the preset's)."""
    for cls, title in ((SVGConfig, "model settings"), (TrainConfig, "training settings")):
        group = parser.add_argument_group(title)
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name in skip:
                continue
            hint = hints[f.name]
            kind = (
                _parse_bool
                if hint is bool
                else int
                if hint is int
                else float
                if hint is float
                else str
            )
            group.add_argument(
                "--" + f.name.replace("_", "-"),
                dest=f.name,
                type=kind,
                default=None,
                metavar=hint.__name__.upper() if isinstance(hint, type) else "VALUE",
                help=f"(default: the preset's; base default {f.default!r})",
            )


def settings_from_args(args: argparse.Namespace) -> dict[str, Any]:
    names = [f.name for f in dataclasses.fields(SVGConfig)] + [
        f.name for f in dataclasses.fields(TrainConfig)
    ]
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


def run(args: argparse.Namespace) -> int:
    """``svg-pyro train``: build the configs, train, and on a stop signal say how to resume."""
    settings = settings_from_args(args)
    resuming = args.resume and (Path(args.out) / CHECKPOINT).exists()
    init_from = args.init_from if args.init_from and not resuming else None
    if args.init_from:  # the model settings are the source's (the run's own once it has saved)
        source = Path(args.out) / CHECKPOINT if resuming else args.init_from
        model_cfg, train_cfg = init_configs(args.preset, source, **settings)
    else:
        model_cfg, train_cfg = build_configs(args.preset, **settings)
    require_data_root(train_cfg)  # an incomplete request first, whatever the machine
    check_preset_fits(args.preset, train_cfg, args.yes)
    trainer = Trainer(
        model_cfg, train_cfg, args.out, resume=args.resume, preset=args.preset, init_from=init_from
    )
    start = trainer.init_from
    print(
        f"training {model_cfg.variant} ({args.preset}) on {trainer.device} -> {args.out} "
        f"(step {trainer.step} of {train_cfg.steps}"
        + (f"; from the weights of {start['source']} at its step {start['step']}" if start else "")
        + ")",
        file=sys.stderr,
    )
    try:
        trainer.fit(progress=not args.no_progress)
    except signals.Interrupted as err:
        if trainer.dist.is_main:
            print(
                f"svg-pyro train: stopped by {signals.signal_name(err.signum)}: saved step "
                f"{err.step} of {train_cfg.steps} to {err.checkpoint}; resume with: "
                f"{_resume_command(args, trainer.dist.enabled)}",
                file=sys.stderr,
            )
        return err.exit_status
    print(f"checkpoint: {Path(args.out) / CHECKPOINT}")
    return 0


def check_preset_fits(preset: str, train_config: TrainConfig, yes: bool) -> None:
    """Refuse, before anything starts, a GPU-sized preset (:attr:`svg_pyro.config.Preset.gpu`)
    on a machine that would run it on its CPU, unless ``yes``."""
    if yes or not PRESETS[preset].gpu or resolve_device(train_config.device).type != "cpu":
        return
    cpu = "smmnist-cpu" if train_config.dataset == "smmnist" else "tiny"
    raise UsageError(
        f"--preset {preset} is a GPU setting (batch {train_config.batch_size}, "
        f"{train_config.steps:,} steps) and would run for weeks on this CPU: use --preset {cpu} "
        "here, or add --yes to train it on the CPU anyway"
    )


def _resume_command(args: argparse.Namespace, under_torchrun: bool) -> str:
    """The command line that continues this run: the same one, with ``--resume``."""
    if under_torchrun:
        return "the same torchrun command with --resume"
    argv = list(
        getattr(args, "argv", None) or ["train", "--preset", args.preset, "--out", args.out]
    )
    if "--resume" not in argv:
        argv.append("--resume")
    return shlex.join(["svg-pyro", *argv])


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register ``svg-pyro train``."""
    p = sub.add_parser("train", help="train a model (SVI on the negative ELBO)")
    p.add_argument(
        "--preset", default="smmnist", help=f"one of {sorted(PRESETS)} (default smmnist)"
    )
    p.add_argument("--out", required=True, help="run folder (checkpoint, metrics, config)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument(
        "--init-from",
        metavar="CHECKPOINT",
        help="start from these weights (a checkpoint path or a shipped name: `svg-pyro models`) "
        "with a fresh optimizer and step 0; the model settings are the checkpoint's (model flags "
        "given here override them), the training settings the preset's; with --resume the "
        "run's own checkpoint wins once it exists",
    )
    p.add_argument(
        "--yes",
        action="store_true",
        help="train a GPU preset (smmnist, smmnist-conv, kth, bair) on a CPU without asking",
    )
    options.add_no_progress(p, "no progress bar")
    add_setting_flags(p)
    return p
