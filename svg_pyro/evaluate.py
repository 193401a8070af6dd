"""Scoring sampled futures (``svg-pyro evaluate``, :mod:`svg_pyro.commands.evaluate`, runs
:func:`run_evaluation`): best / mean / worst-of-K SSIM and PSNR per future frame, the CRPS and
the energy score of the K samples, and IWAE.

For every test sequence the first ``n_past`` frames are the context; each method draws
``n_samples`` futures of ``n_future`` frames, all K samples of a chunk of sequences in one batched
call of :meth:`svg_pyro.svg.SVG.generate`. Every sample is scored per frame against the truth;
per sequence and per metric the best (worst) sample is the one with the best (worst)
*time-averaged* score, and ``mean`` averages the K samples (:func:`svg_pyro.metrics.
best_mean_worst`). The curves are then averaged over sequences with a 95% interval.

Best-of-K rewards spread whatever its calibration, so the K samples are also scored as one
probabilistic forecast by two proper scoring rules (lower is better; :mod:`svg_pyro.metrics`):
``crps``, the CRPS of each pixel (Pyro's ``crps_empirical``) averaged over the frame, and
``energy_score``, the energy score of each frame as one vector of pixels (Pyro's
``energy_score_empirical``). For one sample they are the mean absolute error and the Euclidean
distance.

Methods: the checkpoint's model under its variant name (``svg-lp``, ``svg-fp``, ``det``; with
``-conv`` appended for the ConvLSTM variant; ``:<run folder>`` when two share a name), every
``--compare`` checkpoint likewise, ``copy-last`` (the last context frame repeated: the
baseline a model must beat) and ``blank`` (all-zero frames: on SM-MNIST's black background, what
predicting no digit at all scores; SSIM and PSNR reward it more than one might think).
Deterministic methods (``det``, ``copy-last``, ``blank``) are sampled once: all their K samples
would be equal, so best = mean = worst.

``--iwae K`` adds an importance-weighted lower bound on log p(future | context) per sequence
(:mod:`svg_pyro.iwae`); ``--plot`` draws the curves (:func:`svg_pyro.viz.plot_eval_curves`);
``--markdown`` writes the tables of a report (:func:`markdown_tables`, which also takes a saved
JSON).
"""

from __future__ import annotations

import math
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from svg_pyro import signals
from svg_pyro.data import to_float
from svg_pyro.iwae import evaluate_iwae, iwae_summary
from svg_pyro.loaded import load_trained
from svg_pyro.metrics import (
    PSNR_CAP_DB,
    best_mean_worst,
    crps,
    energy_score,
    mean_ci95,
    psnr,
    ssim,
)
from svg_pyro.svg import SVG, sampling_mode

COPY_LAST = "copy-last"
BLANK = "blank"
METRICS = ("ssim", "psnr")
PROPER_SCORES = ("crps", "energy_score")  # scores of the K samples together; lower is better
Generator = Callable[[torch.Tensor, int, int], torch.Tensor]


# -- set-up ---------------------------------------------------------------------------------------
def copy_last(context: torch.Tensor, n_future: int, n_samples: int = 1) -> torch.Tensor:
    """The baseline: ``context [B, P, C, H, W]`` -> last frame ``[n_samples, B, F, C, H, W]``."""
    last = context[:, -1:]
    return (
        last.expand(-1, n_future, *last.shape[2:])
        .unsqueeze(0)
        .expand(n_samples, -1, -1, -1, -1, -1)
    )


def blank(context: torch.Tensor, n_future: int, n_samples: int = 1) -> torch.Tensor:
    """The empty prediction: all-zero frames ``[n_samples, B, F, C, H, W]``."""
    b, c, h, w = context.shape[0], *context.shape[2:]
    return context.new_zeros(1, b, 1, c, h, w).expand(n_samples, b, n_future, c, h, w)


# -- sampling and scoring -------------------------------------------------------------------------
def score_samples(
    samples: torch.Tensor, truth: torch.Tensor, psnr_cap: float | None = PSNR_CAP_DB
) -> dict[str, torch.Tensor]:
    """``samples [K, B, F, C, H, W]`` vs ``truth [B, F, C, H, W]`` -> ssim, psnr ``[K, B, F]``."""
    target = truth.unsqueeze(0).expand_as(samples)
    return {"ssim": ssim(samples, target), "psnr": psnr(samples, target, max_db=psnr_cap)}


