"""Train a tiny model (under torchrun or alone); save this rank's final state to OUT/rank<r>.pt."""

import sys
from pathlib import Path

import torch

from svg_pyro.config import build_configs
from svg_pyro.distributed import cleanup
from svg_pyro.train import Trainer

out, prior = Path(sys.argv[1]), sys.argv[2]
model_cfg, train_cfg = build_configs(
    "tiny",
    prior=prior,
    nf=4,
    g_dim=16,
    rnn_size=32,
    batch_size=8,
    steps=4,
    log_every=1,
    checkpoint_every=100,
    device="cpu",
)
trainer = Trainer(model_cfg, train_cfg, out)
trainer.fit(progress=False)
state = {k: v.detach().clone() for k, v in trainer.svg.state_dict().items()}
torch.save(state, out / f"rank{trainer.dist.rank}.pt")
cleanup()
