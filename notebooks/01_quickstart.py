# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # svg-pyro quickstart
#
# Load the SVG-LP that ships with the package and sample futures with it; then train the `tiny`
# SVG-LP preset on Stochastic Moving MNIST on a CPU for a few minutes, look at its training
# curves, and sample futures of test sequences. The model is a Pyro program (`svg.model` /
# `svg.guide`); training maximises its ELBO.
#
# Set the environment variable `SVG_PYRO_NB_SMALL=1` for a quick smoke run (a few training steps:
# the samples will be blurs).

# %%
import os
import warnings
from pathlib import Path

import torch
from IPython.display import Image, Markdown, display

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm.auto without ipywidgets

# SVG_PYRO_NB_SMALL=1: a smoke run of a minute or two (CI); unset: a run worth looking at.
SMALL = os.environ.get("SVG_PYRO_NB_SMALL", "0") == "1"
torch.manual_seed(0)
print("small setting" if SMALL else "full setting")

# %% [markdown]
# ## The shipped model
#
# `svg_pyro.load_pretrained()` returns the default SVG-LP that ships with the package, in eval
# mode. Every shipped model has a model card, `svg_pyro.pretrained.model_card(name)` (Markdown):
# what the model is, how it was trained and what it scores; its opening paragraphs are shown
# below, and the Results page of the documentation (`docs/RESULTS.md`) puts the numbers side by
# side with the baselines'.

# %%
import svg_pyro

NAME = svg_pyro.pretrained.DEFAULT
shipped = svg_pyro.load_pretrained(NAME)
card = svg_pyro.pretrained.model_card(NAME)
# the card's opening paragraphs (before its first section), without its `# name` title
summary = card.split("\n## ")[0].split("\n", 1)[1].strip()
display(Markdown(f"**Model card of `{NAME}`** (opening paragraphs)\n\n{summary}"))

# %% [markdown]
# Five context frames in, twenty sampled future frames out: the top row of each block is the
# truth, the others are samples.

# %%
from svg_pyro.data import StochasticMovingMNIST
from svg_pyro.viz import sample_grid, save_png, stack_rows

two_digits = StochasticMovingMNIST(num_digits=2, seq_len=25, split="test", length=2)
clips = torch.stack([two_digits[i]["frames"] for i in range(2)])  # [2, 25, 1, 64, 64]
with torch.no_grad():
    futures = shipped.generate(clips[:, :5], 20, n_samples=3)  # [3, 2, 20, 1, 64, 64]
shipped_png = save_png(
    Path("runs/nb01/shipped.png"),
    stack_rows([sample_grid(clips[b, :5], clips[b, 5:], futures[:, b]) for b in range(2)], gap=8),
)
display(Image(filename=str(shipped_png)))

# %% [markdown]
# ## Train
#
# `build_configs` takes a preset and overrides any field of `SVGConfig` or `TrainConfig`. The
# `Trainer` writes a run folder: `config.json`, `metrics.jsonl`, `checkpoint.pt` (and, every
# `eval_every` steps, scores held-out test sequences and keeps the best weights in `best.pt`).
# The command line does the same: `svg-pyro train --preset tiny --out runs/nb01/tiny`.
#
# `tiny` is a small one-digit model (3 context frames, 5 to predict) meant for a CPU: 1500 steps of
# 16 sequences take two to five minutes on one CPU core, depending on what else runs on it. The cell
# trains from scratch each time it runs (it clears its run folder first; `Trainer(..., resume=True)`
# would go on from the checkpoint instead) and prints the training terms every 100 steps, averaged
# over the steps since the last line: `loss`, what is minimised, and its reconstruction (`recon`)
# and KL parts.

# %%
import shutil
import time

from svg_pyro.config import build_configs
from svg_pyro.train import Trainer