def proper_scores(samples: torch.Tensor, truth: torch.Tensor) -> dict[str, torch.Tensor]:
    """``samples [K, B, F, C, H, W]`` vs ``truth [B, F, C, H, W]`` -> ``crps`` (per pixel,
    averaged over the frame) and ``energy_score`` (per frame), each ``[B, F]``, float64; one
    frame at a time, so memory stays that of the samples."""
    per_frame = [
        (crps(samples[:, :, f], truth[:, f]), energy_score(samples[:, :, f], truth[:, f]))
        for f in range(truth.shape[1])
    ]
    return {
        "crps": torch.stack([c for c, _ in per_frame], 1),
        "energy_score": torch.stack([e for _, e in per_frame], 1),
    }


def evaluate_generator(
    generate: Generator,
    frames: np.ndarray,
    n_past: int,
    n_future: int,
    n_samples: int,
    batch_size: int = 16,
    device: torch.device | str = "cpu",
    psnr_cap: float | None = PSNR_CAP_DB,
    progress: bool = True,
    desc: str = "evaluate",
) -> dict[str, dict[str, torch.Tensor]]:
    """Score ``generate(context, n_future, n_samples) -> [K, B, F, C, H, W]`` on a test set.

    ``frames`` uint8 ``[N, >= P+F, C, H, W]`` is processed ``batch_size`` sequences (times K
    samples) at a time. Returns per metric the per-sequence curves ``best``, ``mean``, ``worst``
    ``[N, F]`` (CPU, float64) and ``best_index`` ``[N]``; and for ``crps`` and ``energy_score``
    (scores of the K samples as one forecast) the curves ``score`` ``[N, F]``.
    """
    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    parts: dict[str, dict[str, list[torch.Tensor]]] = {m: {} for m in METRICS + PROPER_SCORES}
    n = len(frames)
    with tqdm(total=n, desc=desc, unit="seq", disable=not progress) as bar:
        for i in range(0, n, batch_size):
            x = to_float(frames[i : i + batch_size, : n_past + n_future], device)
            samples = generate(x[:, :n_past], n_future, n_samples)
            expected = (n_samples, x.shape[0], n_future, *x.shape[2:])
            if tuple(samples.shape) != expected:
                raise ValueError(f"generator returned {list(samples.shape)}, expected {expected}")
            scores = score_samples(samples, x[:, n_past:], psnr_cap)
            for metric, value in scores.items():
                for key, v in best_mean_worst(value, higher_is_better=True).items():
                    parts[metric].setdefault(key, []).append(v.detach().cpu())
            for metric, value in proper_scores(samples, x[:, n_past:]).items():
                parts[metric].setdefault("score", []).append(value.cpu())
            bar.update(x.shape[0])
    return {
        m: {k: torch.cat(v).double() if k != "best_index" else torch.cat(v) for k, v in d.items()}
        for m, d in parts.items()
    }


def model_generator(svg: SVG, n_samples: int) -> tuple[Generator, int]:
    """``(generate, samples actually drawn)``: the deterministic model is sampled once."""
    k = 1 if svg.prior is None else n_samples

    def generate(context: torch.Tensor, n_future: int, _: int) -> torch.Tensor:
        return svg.generate(context, n_future, k)

    return generate, k


