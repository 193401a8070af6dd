"""Generation and the skip-connection source."""

import pytest
import torch

from svg_pyro import SVG
from tests.conftest import tiny_config


@pytest.mark.parametrize("prior", ["learned", "fixed", "none"])
def test_generate_shapes_and_range(prior):
    svg = SVG(tiny_config(prior=prior)).eval()
    context = torch.rand(2, 3, 1, 64, 64)
    out = svg.generate(context, n_future=4, n_samples=5)
    assert out.shape == (5, 2, 4, 1, 64, 64)
    assert ((out >= 0) & (out <= 1)).all()
    spread = out.std(0).max()
    if prior == "none":
        assert spread == 0  # deterministic: every sample is the same
    else:
        assert spread > 0


def test_generate_is_one_batched_pass():
    svg = SVG(tiny_config()).eval()
    batch_sizes = []
    # the head runs whether or not the skip halves are shared (svg_pyro.skipshare)
    svg.decoder.head.register_forward_hook(lambda m, i, o: batch_sizes.append(i[0].shape[0]))
    svg.generate(torch.rand(2, 3, 1, 64, 64), n_future=4, n_samples=5)
    assert batch_sizes == [10] * 4  # K*B sequences per call, one call per future frame


def test_generate_edge_cases():
    svg = SVG(tiny_config()).eval()
    assert svg.generate(torch.rand(2, 1, 1, 64, 64), 2, 3).shape == (3, 2, 2, 1, 64, 64)
    assert svg.generate(torch.rand(2, 2, 1, 64, 64), 0, 3).shape == (3, 2, 0, 1, 64, 64)
    with pytest.raises(ValueError, match="n_samples"):
        svg.generate(torch.rand(2, 2, 1, 64, 64), 2, 0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        svg.generate(torch.rand(2, 2, 1, 64, 64) * 3, 2, 1)


def test_generate_reproducible_with_seed():
    svg = SVG(tiny_config()).eval()
    ctx = torch.rand(2, 3, 1, 64, 64)
    torch.manual_seed(0)
    a = svg.generate(ctx, 3, 2)
    torch.manual_seed(0)
    b = svg.generate(ctx, 3, 2)
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize(
    "source,n_past,expected",
    [
        ("last_context", 3, [0, 1, 2, 2, 2]),
        ("original", 3, [0, 1, 1, 1, 1]),
        ("previous", 3, [0, 1, 2, 3, 4]),
        ("original", 1, [0, 0, 0, 0, 0]),
    ],
)
def test_skip_index(source, n_past, expected):
    svg = SVG(tiny_config(skip_source=source, n_past=n_past))
    assert [svg.skip_index(t) for t in range(1, 6)] == expected


def test_first_generated_frame_matches_teacher_forced_prediction():
    """With the same z, step-by-step generation equals the model's teacher-forced mean."""
    svg = SVG(tiny_config(prior="none", n_past=3)).eval()
    frames = torch.rand(2, 4, 1, 64, 64)
    with torch.no_grad():
        teacher = svg.model(frames)  # [B, 3, ...]: predictions of frames 1..3
    generated = svg.generate(frames[:, :3], n_future=1, n_samples=1)[0, :, 0]
    torch.testing.assert_close(generated, teacher[:, 2], rtol=1e-4, atol=1e-5)
