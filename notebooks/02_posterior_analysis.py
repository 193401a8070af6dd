# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Posterior analysis of the shipped SVG-LP
#
# `smmnist-lp-nf16-prev` (`svg_pyro.pretrained.DEFAULT`) is the SVG-LP that ships as the package's
# default: trained on two-digit Stochastic Moving MNIST, where a digit moves in a straight line
# until it hits a wall and then leaves in a random direction. Everything that is random in such a
# video happens at a wall hit. This notebook looks inside the model with ArviZ and Pyro's handlers:
#
# 1. the posterior and prior of the latents `z_t` as an `arviz.InferenceData`;
# 2. `z` over time, and the KL per frame around wall hits (where the posterior learns what the
#    prior could not know);
# 3. the learned prior's sigma at wall hits, as a ROC AUC (the paper's Figure 6, quantified);
# 4. a what-if with `poutine.do`: force the latent of the frame after a bounce;
# 5. the forecast group: futures from the context alone, against the truth.
#
# Nothing is trained here: the model loads in a second. With `SVG_PYRO_NB_SMALL=1` the notebook
# uses fewer sequences and draws (a smoke run); the numbers quoted in the text are those of the
# full run stored with it. Indexing throughout: frames `x_0..x_{T-1}`, latents `z_1..z_{T-1}`;
# `z_t` explains frame `t`, its prior $p(z_t \mid x_{0:t-1})$ has seen the frames before it.

# %%
import os
import warnings

import torch
from IPython.display import Image, Markdown, display

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm.auto without ipywidgets

# SVG_PYRO_NB_SMALL=1: a smoke run of a minute or two (CI); unset: a run worth looking at.
SMALL = os.environ.get("SVG_PYRO_NB_SMALL", "0") == "1"
torch.manual_seed(0)
print("small setting" if SMALL else "full setting")

# %%
import arviz as az
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import svg_pyro
from svg_pyro.analysis import smmnist_collision_data

NAME = svg_pyro.pretrained.DEFAULT  # the shipped SVG-LP the demo shows
svg = svg_pyro.load_pretrained(NAME)  # an SVG in eval mode
cfg = svg.config
print(f"{NAME} ({cfg.variant}): z_dim {cfg.z_dim}, trained on {cfg.n_past} + {cfg.n_future} frames")
# its model card's opening paragraphs (before its first section), without its `# name` title
summary = svg_pyro.pretrained.model_card(NAME).split("\n## ")[0].split("\n", 1)[1].strip()
display(Markdown(f"**Model card of `{NAME}`** (opening paragraphs)\n\n{summary}"))

# Two-digit test sequences (test digits) with their recorded wall hits: 5 context frames and
# 20 to forecast, the evaluation protocol. Sequence i depends only on (seed, i).
P, T = 5, 25
x, bounces = smmnist_collision_data(sequences=8 if SMALL else 512, frames=T, num_digits=2, seed=0)
hit = bounces.any(-1)  # [N, T]: a digit hits a wall in frame f
print(f"{len(x)} sequences of {T} frames; {hit.mean():.2f} of the frames have a wall hit")

# %% [markdown]
# ## To InferenceData
#
# `to_inference_data(svg, frames, n_draws, chains)` reads $q(z_t \mid x_{0:t})$ off a trace of the
# guide and $p(z_t \mid x_{0:t-1})$ off a trace of the model replayed on it, and stores draws of
# both (`posterior.z`, `prior.z`), the per-frame log-likelihood of each posterior draw's
# reconstruction at beta = 1 (`log_likelihood.x`), the per-frame $\mathrm{KL}(q \,\|\, p)$
# (`sample_stats.kl`) and the reconstructions (`posterior_predictive`: here their mean-pixel squared
# error, `x_mse`, since `predictive="summary"`). The draws are independent (the guide is sampled
# exactly); `chain` only splits them so that R-hat is defined.
#
# `svg.model` is the paper's model, however it was trained (the shipped one was last fine-tuned
# free-running, a choice of its training objective): the prior of `z_t` reads the true frames
# `x_{0:t-1}`, so this asks what each *true* frame tells the model.

