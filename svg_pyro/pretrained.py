"""Trained weights that ship with the package: ``load_pretrained()`` (the default model,
:data:`DEFAULT`) or ``load_pretrained("smmnist-lp")`` (any shipped name).

Each shipped model is one weights-only file ``svg_pyro/weights/NAME.pt`` (the model's
``state_dict`` in float32, or float16 where that changes samples by less than 1e-3; its
:class:`~svg_pyro.config.SVGConfig` and a few facts of its training) and a model card
``svg_pyro/weights/NAME.md``. ``svg_pyro/weights/registry.json`` lists the names with each
file's sha256; a file whose hash differs is refused. A registered name is accepted wherever a
checkpoint path is (``svg-pyro sample/evaluate/analyze --checkpoint smmnist-lp``):
:func:`svg_pyro.checkpoint.load_checkpoint` resolves it here. The maintainers' command that
writes these files is :mod:`svg_pyro.commands.export_weights`.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Any

import torch

from svg_pyro.config import SVGConfig, moved_training_settings
from svg_pyro.data import StochasticMovingMNIST
from svg_pyro.errors import InputFileError, file_kind
from svg_pyro.rollout_bn import record_statistics
from svg_pyro.svg import SVG

#: The shipped SVG-LP that the demo, the README and the notebooks show, and its deterministic
#: baseline (the same widths; compared in docs/RESULTS.md).
DEFAULT = "smmnist-lp-nf16-prev"
BASELINE = "smmnist-det-nf16-prev"

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
REGISTRY = "registry.json"
FORMAT = "svg-pyro-weights-1"


def _dir(weights_dir: str | Path | None) -> Path:
    return Path(WEIGHTS_DIR if weights_dir is None else weights_dir)


def _registry(weights_dir: Path | None = None) -> dict[str, dict[str, Any]]:
    path = _dir(weights_dir) / REGISTRY
    if not path.is_file():
        return {}
    return json.loads(path.read_text())


def available(weights_dir: Path | None = None) -> list[str]:
    """Names of the shipped models."""
    return sorted(_registry(weights_dir))


def is_pretrained_name(name: str | Path, weights_dir: Path | None = None) -> bool:
    """True for a registered name (a string without a path separator or suffix)."""
    text = str(name)
    return "/" not in text and not text.endswith(".pt") and text in _registry(weights_dir)


def sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_path(name: str, weights_dir: Path | None = None) -> Path:
    """The verified file of a shipped model; ``ValueError`` for an unknown name or a bad hash."""
    registry = _registry(weights_dir)
    if name not in registry:
        raise ValueError(f"no shipped model named {name!r}; available: {sorted(registry)}")
    entry = registry[name]
    path = _dir(weights_dir) / entry["file"]
    if not path.is_file():
        raise FileNotFoundError(f"shipped weights {path} are missing from the installation")
    found = sha256(path)
    if found != entry["sha256"]:
        raise ValueError(
            f"refusing {path}: sha256 {found} does not match the registry's {entry['sha256']}"
        )
    return path


def read_torch_file(
    path: str | Path,
    map_location: str | torch.device = "cpu",
    noun: str = "an svg-pyro weights file",
    hint: str = "a file written by `svg-pyro export-weights`",
) -> Any:
    """``torch.load(path, weights_only=True)``, or an :class:`~svg_pyro.errors.InputFileError`
    in one line, ``"PATH is ..., not NOUN (HINT)"``, that says what the file is instead (empty,
    truncated, an .npz test set, a text file; :func:`~svg_pyro.errors.file_kind`). A file that
    holds Python objects other than tensors and plain values is refused, and nothing in it
    runs."""
    try:
        with warnings.catch_warnings():  # torch's "please file an issue" on a newer pickle
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch's text would advise loading the file unsafely: not shown
        kind = file_kind(path)
        if kind == "a PyTorch file" and "weights only load failed" in str(err).lower():
            raise InputFileError(
                f"refusing to load {path}: it holds Python objects that would run code when "
                f"loaded, not only tensors, so it is not {noun}"
            ) from None
        what = _KINDS.get(kind, f"is {kind}")
        raise InputFileError(f"{path} {what}, not {noun} ({hint})") from None


#: How a file that cannot be loaded is described, by its :func:`~svg_pyro.errors.file_kind`.
_KINDS = {
    "empty": "is empty (0 bytes)",
    "truncated or damaged": "is truncated or damaged (was it copied only in part?)",
    "an .npz archive": "is an .npz test set (for --testset)",
    "a PyTorch file": "is damaged, or was written by a newer PyTorch",
    "a binary file": "is not a PyTorch file",
}


def read_weights(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A weights file as a checkpoint-like dict: ``model`` (fp32), ``config``, ``train_config``,
    ``step`` and ``meta``. A file that is not one raises
    :class:`~svg_pyro.errors.InputFileError` (a ``ValueError``) in one line."""
    data = read_torch_file(path, map_location)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InputFileError(f"{path} is not an svg-pyro weights file ({FORMAT})")
    data["model"] = {k: v.float() if v.is_floating_point() else v for k, v in data["model"].items()}
    return data


