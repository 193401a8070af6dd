# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Three priors side by side: writing, training and comparing a new prior
#
# The prior $p(z_t \mid x_{1:t-1})$ is a pluggable object. A prior is an `nn.Module` subclassing
# `svg_pyro.Prior` whose `forward(h_prev, state)` takes the encodings of the frames before each
# latent step, `h_prev [B, L, g_dim]`, and returns a list of L Pyro distributions over `z_t`
# (batch `[B]`, event `[z_dim]`) and its state. Register it with `@register_prior(name)`; then
# `SVGConfig(prior=name)` or `svg-pyro train --prior name` use it.
#
# Here we write a prior whose mean follows an LSTM but whose scale is one learned number per
# latent dimension, the same at every frame, and compare it with the paper's learned prior (which
# predicts a scale per frame) and with the library's Gaussian-mixture prior (`--prior mixture`,
# whose KL has no closed form: the ELBO then uses a Monte Carlo estimate). The three are trained
# as a tiny model for a few minutes, which is enough to show the mechanics (writing, registering,
# training and scoring a prior) but, as the end of the notebook shows, not to tell the priors
# apart. The documentation's "Extending priors" page is the guide to the `Prior` interface.

# %%
import os
import warnings
from pathlib import Path

import torch
from IPython.display import Image, display

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm.auto without ipywidgets

# SVG_PYRO_NB_SMALL=1: a smoke run of a minute or two (CI); unset: a run worth looking at.
SMALL = os.environ.get("SVG_PYRO_NB_SMALL", "0") == "1"
torch.manual_seed(0)
print("small setting" if SMALL else "full setting")

# %%
import pyro.distributions as dist
from torch import nn

from svg_pyro import Prior, register_prior
from svg_pyro.nets import GaussianLSTM, init_weights


@register_prior("shared-scale")
class SharedScalePrior(Prior):
    """z_t ~ N(mu_t, s): mu_t from an LSTM over h_{t-1}, s one learned scale per dimension."""

    def __init__(self, config):
        super().__init__(config)
        self.net = GaussianLSTM(config.g_dim, config.z_dim, config.rnn_size, config.prior_layers)
        self.apply(init_weights)
        self.log_scale = nn.Parameter(torch.zeros(config.z_dim))

    def forward(self, h_prev, state=None):
        mu, _, state = self.net(h_prev, state)  # the LSTM's log-variance head goes unused
        scale = self.log_scale.exp().expand_as(mu[:, 0])
        return [dist.Normal(mu[:, i], scale).to_event(1) for i in range(mu.shape[1])], state


# %% [markdown]
# ## Train three priors briefly
#
# Same data, seed and schedule; only `prior` differs.

# %%
from svg_pyro.checkpoint import CHECKPOINT
from svg_pyro.config import build_configs
from svg_pyro.train import Trainer

steps = 8 if SMALL else 800
trained = {}
for name in ["learned", "shared-scale", "mixture"]:
    out = Path("runs/nb03") / name
    model_cfg, train_cfg = build_configs("tiny", prior=name, steps=steps, device="cpu")
    trainer = Trainer(model_cfg, train_cfg, out, resume=(out / CHECKPOINT).exists())
    trainer.fit(progress=False)
    trained[name] = trainer.svg.eval()
    print(f"{name:>12}: {model_cfg.variant}, {trainer.step} steps")

# %% [markdown]
# The model registers the prior with Pyro's param store (`pyro.module`), so Pyro's own `SVI`
# trains a new prior too, its `log_scale` included:

# %%
import dataclasses

import pyro
from pyro.infer import SVI, TraceMeanField_ELBO

from svg_pyro import SVG

pyro.clear_param_store()
fresh = SVG(dataclasses.replace(model_cfg, prior="shared-scale"))
svi = SVI(fresh.model, fresh.guide, pyro.optim.Adam({"lr": 1e-2}), TraceMeanField_ELBO())
batch = torch.stack([trainer.dataset[i]["frames"] for i in range(4)])
for _ in range(3):
    svi.step(batch)
print("svg.prior$$$log_scale" in pyro.get_param_store().keys(), fresh.prior.log_scale.data)

# %% [markdown]
# ## Compare the ELBO on held-out sequences
#
# The negative ELBO per sequence (nats, lower is better), averaged over several draws of `z`; for
# the mixture the KL part is itself a Monte Carlo estimate.

# %%
from svg_pyro import SVGLoss
from svg_pyro.data import StochasticMovingMNIST

test = StochasticMovingMNIST(num_digits=1, seq_len=model_cfg.seq_len, split="test", length=16)
frames = torch.stack([test[i]["frames"] for i in range(16)])
rows = []
with torch.no_grad():
    for name, svg in trained.items():
        loss_fn = SVGLoss(svg, num_particles=4)
        loss_fn(frames)
        terms = {k: float(v) for k, v in loss_fn.last_terms.items()}
        rows.append((name, terms["neg_elbo"], terms["recon"], terms["kl"]))
print(f"{'prior':>12} {'-ELBO/seq':>11} {'recon':>8} {'KL':>8}")
for name, neg_elbo, recon, kl in rows:
    print(f"{name:>12} {neg_elbo:11.1f} {recon:8.4f} {kl:8.3f}")
spread = max(r[1] for r in rows) - min(r[1] for r in rows)
print(f"the three -ELBOs lie within {spread:.1f} nats per sequence of each other")

# %% [markdown]
# ## Compare samples
#
# The same context, three samples from each model.

# %%
from svg_pyro.viz import sample_grid, save_png, stack_rows

n_past, n_future = model_cfg.n_past, model_cfg.n_future
grids = []
for name, svg in trained.items():
    torch.manual_seed(0)
    samples = svg.generate(frames[:1, :n_past], n_future, n_samples=3)
    grids.append(sample_grid(frames[0, :n_past], frames[0, n_past:], samples[:, 0]))
    print(f"row block {len(grids)}: {name}")
display(Image(filename=str(save_png(Path("runs/nb03/samples.png"), stack_rows(grids, gap=10)))))

# %% [markdown]
# ## What this comparison shows, and what it cannot
#
# The three models come out nearly the same, and that is the finding here, not a ranking. In the
# full run stored with this notebook their negative ELBOs lie within a few nats per sequence of
# each other, out of about 16,700, and the three priors draw the same blurred blob where the 7
# should move, with the three samples of each model alike. A tiny model trained for a few minutes
# has learned roughly where the digit is, but not yet to draw it or to put much into its latents
# (the KL column: a few nats per sequence at most); its decoder does nearly the same whatever `z`
# it is given, so every prior yields the same samples and almost the same ELBO, which is nearly
# all reconstruction. Telling priors apart needs a model that draws digits and uses its latents:
# a trained one, such as the shipped SVG-LP, with each prior fitted to it.
#
# What does differ already is each prior's structure, which the next cell shows.
#
# ## The shared scale cannot react to collisions
#
# Its standard deviation is the same at every frame, so `prior_scale` shows a flat line where the
# learned prior's varies with what it has seen.

# %%
from svg_pyro.analysis import prior_scale

for name, svg in trained.items():
    sigma = prior_scale(svg, frames[:1]).mean(-1)[0]
    print(f"{name:>12}:", " ".join(f"{s:.3f}" for s in sigma.tolist()))