# %%
from svg_pyro.analysis import to_inference_data

S = 4 if SMALL else 24  # sequences in the InferenceData
idata = to_inference_data(
    svg, x[:S], n_draws=3 if SMALL else 10, chains=2, seed=0, predictive="summary"
)
idata

# %% [markdown]
# ## z over time
#
# A trained model uses only some of its latent dimensions; the others stay at the prior. Rank
# the dimensions by how much their posterior mean moves over sequences and frames, and look at
# the busiest one in sequence 0: the guide's posterior next to the learned prior, frame by frame,
# with `az.summary` at the first wall hit after frame 2 (frame `f`) and at the frame after it.

# %%
from arviz.labels import DimCoordLabeller

post_mean = idata.posterior["z"].mean(("chain", "draw"))  # [sequence, time, latent]
movement = post_mean.std(("sequence", "time")).values
busy = int(movement.argmax())
print("std of the posterior mean per latent dimension:", movement.round(2))
print("busiest dimension:", busy)

hits0 = [f for f in np.flatnonzero(hit[0]) if 3 <= f < T - 1]
f0 = int(hits0[0]) if hits0 else 5
print(f"sequence 0: wall hits in frames {np.flatnonzero(hit[0]).tolist()}; looking at f = {f0}")
prior_only = az.InferenceData(posterior=idata.prior)  # prior draws, as ArviZ plots posteriors
coords = {"sequence": [0], "time": [f0, f0 + 1]}
# rows named "z[sequence: 0, time: 5, latent: 8]" rather than "z[0, 5, 8]"
summary_args = dict(var_names=["z"], coords=coords, kind="stats", labeller=DimCoordLabeller())
pd.concat(
    {
        name: az.summary(group, **summary_args)[["mean", "sd"]]
        for name, group in [("posterior q", idata), ("prior p", prior_only)]
    },
    axis=1,
).round(2)

# %% [markdown]
# Where the posterior's `sd` is much smaller than the prior's, frame `t` told the guide something
# the past did not: that dimension carries information. In the run stored here the model uses five
# of its ten dimensions (1, 3, 5, 8 and 9, the ones whose posterior mean varies above); the others
# stay at the prior, which is nearly a point at 0 for them. At the frame after the hit the prior's
# sd of latent dimension 8 (`latent: 8`) grows four-fold (0.14 to 0.57: it cannot know the new
# direction) and the posterior, which has seen the frame, pins it down (sd 0.03) far from the
# prior's mean (1.33 against 0.48). The forest plot shows the busiest dimension over the whole
# sequence, one row per time step `t` (the latent `z_t` of frame `t`), with the 94% intervals of the
# draws; dashed lines in the second figure mark the frames with a wall hit.

# %%
from arviz.labels import NoVarLabeller


class TimeStepLabeller(NoVarLabeller):
    """Rows named by their time step, "t = 5", rather than ArviZ's index "z[5]"."""

    def dim_coord_to_str(self, dim, coord_val, coord_idx):
        return f"t = {coord_val}" if dim == "time" else f"{dim} {coord_val}"

    def make_model_label(self, model_name, label):
        return label  # the legend names the models


axes = az.plot_forest(
    [idata, prior_only],
    model_names=["posterior q", "prior p"],
    var_names=["z"],
    coords={"sequence": 0, "latent": busy},  # scalars: one row per time step
    combined=True,
    labeller=TimeStepLabeller(),
    figsize=(6, 8),
)
axes[0].set_title(f"latent dimension {busy} of z_t, sequence 0")
axes[0].set_xlabel(f"z_t[{busy}] (94% interval of the draws)")
axes[0].set_ylabel("time step t (frame)")
plt.show()

