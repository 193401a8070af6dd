"""Write ``tests/reference/before_redesign.pt``: what the code of commit fe4145f (before the
redesign that moved free-running training out of the model) computed, so the tests can show the
redesign keeps every number.

It was run once, against that commit's code (``SVGConfig.free_running`` existed then)::

    PYTHONPATH=<checkout of fe4145f> OMP_NUM_THREADS=1 python tests/reference/make_reference.py

and only runs there. What it records, all on CPU in float32:

- ``generate``: the shipped default model (``smmnist-lp-nf16-prev``) in eval mode, 2 samples of
  6 frames after 5 context frames of one test sequence, ``torch.manual_seed(0)``;
- ``shipped_loss``: the same model in training mode (BatchNorm batch statistics) on a fixed
  batch of 2 sequences of 9 frames: the negative ELBO and each parameter's gradient norm,
  teacher-forced and free-running (``n_past`` 5);
- ``tiny_loss``: a tiny model (``tests.conftest.tiny_config``, ``n_past`` 3, previous-frame
  skips, seeded initialisation) on 2 random sequences of 6 frames: the loss and every gradient,
  teacher-forced and free-running, in training and in eval mode.
"""

import dataclasses
from pathlib import Path

import pyro
import torch

import svg_pyro
from svg_pyro import SVG, SVGConfig
from svg_pyro.data import StochasticMovingMNIST
from svg_pyro.elbo import SVGLoss

OUT = Path(__file__).with_name("before_redesign.pt")
TINY = dict(nf=4, g_dim=8, z_dim=3, rnn_size=16, predictor_layers=2, n_past=3, n_future=3,
            skip_source="previous")  # fmt: skip


def loss_and_grads(svg: SVG, frames: torch.Tensor, seed: int) -> tuple[torch.Tensor, dict]:
    svg.zero_grad()
    pyro.set_rng_seed(seed)
    loss = SVGLoss(svg)(frames)
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in svg.named_parameters() if p.grad is not None}
    return loss.detach(), grads


def with_free_running(svg: SVG, on: bool) -> SVG:
    svg.config = dataclasses.replace(svg.config, free_running=on)
    return svg


def main() -> None:
    torch.set_num_threads(1)
    out: dict = {}
    svg = svg_pyro.load_pretrained().float().eval()
    data = StochasticMovingMNIST(num_digits=2, seq_len=9, split="test", length=2, seed=5)
    frames = torch.stack([data[i]["frames"] for i in range(2)]).contiguous()
    torch.manual_seed(0)
    out["generate"] = svg.generate(frames[:1, :5], n_future=6, n_samples=2)
    out["shipped_loss"] = {}
    for fr in (False, True):
        with_free_running(svg, fr).train()
        loss, grads = loss_and_grads(svg, frames, seed=1)
        norms = {n: g.norm() for n, g in grads.items()}
        out["shipped_loss"]["free_running" if fr else "teacher_forced"] = (loss, norms)
    out["frames"] = frames
    out["tiny_loss"] = {}
    tiny_frames = torch.rand(2, 6, 1, 64, 64, generator=torch.Generator().manual_seed(3))
    for fr in (False, True):
        for mode in ("train", "eval"):
            torch.manual_seed(7)
            tiny = SVG(SVGConfig(**TINY, free_running=fr))
            tiny.train(mode == "train")
            key = f"{'free_running' if fr else 'teacher_forced'}_{mode}"
            out["tiny_loss"][key] = loss_and_grads(tiny, tiny_frames, seed=2)
    out["tiny_frames"] = tiny_frames
    torch.save(out, OUT)
    print(OUT, {k: v[0].item() for k, v in out["tiny_loss"].items()})


if __name__ == "__main__":
    main()
