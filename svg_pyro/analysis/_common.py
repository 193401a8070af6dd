"""What the ArviZ export and the collision study share: the BatchNorm mode they run in, and the
refusal of the deterministic model (it has no latent ``z`` to analyse)."""

from __future__ import annotations

import contextlib

from svg_pyro.svg import SVG, sampling_mode


def eval_context(svg: SVG, eval_mode: bool) -> contextlib.AbstractContextManager[SVG]:
    """BatchNorm with running statistics inside the block (:func:`svg_pyro.svg.sampling_mode`),
    or, with ``eval_mode=False``, the module in whatever mode it is in."""
    return sampling_mode(svg) if eval_mode else contextlib.nullcontext(svg)


def require_latent(svg: SVG) -> None:
    if svg.prior is None:
        raise ValueError(
            "the deterministic model (prior='none') has no latent z: nothing to analyse"
        )