def load_pretrained(name: str = DEFAULT, device: str | torch.device = "cpu") -> SVG:
    """The shipped model ``name`` as an :class:`~svg_pyro.svg.SVG` in eval mode (BatchNorm uses
    its saved statistics), on ``device``; its file is checked against the registry's sha256.

    The shipped names, all trained on two-digit Stochastic Moving MNIST (64x64 frames, 5 context
    frames): ``"smmnist-lp-nf16-prev"``, the default (:data:`DEFAULT`), SVG-LP with skips from
    the previous frame; ``"smmnist-det-nf16-prev"`` (:data:`BASELINE`), its deterministic
    baseline; ``"smmnist-lp-nf16"`` and ``"smmnist-det-nf16"``, the same widths with skips from
    the last context frame; ``"smmnist-lp"`` and ``"smmnist-det"``, the first, smaller CPU
    models. :func:`available` lists them (an unknown name's ``ValueError`` does too), and
    :func:`model_card` gives each one's card: how it was trained and what it scores.

    Returns an ``SVG`` whose ``generate(context, n_future, n_samples)`` takes context frames
    ``[B, 5, 1, 64, 64]`` in [0, 1] and returns ``[n_samples, B, n_future, 1, 64, 64]``.
    """
    data = read_weights(weights_path(name), map_location=device)
    svg = SVG(SVGConfig.from_dict(data["config"])).to(device)
    svg.load_state_dict(data["model"])
    record_statistics(svg, data)  # svg.bn_statistics
    return svg.eval()


def model_card(name: str, weights_dir: Path | None = None) -> str:
    """The model card (Markdown) of a shipped model."""
    entry = _registry(weights_dir).get(name)
    if entry is None:
        raise ValueError(f"no shipped model named {name!r}; available: {available(weights_dir)}")
    return (_dir(weights_dir) / entry["card"]).read_text()


def model_weights(checkpoint: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The weights a checkpoint stands for: the moving average of a run trained with ``--ema``
    (``checkpoint["ema"]``), else ``checkpoint["model"]``."""
    return checkpoint.get("ema") or checkpoint["model"]


def weights_only(
    checkpoint: dict[str, Any],
    meta: dict[str, Any] | None = None,
    dtype: torch.dtype = torch.float32,
) -> dict[str, Any]:
    """What a weights file holds: ``checkpoint``'s :func:`model_weights` (the moving average of
    an ``--ema`` run; floating tensors cast to ``dtype``), its configs, step, ``init_from`` and
    ``meta``; no optimizer state, no RNG state."""
    state = {
        k: (v.to(dtype) if v.is_floating_point() else v).detach().cpu().clone()
        for k, v in model_weights(checkpoint).items()
    }
    return {
        "format": FORMAT,
        "model": state,
        "config": SVGConfig.from_dict(checkpoint["config"]).to_dict(),
        "train_config": {
            **(checkpoint.get("train_config") or {}),
            **moved_training_settings(checkpoint["config"]),  # an older file's model field
        },
        "step": int(checkpoint.get("step", -1)),
        "init_from": checkpoint.get("init_from"),
        "meta": dict(meta or {}),
    }


def export_weights(
    checkpoint: dict[str, Any],
    name: str,
    weights_dir: str | Path | None = None,
    meta: dict[str, Any] | None = None,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """Write ``checkpoint``'s :func:`weights_only` as ``weights_dir/NAME.pt`` and register its
    sha256. The model card ``NAME.md`` is the caller's.
    """
    weights_dir = _dir(weights_dir)
    weights_dir.mkdir(parents=True, exist_ok=True)
    data = weights_only(checkpoint, meta, dtype)
    path = weights_dir / f"{name}.pt"
    torch.save(data, path)
    registry = _registry(weights_dir)
    registry[name] = {"file": path.name, "card": f"{name}.md", "sha256": sha256(path)}
    (weights_dir / REGISTRY).write_text(json.dumps(registry, indent=2, sort_keys=True) + "\n")
    return path


def round_trip_error(
    checkpoint: dict[str, Any], path: str | Path, n_future: int = 20, n_samples: int = 4
) -> float:
    """Largest difference between samples of ``checkpoint``'s fp32 weights and of the stored
    file ``path`` (same context, same seed, eval mode): what the storage precision changes."""
    config = SVGConfig.from_dict(checkpoint["config"])
    test = StochasticMovingMNIST(num_digits=2, seq_len=5, split="test", seed=0, length=4)
    context = torch.stack([test[i]["frames"] for i in range(4)])[:, :, : config.channels]
    out = []
    for state in (model_weights(checkpoint), read_weights(path)["model"]):
        svg = SVG(config)
        svg.load_state_dict(state)
        svg.eval()
        torch.manual_seed(0)
        with torch.no_grad():
            out.append(svg.generate(context, n_future, n_samples))
    return float((out[0] - out[1]).abs().max())
