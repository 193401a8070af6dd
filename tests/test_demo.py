from PIL import Image

from svg_pyro.demo import run_demo


def test_demo_writes_gif_grid_and_curves(tmp_path):
    paths = run_demo(tmp_path, steps=3, n_sequences=2, n_samples=2, progress=False)
    gif = Image.open(paths["gif"])
    assert gif.n_frames == 8  # 3 context + 5 future frames of the tiny preset
    assert Image.open(paths["grid"]).size[0] > 64 * 8
    assert Image.open(paths["curves"]).size[0] > 100
    assert paths["checkpoint"].exists()