# %%
t_axis = idata.posterior["time"].values
fig, ax = plt.subplots(figsize=(8, 3))
for name, group, color in [("posterior q", idata.posterior, "C0"), ("prior p", idata.prior, "C1")]:
    z = group["z"].sel(sequence=0, latent=busy)
    m, s = z.mean(("chain", "draw")).values, z.std(("chain", "draw")).values
    ax.plot(t_axis, m, marker="o", ms=3, color=color, label=name)
    ax.fill_between(t_axis, m - s, m + s, color=color, alpha=0.2)
for f in np.flatnonzero(hit[0]):
    ax.axvline(f, color="tab:red", ls="--", lw=1)
ax.set_xlabel("frame t (dashed: a wall hit in that frame)")
ax.set_ylabel(f"z_t[{busy}] (mean ± sd)")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## KL per frame around wall hits
#
# $\mathrm{KL}(q(z_t \mid x_{0:t}) \,\|\, p(z_t \mid x_{0:t-1}))$ is what frame `t` told the
# posterior beyond what the prior expected, in nats. Align every wall hit (frame `f`) of the
# sequences and average the KL of the frames `t = f + k` around it, leaving out the first 2 frames
# (where the prior has seen too little to know any velocity). A hit in frame `f` clamps the digit to
# the wall there; its new direction shows in frame `f + 1`. In the stored run the KL at `f + 1` is
# more than twice its average over all frames (6.9 against 3.1 nats), the hit frame itself a little
# above it, and the frames around them at the average: the posterior has to encode the new
# direction, and nothing else in the motion is news.

# %%
BURN = 2
OFFSETS = np.arange(-3, 4)


def around_hits(values, hit, burn=BURN, offsets=OFFSETS):
    """Mean of ``values [N, T-1]`` (column t - 1 = frame t) at frames f + k for every hit frame
    f, per offset k, and the mean over all frames after the burn-in."""
    n, t_total = hit.shape
    frame = np.arange(1, t_total)
    out = []
    for k in offsets:
        rows, cols = np.nonzero(hit)
        t = cols + k
        keep = (t > burn) & (t < t_total)
        out.append(values[rows[keep], t[keep] - 1].mean())
    return np.array(out), values[:, frame > burn].mean()


kl = idata.sample_stats["kl"].mean(("chain", "draw")).values  # [S, T-1], the same for every draw
kl_hit, kl_all = around_hits(kl, hit[:S])
for k, v in zip(OFFSETS, kl_hit):
    print(f"KL at frame f{k:+d}: {v:6.2f} nats")
print(f"KL over all frames after the burn-in: {kl_all:.2f} nats")

# %% [markdown]
# ## The learned prior's sigma at wall hits
#
# The prior $p(z_t \mid x_{0:t-1})$ cannot see frame `t`; if it has learned the physics, it should
# be unsure exactly when a digit has just hit a wall. `collision_analysis` scores the prior's
# standard deviation (mean over the latent dimensions) of every step against the recorded hits as a
# ROC AUC (0.5: no better than chance; 1: every step after a hit has a larger sigma than every other
# step). `lag=1` labels `z_t` with a hit in frame `t - 1`, the last frame its prior saw. `svg-pyro
# analyze collisions --checkpoint smmnist-lp-nf16-prev` runs the same from the command line; on the
# 1000 test sequences of the Results page (`docs/RESULTS.md`, "The learned prior and the latents")
# it scores 0.962 (0.977 with a burn-in of 2).

# %%
from svg_pyro.analysis import collision_analysis, plot_collisions

