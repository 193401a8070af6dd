"""The recipe study of docs/RESULTS.md: validation curves of the candidate runs against the
shipped run's, by sequences seen and by training hours, kept across sittings.

Run folders do not outlive a sitting, so every scored point lives in a committed table,
``docs/data/recipe_curves.csv`` (one row per run and step: sequences seen, training hours of the
whole chain of runs, validation ELBO, best-of-20 SSIM and PSNR, and where scored the identity
frames and the last frame's ink over the truth's). A point is the validation command of
docs/RESULTS.md on a snapshot (and ``svg-pyro analyze identity`` for the last two)::

    svg-pyro evaluate --checkpoint SNAPSHOT --testset runs/eval/val.npz --sequences 64 \\
        --n-samples 20 --iwae 1 --seed 0 --device cpu --json runs/recipe/val/NAME_stepN.json

``add`` appends it (``--step``: steps behind the weights, chains of ``--init-from`` included;
``--hours``: training hours behind them, likewise), and the blank and copy-last scores of the
set the first time; ``plot`` prints the Markdown table and draws the curves::

    python benchmarks/recipe_study.py add --run lp-nf16 \\
        --json runs/recipe/val/nf16_step20000.json \\
        --step 20000 --batch 16 --hours 5.1 --note "2026-12-03 AMD EPYC" \\
        [--identity runs/recipe/val/nf16_step20000_identity.json]
    python benchmarks/recipe_study.py plot --out docs/figures/recipe_study_wide.png
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

CURVES = Path(__file__).resolve().parent.parent / "docs" / "data" / "recipe_curves.csv"
FIELDS = ["run", "step", "sequences", "hours", "val_elbo", "val_ssim_best20", "val_psnr_best20",
          "val_identity_mean20", "val_ink_ratio_last", "note"]  # fmt: skip
FLOATS = ("hours", "val_elbo", "val_ssim_best20", "val_psnr_best20", "val_identity_mean20",
          "val_ink_ratio_last")  # fmt: skip
REFERENCES = ("blank", "copy-last")  # rows without a step: the set's baselines


def read_curves(path: Path = CURVES) -> dict[str, list[dict]]:
    """The table's rows by run, in file order (references have ``step`` None)."""
    runs: dict[str, list[dict]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            r = dict(row)
            for key in ("step", "sequences"):
                r[key] = int(r[key]) if r[key] else None
            for key in FLOATS:  # empty (or absent, in a table of before a column): nan
                r[key] = float(r[key]) if r.get(key) else float("nan")
            runs.setdefault(r["run"], []).append(r)
    return runs


def point(scores: dict, method: str | None = None) -> dict:
    """ELBO, best-of-20 SSIM and PSNR of one method of an ``svg-pyro evaluate --json`` file
    (default: the model, the method that is not a baseline)."""
    methods = scores["methods"]
    name = method or next(k for k in methods if k not in REFERENCES)
    m = methods[name]
    elbo = m.get("iwae", {}).get("elbo_nats_per_frame", {}).get("mean", float("nan"))
    return dict(val_elbo=elbo, val_ssim_best20=m["ssim"]["avg"]["best"],
                val_psnr_best20=m["psnr"]["avg"]["best"])  # fmt: skip


def identity_point(report: dict) -> dict:
    """The model's identity frames (mean over 20 samples) and the ink of its last predicted
    frame over the truth's (below 1: fading) from an ``svg-pyro analyze identity --json`` file
    (a report of before ink: nan)."""
    m, truth = report["methods"]["model"], report["methods"]["truth"]
    ratio = float("nan")
    if "ink_by_frame" in m:
        ratio = m["ink_by_frame"][-1] / truth["ink_by_frame"][-1]
    return dict(val_identity_mean20=m["identity_frames_mean"], val_ink_ratio_last=ratio)


def upgrade(path: Path) -> None:
    """Rewrite a table of before the last columns with today's header (new cells empty)."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        if reader.fieldnames == FIELDS:
            return
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows([{k: row.get(k) or "" for k in FIELDS} for row in rows])


def add(args: argparse.Namespace) -> None:
    scores = json.loads(Path(args.json).read_text())
    ident = identity_point(json.loads(Path(args.identity).read_text())) if args.identity else {}
    runs = read_curves(args.curves)
    new = []
    for ref in REFERENCES:
        if ref not in runs and ref in scores["methods"]:
            new.append(dict(run=ref, note="the validation set's baseline", **point(scores, ref)))
    sequences = args.sequences if args.sequences is not None else args.step * args.batch
    new.append(dict(run=args.run, step=args.step, sequences=sequences, hours=args.hours,
                    note=args.note, **point(scores), **ident))  # fmt: skip
    upgrade(args.curves)
    with open(args.curves, "a", newline="") as f:
        writer = csv.DictWriter(f, FIELDS, lineterminator="\n")
        for row in new:
            writer.writerow({k: ("" if isinstance(v, float) and np.isnan(v) else
                                 round(v, 4) if isinstance(v, float) else v)
                             for k, v in row.items()})  # fmt: skip
    for row in new:
        print(row)


def plot(args: argparse.Namespace) -> None:
    from svg_pyro.viz import figure, save_figure

    runs = read_curves(args.curves)
    refs = {k: runs[k][0]["val_ssim_best20"] for k in REFERENCES if k in runs}
    curves = {k: sorted(v, key=lambda r: r["step"]) for k, v in runs.items() if k not in refs}
    if args.runs:
        curves = {k: curves[k] for k in args.runs.split(",")}
    print("| run | step | sequences | hours | val ELBO (nats/frame) | SSIM best of 20 | PSNR | "
          "identity frames | ink, frame 20 / truth's |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")

    def cell(v: float, fmt: str) -> str:
        return "-" if np.isnan(v) else format(v, fmt)

    for name, rows in curves.items():
        for r in rows:
            print(f"| {name} | {r['step']} | {r['sequences']:,} | {r['hours']:.2f} | "
                  f"{r['val_elbo']:.1f} | {r['val_ssim_best20']:.3f} | "
                  f"{r['val_psnr_best20']:.2f} | {cell(r['val_identity_mean20'], '.2f')} | "
                  f"{cell(r['val_ink_ratio_last'], '.2f')} |")  # fmt: skip
    from matplotlib import colormaps

    colors = colormaps["tab20"]  # a colour per run, up to 20 runs
    fig = figure(figsize=(15, 10))
    axes = fig.subplots(3, 2)
    for col, (xkey, xlabel) in enumerate((("sequences", "sequences seen (thousands)"),
                                          ("hours", "training hours"))):  # fmt: skip
        for row, (ykey, ylabel) in enumerate((("val_ssim_best20", "val SSIM, best of 20"),
                                              ("val_elbo", "val ELBO (nats/frame)"),
                                              ("val_identity_mean20",
                                               "identity frames (of 20, mean)"))):  # fmt: skip
            ax = axes[row, col]
            for i, (name, rows) in enumerate(curves.items()):
                x = np.array([r[xkey] for r in rows], dtype=float)
                x = x / 1000 if xkey == "sequences" else x
                y = np.array([r[ykey] for r in rows], dtype=float)
                keep = ~np.isnan(y)  # identity was not scored at every point
                if keep.any():
                    ax.plot(x[keep], y[keep], marker="o", ms=3, color=colors(i % 20), label=name)
            if ykey == "val_ssim_best20":
                for (ref, value), ls in zip(refs.items(), ("--", ":")):
                    ax.axhline(value, color="gray", ls=ls, label=f"{ref} ({value:.3f})")
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3)
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="center right", fontsize=8)
    fig.tight_layout(rect=(0, 0, 0.84, 1))
    print(save_figure(fig, args.out))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--curves", type=Path, default=CURVES, help="the table (default: %(default)s)")
    sub = ap.add_subparsers(dest="command", required=True)
    a = sub.add_parser("add", help="append one scored snapshot")
    a.add_argument("--run", required=True, help="the curve's name, e.g. lp-nf16")
    a.add_argument("--json", required=True, help="svg-pyro evaluate --json output")
    a.add_argument("--step", type=int, required=True, help="steps behind the weights, all runs")
    a.add_argument("--batch", type=int, default=16)
    a.add_argument("--sequences", type=int, default=None, help="default: step x batch")
    a.add_argument("--hours", type=float, required=True, help="training hours behind them")
    a.add_argument("--note", default="", help="date, machine, anything that qualifies the hours")
    a.add_argument("--identity", default=None, help="svg-pyro analyze identity --json output")
    a.set_defaults(func=add)
    p = sub.add_parser("plot", help="print the table and draw the curves")
    p.add_argument("--out", type=Path, required=True, help="PNG of the curves")
    p.add_argument("--runs", default="", help="comma-separated runs to draw (default: all)")
    p.set_defaults(func=plot)
    args = ap.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