# -- summaries ------------------------------------------------------------------------------------
def summarize(per_seq: dict[str, dict[str, torch.Tensor]]) -> dict[str, Any]:
    """Per metric: per-frame ``best``/``mean``/``worst`` averaged over sequences, their 95%
    intervals (``ci95_*``) and ``avg`` (the same for the time-averaged score). The proper
    scores (``crps``, ``energy_score``) have one curve, ``per_frame``, with ``ci95`` and ``avg``
    (``mean``, ``ci95``)."""
    out: dict[str, Any] = {}
    for metric, d in per_seq.items():
        if metric in PROPER_SCORES:
            m, ci = mean_ci95(d["score"])
            m_avg, ci_avg = mean_ci95(d["score"].mean(1))
            out[metric] = {
                "per_frame": m.tolist(),
                "ci95": ci.tolist(),
                "avg": {"mean": float(m_avg), "ci95": float(ci_avg)},
            }
            continue
        block: dict[str, Any] = {}
        avg: dict[str, float] = {}
        for key in ("best", "mean", "worst"):
            m, ci = mean_ci95(d[key])
            block[key] = m.tolist()
            block[f"ci95_{key}"] = ci.tolist()
            m, ci = mean_ci95(d[key].mean(1))
            avg[key], avg[f"ci95_{key}"] = float(m), float(ci)
        block["avg"] = avg
        out[metric] = block
    return out


def _finite(obj: Any) -> Any:
    """JSON cannot hold inf/NaN: write them as null."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


# -- a checkpoint on a test set --------------------------------------------------------------------
def run_evaluation(
    checkpoint: str | Path,
    testset: str | Path,
    n_samples: int = 100,
    n_past: int | None = None,
    n_future: int | None = None,
    compare: list[str | Path] | None = None,
    iwae: int = 0,
    obs_sigma: float | None = None,
    batch_size: int = 16,
    sequences: int | None = None,
    seed: int = 0,
    bn_train_mode: bool = False,
    psnr_cap: float | None = PSNR_CAP_DB,
    device: str = "auto",
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate ``checkpoint`` (and ``compare`` checkpoints, and copy-last) on ``testset``.

    Returns the JSON-ready results (see the module docstring and the README). Each method's
    sampling starts from ``seed``, so numbers reproduce on the same device.
    """
    if n_samples < 1:
        raise ValueError(f"--n-samples must be >= 1, got {n_samples}")
    if iwae < 0:
        raise ValueError(f"--iwae must be >= 0, got {iwae}")
    paths = [Path(checkpoint), *[Path(c) for c in compare or []]]
    first = load_trained(paths[0], device, n_past, n_future)
    p, f, dev = first.n_past, first.n_future, first.device
    frames: np.ndarray | None = None
    methods: dict[str, Any] = {}

    def results(partial: dict[str, Any] | None = None) -> dict[str, Any]:
        """The JSON-ready results of the methods done so far (``partial``: what is missing)."""
        assert frames is not None
        out = {
            "methods": methods,
            "n_samples": n_samples,
            "n_sequences": int(len(frames)),
            "n_past": p,
            "n_future": f,
            "testset": str(testset),
            "seed": seed,
            "bn_train_mode": bn_train_mode,
            "psnr_cap_db": psnr_cap,
            "iwae_particles": iwae or None,
            "device": str(dev),
        }
        return _finite(out if partial is None else {"partial": partial, **out})

    try:
        for i, path in enumerate(paths):
            run = first if i == 0 else load_trained(path, dev, p, f)
            if frames is None:
                frames = run.testset(testset, sequences)
            svg = run.svg
            name = svg.config.variant + ("-conv" if svg.config.rnn == "conv" else "")
            if name in methods:
                name = f"{name}:{path.parent.name or path.stem}"
            generate, k = model_generator(svg, n_samples)
            run.seed(seed)
            with sampling_mode(svg, bn_train_mode):
                per_seq = evaluate_generator(
                    generate, frames, p, f, k, batch_size, dev, psnr_cap, progress, desc=name
                )
                entry = {**summarize(per_seq), "samples": k, "checkpoint": str(path)}
                entry["step"] = run.step
                if iwae:
                    run.seed(seed)
                    sigma = svg.config.obs_sigma if obs_sigma is None else obs_sigma
                    tag = f"{name} iwae"
                    per = evaluate_iwae(
                        svg, frames, p, f, iwae, batch_size, dev, obs_sigma, progress, tag
                    )
                    entry["iwae"] = iwae_summary(per, f, svg.config.pixels, sigma)
            methods[name] = entry
        assert frames is not None
        for name, baseline in ((COPY_LAST, copy_last), (BLANK, blank)):
            per_seq = evaluate_generator(
                baseline, frames, p, f, 1, batch_size, dev, psnr_cap, progress, desc=name
            )
            methods[name] = {**summarize(per_seq), "samples": 1}
    except KeyboardInterrupt as err:  # Ctrl-C, or SIGTERM under the CLI
        signum = getattr(err, "signum", signal.SIGINT)
        if not methods:  # nothing complete: nothing worth writing
            raise signals.Interrupted(signum) from None
        done = {m["checkpoint"] for m in methods.values() if "checkpoint" in m}
        partial = {
            "interrupted_by": signals.signal_name(signum),
            "complete_methods": list(methods),
            "not_evaluated": [str(x) for x in paths if str(x) not in done]
            + [b for b in (COPY_LAST, BLANK) if b not in methods],
        }
        raise signals.Interrupted(signum, partial=results(partial)) from None
    return results()