result = collision_analysis(svg, x, bounces, lag=1)
burned = collision_analysis(svg, x, bounces, lag=1, burn_in=BURN)
print(
    f"AUC {result['auc']:.3f} on {len(x)} sequences; with a burn-in of {BURN}: {burned['auc']:.3f}"
)
print("AUC by lag:", {k: round(v, 3) for k, v in result["auc_by_lag"].items()})
print(
    f"mean sigma after a hit {result['mean_sigma_hit']:.3f} vs elsewhere "
    f"{result['mean_sigma_other']:.3f} ({result['n_hit']} / {result['n_other']} steps)"
)
title = f"{NAME}: prior sigma vs wall hits (AUC {result['auc']:.3f})"
display(
    Image(
        filename=str(plot_collisions(result["sigma"], bounces, "runs/nb02/sigma.png", title=title))
    )
)

# %% [markdown]
# On the 512 sequences stored here the AUC is 0.96 (0.98 with a burn-in of 2), and it is
# highest at lag 1: the prior is unsure about exactly the frame after a hit, not the hit frame
# itself (which is predictable: the digit reaches the wall) nor the one after that (by then it
# has seen the new direction). The prior's sigma (what the model expects not to know) and the KL
# (what it then learned from the frame) side by side, aligned on the wall hits as above:

# %%
sigma_hit, sigma_all = around_hits(result["sigma"], hit)
fig, axes = plt.subplots(1, 2, figsize=(9, 3), layout="constrained")
for ax, values, base, label in [
    (axes[0], sigma_hit, sigma_all, "prior sigma (mean over dims)"),
    (axes[1], kl_hit, kl_all, "KL(q || p) [nats]"),
]:
    ax.plot(OFFSETS, values, marker="o")
    ax.axhline(base, color="gray", ls=":", label="all frames")
    ax.set_xlabel("frame t = f + k (f: a wall hit)")
    ax.set_ylabel(label)
    ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## What if: forcing the latent after a bounce
#
# The model is a Pyro program with a horizon, so handlers ask counterfactual questions about a
# forecast. Take a sequence in which a digit hits a wall soon after the context, and forecast it
# with `Predictive` three ways: as the model likes (`z_t` from the learned prior), and with
# `poutine.do` forcing the latent of the frame after the hit to +2 or to -2 in every dimension.
# `do` still draws the prior's own `z_t` (it only cuts its effect), so under one seed the three
# runs use the same random numbers: every frame before the forced one is identical, and the
# futures part from there on.

# %%
import pyro
from pyro import poutine
from pyro.infer import Predictive

from svg_pyro.viz import sample_grid, save_png, stack_rows

# the first sequence with a hit in frames P..P+4: z_{f+1} is then a forecast latent
after_hit = [
    (s, int(f) + 1) for s in range(len(x)) for f in np.flatnonzero(hit[s]) if P <= f < P + 5
]
seq, t_z = after_hit[0] if after_hit else (0, P + 2)
print(f"sequence {seq}: a digit hits a wall in frame {t_z - 1}; forcing z_{t_z}")
context, truth = x[seq : seq + 1, :P], x[seq, P:]
sites = [f"x_hat_{t}" for t in range(P, T)]


def forecast(model, k=3):
    pyro.set_rng_seed(0)
    out = Predictive(model, guide=svg.guide, num_samples=k, return_sites=sites)(
        context, n_future=T - P
    )
    return torch.stack([out[s][:, 0] for s in sites], 1)  # [K, F, 1, 64, 64]


runs = {"free": forecast(svg.model)}
for value in (2.0, -2.0):
    forced = poutine.do(svg.model, data={f"z_{t_z}": torch.full((1, cfg.z_dim), value)})
    runs[f"z = {value:+g}"] = forecast(forced)
first = t_z - P  # index of the forced frame among the forecast frames
for name in list(runs)[1:]:
    before = (runs[name][:, :first] - runs["free"][:, :first]).abs().max().item() if first else 0
    after = (runs[name][:, first:] - runs["free"][:, first:]).abs().max().item()
    print(f"{name}: largest pixel change before frame {t_z}: {before:.2g}, from it on: {after:.2g}")