out = Path("runs/nb01/tiny")
shutil.rmtree(out, ignore_errors=True)  # a fresh run every time the notebook runs
steps, every = (20, 10) if SMALL else (1500, 100)
# held-out scores every `eval_every` steps (`eval_sequences` test sequences, best of `eval_samples`)
held_out = dict(eval_every=10, eval_sequences=4, eval_samples=2) if SMALL else dict(eval_every=500)
model_cfg, train_cfg = build_configs("tiny", steps=steps, device="cpu", log_every=10, **held_out)
trainer = Trainer(model_cfg, train_cfg, out, preset="tiny")
print(
    f"training {model_cfg.variant} ({model_cfg.prior} prior) for {steps} steps "
    f"of {train_cfg.batch_size} sequences"
)
start = time.perf_counter()


def show(row):  # called with every logged row (every `log_every` steps)
    if row["step"] % every == 0 or row["step"] == steps:
        print(
            f"step {row['step']:5d}  loss {row['loss']:.4f}  recon {row['recon']:.4f}  "
            f"kl {row['kl']:7.3f} nats  ({time.perf_counter() - start:4.0f} s)"
        )


trainer.fit(progress=False, callback=show)
print(f"trained {trainer.step} steps in {time.perf_counter() - start:.0f} s")

# %% [markdown]
# `loss` is the paper's objective (mean-pixel MSE summed over frames + beta * KL), `recon` and
# `kl` its two parts, per sequence. The held-out rows score forecasts of test sequences the way
# the evaluation does (5 context frames, 20 predicted: longer than `tiny` trains on): the best of
# several sampled futures by SSIM (1 is a perfect frame), next to two baselines, repeating the
# last context frame (copy-last) and an all-black frame (blank). A model trained for minutes
# draws blurred digits, and its scores stay below the baselines': black pixels are most of every
# frame, so a blur in the wrong place costs more than no digit at all.

# %%
from svg_pyro.viz import plot_metrics, read_metrics

held = read_metrics(out)["eval"]  # the held-out rows, as columns
for i, step in enumerate(held.get("step", [])):
    print(
        f"held-out at step {step:.0f}: SSIM best of {train_cfg.eval_samples} "
        f"{held['ssim_best'][i]:.3f}, copy-last {held['copy_last_ssim'][i]:.3f}, "
        f"blank {held['blank_ssim'][i]:.3f}"
    )
display(Image(filename=str(plot_metrics(out, out / "loss.png"))))

# %% [markdown]
# ## Sample
#
# `svg.generate(context, n_future, n_samples)` draws futures: the posterior's `z` during the
# context, the learned prior's after it. In the GIF the first panel is the truth (green) and the
# others are samples (red).

# %%
from svg_pyro.data import StochasticMovingMNIST
from svg_pyro.viz import sample_grid, save_gif, save_png, stack_rows, video_frames

svg = trainer.svg.eval()
n_past, n_future = model_cfg.n_past, model_cfg.n_future
test = StochasticMovingMNIST(num_digits=1, seq_len=n_past + n_future, split="test", length=2)
frames = torch.stack([test[i]["frames"] for i in range(2)])  # [B, T, 1, 64, 64]
samples = svg.generate(frames[:, :n_past], n_future, n_samples=3)  # [K, B, F, 1, 64, 64]
print("samples:", tuple(samples.shape))

rows = [video_frames(frames[b, :n_past], frames[b, n_past:], samples[:, b]) for b in range(2)]
gif = save_gif(out / "samples.gif", [stack_rows([r[t] for r in rows]) for t in range(len(rows[0]))])
display(Image(filename=str(gif)))

# %%
grid = stack_rows(
    [sample_grid(frames[b, :n_past], frames[b, n_past:], samples[:, b]) for b in range(2)], gap=8
)
display(Image(filename=str(save_png(out / "samples.png", grid))))

# %% [markdown]
# ## The same model through Pyro: SVI and Predictive
#
# `svg.model(frames, n_future=0)` and `svg.guide(frames)` are an ordinary Pyro program: the
# networks are registered with Pyro's param store, so Pyro's own `SVI` and optimisers train them.
# (`svg-pyro train` uses `SVGLoss` and a torch optimiser instead: the same negative ELBO as a
# torch module, which runs under `DistributedDataParallel`, bf16 and compiled networks.) A few
# more steps, through Pyro this time:

# %%
import pyro
from pyro.infer import SVI, Predictive, TraceMeanField_ELBO

pyro.clear_param_store()
svi = SVI(svg.model, svg.guide, pyro.optim.Adam({"lr": 2e-4}), TraceMeanField_ELBO())
svg.train()
for _ in range(3 if SMALL else 20):
    loss = svi.step(frames)  # the negative ELBO of the batch, nats
print(len(pyro.get_param_store()), "parameter tensors in Pyro's param store; loss", round(loss))
svg = svg.eval()

# %% [markdown]
# With `n_future=F` the model goes on after the observed frames: `z_t` from the prior, the decoded
# mean `x_hat_t` (a deterministic site) fed back through the encoder. With the guide covering the
# context latents, `Predictive` is the paper's sampling scheme, and `svg.generate` runs the same
# frame loop in one batch.

# %%
sites = [f"x_hat_{t}" for t in range(n_past, n_past + n_future)]
futures = Predictive(svg.model, guide=svg.guide, num_samples=3, return_sites=sites)(
    frames[:, :n_past], n_future=n_future
)
forecast = torch.stack([futures[s] for s in sites], 2)  # [K, B, F, 1, 64, 64], like generate's
print({s: tuple(futures[s].shape) for s in sites[:2]}, "->", tuple(forecast.shape))
grid = sample_grid(frames[0, :n_past], frames[0, n_past:], forecast[:, 0])
display(Image(filename=str(save_png(out / "predictive.png", grid))))

# %% [markdown]
# ### Vectorized: all samples, all particles in one pass; the model's graph
#
# The model broadcasts over the sample and particle dimensions that Pyro adds on the left of the
# `sequences` plate, so `Predictive(..., parallel=True)` draws the K futures in one batched pass
# and the ELBOs' `vectorize_particles=True` estimates with K particles in one pass
# (`SVGLoss(svg, num_particles=K)` and `svg-pyro train --particles K` do the same). Pyro's
# `get_dependencies` and `render_model` see the causal model: `x_t` depends on `z_1..z_t`,
# nothing later.

# %%
from pyro.infer.inspect import get_dependencies

parallel = Predictive(svg.model, guide=svg.guide, num_samples=3, return_sites=sites, parallel=True)(
    frames[:, :n_past], n_future=n_future
)
print("parallel Predictive:", tuple(parallel[sites[0]].shape))

elbo = TraceMeanField_ELBO(num_particles=4, vectorize_particles=True, max_plate_nesting=1)
svi = SVI(svg.model, svg.guide, pyro.optim.Adam({"lr": 2e-4}), elbo)
svg.train()
print("4 particles at once, negative ELBO", round(svi.step(frames)))
svg.eval()

deps = get_dependencies(svg.model, (frames[:, :4],))["prior_dependencies"]
print({x: sorted(set(deps[x]) - {x}) for x in ("x_1", "x_2", "x_3")})

# %%
import importlib.util
import shutil

if shutil.which("dot") and importlib.util.find_spec("graphviz"):  # context, then a forecast
    display(
        pyro.render_model(
            svg.model,
            model_args=(frames[:2, :3],),
            model_kwargs={"n_future": 2},
            render_deterministic=True,
        )
    )
else:
    print(
        "drawing the graph needs Graphviz: its `dot` program (e.g. `apt-get install graphviz`) "
        "and the Python package (`pip install graphviz`)"
    )

# %% [markdown]
# ## The ELBO of test sequences
#
# `SVGLoss(svg)(frames)` is the negative ELBO summed over the batch (Pyro's mean-field ELBO with
# the analytic KL); `last_terms` splits it per sequence.

# %%
from svg_pyro import SVGLoss

with torch.no_grad():
    loss_fn = SVGLoss(svg)
    loss_fn(frames)
{k: round(float(v), 4) for k, v in loss_fn.last_terms.items()}