# -- Markdown ------------------------------------------------------------------------------------
#: Predicted frames of the per-frame table when the caller names none (1-based; those past
#: ``n_future`` are left out).
MARKDOWN_FRAMES = (1, 3, 5, 10, 15, 20)


def _pm(value: float | None, ci: float | None, digits: int) -> str:
    return format_score(value, digits) + ("" if ci is None else f" +- {ci:.{digits}f}")


def markdown_tables(results: dict[str, Any], frames: tuple[int, ...] | None = None) -> str:
    """``results`` of :func:`run_evaluation` (or its JSON) as two Markdown tables.

    The first: per method, SSIM and PSNR best / mean / worst of K averaged over the predicted
    frames (+- their 95% intervals over sequences) and the CRPS and energy score; the second:
    every metric per predicted frame at ``frames`` (1-based; default :data:`MARKDOWN_FRAMES`),
    with the test frame in brackets. Deterministic methods show ``= best`` for mean and worst.
    """
    methods, p, f = results["methods"], results["n_past"], results["n_future"]
    shown = [t for t in (frames or MARKDOWN_FRAMES) if 1 <= t <= f] or list(range(1, f + 1))
    head = ("| method | samples | SSIM best | SSIM mean | SSIM worst | PSNR best (dB) | PSNR mean "
            "| PSNR worst | CRPS | energy score |")  # fmt: skip
    lines = [head, "|" + " --- |" * 10]
    for name, res in methods.items():
        k = res.get("samples", 1)
        row = [name, str(k)]
        for metric, digits in (("ssim", 4), ("psnr", 2)):
            a = res[metric]["avg"]
            for key in ("best", "mean", "worst"):
                same = k == 1 and key != "best"
                row.append("= best" if same else _pm(a[key], a.get(f"ci95_{key}"), digits))
        for metric, digits in (("crps", 4), ("energy_score", 2)):
            a = res.get(metric, {}).get("avg")
            row.append("" if a is None else _pm(a["mean"], a["ci95"], digits))
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "| | " + " | ".join(f"{t} ({p + t})" for t in shown) + " |"]
    lines.append("| --- |" + " --- |" * len(shown))
    for metric, label, digits in (("ssim", "SSIM", 3), ("psnr", "PSNR", 2)):
        for name, res in methods.items():
            keys = ("best", "mean", "worst") if res.get("samples", 1) > 1 else ("best",)
            for key in keys:
                if len(keys) == 1:
                    what = f"{label} {name}"
                elif key == "best":
                    what = f"{label} {name} best of {res['samples']}"
                else:
                    what = f"{label} {name} {key}"
                curve = res[metric][key]
                lines.append(
                    f"| {what} | "
                    + " | ".join(format_score(curve[t - 1], digits) for t in shown)
                    + " |"
                )
    for metric, label, digits in (("crps", "CRPS", 4), ("energy_score", "energy score", 2)):
        for name, res in methods.items():
            if metric in res:
                curve = res[metric]["per_frame"]
                lines.append(
                    f"| {label} {name} | "
                    + " | ".join(format_score(curve[t - 1], digits) for t in shown)
                    + " |"
                )
    return "\n".join(lines) + "\n"


def format_score(value: float | None, digits: int) -> str:
    """``value`` with ``digits`` decimals; ``inf`` for ``None`` (the JSON's null: an uncapped
    PSNR of an exact copy)."""
    return "inf" if value is None else f"{value:.{digits}f}"