grids = [sample_grid(context[0], truth, r) for r in runs.values()]
print("row blocks, top to bottom:", list(runs), "(each: the truth, then 3 samples)")
display(Image(filename=str(save_png("runs/nb02/what_if.png", stack_rows(grids, gap=10)))))

# %% [markdown]
# In the stored run the chosen sequence starts with its two digits (a 7 and a 2) overlapping. The
# free samples keep them apart for a few frames, then merge them into one shape; forcing `z = +2`
# sends the futures other ways from the forced frame on; `z = -2`, far outside what the prior
# draws, smears the digits and fades them out within a few frames. The model is a small model
# trained on a CPU, far from converged: its model card and the Results page (`docs/RESULTS.md`)
# say where it stands (its forecasts keep both digits recognisable for about 4 of 20 predicted
# frames). The forecast group measures this.
#
# ## The forecast group
#
# `to_inference_data(..., forecast_context=P)` adds `posterior_predictive.x_forecast`: frames
# P..T-1 forecast from the first P alone by `Predictive(svg.model, guide=svg.guide)` (the
# paper's scheme: posterior latents in the context, prior latents and fed-back means after it),
# one future per draw, on a `forecast_time` coordinate that numbers frames as `time` does, so
# `observed_data.x.sel(time=...)` is the truth. Below: the pixel error of each forecast frame,
# averaged over draws and for the best draw of each sequence, against repeating the last context
# frame.

# %%
F_SEQ = 2 if SMALL else 6
fc = to_inference_data(
    svg, x[:F_SEQ], n_draws=2 if SMALL else 20, seed=1, forecast_context=P, predictive="frames"
)
x_fc = fc.posterior_predictive["x_forecast"]  # chain, draw, sequence, forecast_time, c, h, w
print(dict(x_fc.sizes))
truth_fc = fc.observed_data["x"].sel(time=x_fc["forecast_time"].values)
err = ((x_fc - truth_fc.values) ** 2).mean(("channel", "height", "width"))
err = err.stack(sample=("chain", "draw"))  # [sequence, forecast_time, sample]
best = err.isel(sample=err.mean("forecast_time").argmin("sample"))  # best draw per sequence
copy_last = ((x[:F_SEQ, P - 1 : P] - x[:F_SEQ, P:]) ** 2).mean((2, 3, 4)).numpy()
ft = x_fc["forecast_time"].values
fig, ax = plt.subplots(figsize=(7, 3))
ax.plot(ft, err.mean(("sequence", "sample")), marker="o", ms=3, label="mean over draws")
ax.plot(ft, best.mean("sequence"), marker="o", ms=3, label="best draw per sequence")
ax.plot(ft, copy_last.mean(0), ls="--", color="gray", label="copy the last context frame")
ax.set_xlabel("forecast frame t")
ax.set_ylabel("mean-pixel squared error")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# A posterior predictive check on one statistic of a frame, its share of bright pixels (> 0.5,
# the digits' strokes): `az.plot_ppc` draws its distribution over the observed future frames
# against that of each draw's forecasts. Forecasts that blur or fade lose bright pixels; in the
# stored run they have fewer than the true frames (0.039 against 0.045 per frame): where the
# model is unsure it draws fainter digits (its free-running training pays for a wrong position
# less with faint strokes), besides losing the digits' shapes.

# %%
bright = lambda v: (v > 0.5).mean(axis=(-3, -2, -1))  # noqa: E731
ppc = az.from_dict(
    posterior_predictive={"bright": bright(x_fc.values)},
    observed_data={"bright": bright(truth_fc.values)},
    dims={"bright": ["sequence", "forecast_time"]},
    coords={"forecast_time": ft},
)
az.plot_ppc(ppc, var_names=["bright"], figsize=(7, 3))
plt.show()
print(
    f"bright pixels per frame: observed {bright(truth_fc.values).mean():.4f}, "
    f"forecast {bright(x_fc.values).mean():.4f}"
)
