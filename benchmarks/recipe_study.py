"""The recipe study of docs/RESULTS.md: validation curves of candidate runs against the shipped
run's, by sequences seen and by training hours.

Each candidate's snapshots are scored with the validation command of docs/RESULTS.md
(``svg-pyro evaluate --checkpoint SNAPSHOT --testset val.npz --sequences 64 --n-samples 20
--iwae 1 --seed 0 --device cpu --json VAL/NAME_stepN.json``); this script reads those JSON files,
takes each run's batch size from its ``config.json`` and its training seconds at each step from
its ``metrics.jsonl``, and prints a Markdown table and draws the curves::

    python benchmarks/recipe_study.py --val runs/recipe/val \\
        --run nf16=runs/recipe/nf16 --run nf32=runs/recipe/nf32 \\
        --out docs/figures/recipe_study_wide.png

The shipped ``smmnist-lp`` run's curve (nf 8, batch 32) is the table measured with the same
command in the issue-15 sittings and printed in docs/RESULTS.md ("The training curve"); its run
folder no longer exists, so the points are read from there.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np

from svg_pyro.viz import figure, read_metrics, save_figure

# docs/RESULTS.md, "The training curve": (step, hours, ELBO nats/frame, SSIM best of 20, PSNR)
SHIPPED_BATCH = 32
SHIPPED_CURVE = [
    (350, 0.32, -2457.0, 0.126, 13.48),
    (600, 0.53, -2452.4, 0.222, 13.58),
    (1100, 0.78, -2446.6, 0.411, 13.75),
    (1400, 1.01, -2444.1, 0.415, 13.90),
    (1900, 1.31, -2442.4, 0.438, 13.68),
    (2700, 1.57, -2437.4, 0.528, 13.72),
    (4500, 2.28, -2429.5, 0.528, 13.67),
    (5900, 2.70, -2425.9, 0.546, 13.78),
    (7200, 3.10, -2421.8, 0.546, 13.81),
    (8484, 3.48, -2419.0, 0.579, 13.69),
]


def load_candidate(val_dir: Path, name: str, run: Path) -> list[dict]:
    """Rows ``{step, sequences, hours, elbo, ssim, psnr}`` of one candidate's scored snapshots."""
    batch = json.loads((run / "config.json").read_text())["train"]["batch_size"]
    train = read_metrics(run)["train"]
    rows = []
    for path in val_dir.glob(f"{name}_step*.json"):
        step = int(re.search(r"_step(\d+)\.json$", path.name).group(1))
        m = json.loads(path.read_text())["methods"]
        lp = next(v for k, v in m.items() if k not in ("copy-last", "blank"))
        # training seconds at this step: the last logged row at or before it
        before = train["step"] <= step
        seconds = float(train["seconds"][before][-1]) if before.any() else float("nan")
        rows.append(
            dict(step=step, sequences=step * batch, hours=seconds / 3600,
                 elbo=lp["iwae"]["elbo_nats_per_frame"]["mean"], ssim=lp["ssim"]["avg"]["best"],
                 psnr=lp["psnr"]["avg"]["best"])
        )  # fmt: skip
    return sorted(rows, key=lambda r: r["step"])


def shipped_rows() -> list[dict]:
    """The shipped run's curve as rows of the same kind."""
    return [
        dict(step=s, sequences=s * SHIPPED_BATCH, hours=h, elbo=e, ssim=q, psnr=p)
        for s, h, e, q, p in SHIPPED_CURVE
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--val", type=Path, required=True, help="folder of NAME_stepN.json files")
    ap.add_argument("--run", action="append", default=[], metavar="NAME=DIR", required=True)
    ap.add_argument("--out", type=Path, required=True, help="PNG of the curves")
    args = ap.parse_args()
    curves = {"shipped (nf 8, batch 32)": shipped_rows()}
    first = json.loads(next(args.val.glob("*_step*.json")).read_text())["methods"]
    refs = {k: first[k]["ssim"]["avg"]["best"] for k in ("blank", "copy-last") if k in first}
    for spec in args.run:
        name, run = spec.split("=", 1)
        curves[name] = load_candidate(args.val, name, Path(run))
    print("| run | step | sequences | hours | val ELBO (nats/frame) | SSIM best of 20 | PSNR |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, rows in curves.items():
        for r in rows:
            print(f"| {name} | {r['step']} | {r['sequences']:,} | {r['hours']:.2f} | "
                  f"{r['elbo']:.1f} | {r['ssim']:.3f} | {r['psnr']:.2f} |")  # fmt: skip
    fig = figure(figsize=(13, 7))
    axes = fig.subplots(2, 2)
    for col, (xkey, xlabel) in enumerate((("sequences", "sequences seen (thousands)"),
                                          ("hours", "training hours (wall clock)"))):  # fmt: skip
        for row, (ykey, ylabel) in enumerate((("ssim", "val SSIM, best of 20"),
                                              ("elbo", "val ELBO (nats/frame)"))):  # fmt: skip
            ax = axes[row, col]
            for i, (name, rows) in enumerate(curves.items()):
                x = np.array([r[xkey] for r in rows], dtype=float)
                x = x / 1000 if xkey == "sequences" else x
                ax.plot(x, [r[ykey] for r in rows], marker="o", ms=3, color=f"C{i}", label=name)
            if ykey == "ssim":
                for (ref, value), ls in zip(refs.items(), ("--", ":")):
                    ax.axhline(value, color="gray", ls=ls, label=f"{ref} ({value:.3f})")
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    print(save_figure(fig, args.out))


if __name__ == "__main__":
    main()
