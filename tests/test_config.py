import math

import pytest

from svg_pyro.config import (
    PRESETS,
    DataSpec,
    SVGConfig,
    TrainConfig,
    build_configs,
    get_preset,
    moved_training_settings,
)


def test_kl_scale_reproduces_paper_weighting():
    c = SVGConfig(beta=1e-4, obs_sigma=0.5, channels=1)
    assert c.pixels == 4096
    assert c.kl_scale == pytest.approx(1e-4 * 4096 / (2 * 0.25))
    assert SVGConfig().kl_scale == pytest.approx(1e-4 * 4096)  # sigma = 1/sqrt(2): factor P


def test_variant_names():
    assert SVGConfig(prior="learned").variant == "svg-lp"
    assert SVGConfig(prior="fixed").variant == "svg-fp"
    assert SVGConfig(prior="none").variant == "det"


@pytest.mark.parametrize(
    "field,value",
    [
        ("nf", 0),
        ("beta", -1.0),
        ("beta", 0.0),
        ("obs_sigma", 0.0),
        ("skip_source", "nope"),
        ("encoder", "x"),
        ("n_future", -1),
        ("image_size", 32),
    ],
)
def test_invalid_model_settings_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        SVGConfig(**{field: value})


def test_invalid_train_settings():
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="num_digits"):
        TrainConfig(num_digits=3)
    with pytest.raises(ValueError, match="device"):
        TrainConfig(device="tpu")


def test_smmnist_preset_is_the_papers_setting():
    model, train = get_preset("smmnist").build()
    assert (model.z_dim, model.g_dim, model.rnn_size, model.nf) == (10, 128, 256, 64)
    assert (model.prior_layers, model.posterior_layers, model.predictor_layers) == (1, 1, 2)
    assert (model.n_past, model.n_future, model.beta) == (5, 10, 1e-4)
    assert (train.lr, train.batch_size, train.steps, train.seed) == (0.002, 100, 180_000, 1)
    assert (train.adam_beta1, train.adam_beta2) == (0.9, 0.999)


def test_preset_overrides_and_errors():
    model, train = get_preset("tiny").build(z_dim=7, steps=3)
    assert model.z_dim == 7 and train.steps == 3
    with pytest.raises(ValueError, match="unknown setting 'bogus'"):
        get_preset("tiny").build(bogus=1)
    with pytest.raises(ValueError, match="unknown preset"):
        get_preset("nope")
    assert set(PRESETS) >= {"smmnist", "tiny"}


def test_round_trip_dict():
    c = SVGConfig(z_dim=5, prior="fixed")
    assert SVGConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="unknown SVGConfig fields"):
        SVGConfig.from_dict({**c.to_dict(), "extra": 1})
    assert math.isclose(c.seq_len, 15)


def test_free_running_is_a_training_setting_and_older_configs_load():
    """The paper teacher-forces; free-running is a choice of training. A model configuration
    saved when it was a model field loads without it, and says what it held."""
    assert TrainConfig().free_running is False and not hasattr(SVGConfig(), "free_running")
    model, train = get_preset("smmnist-cpu").build(free_running=True)
    assert train.free_running is True and model == get_preset("smmnist-cpu").build()[0]
    older = {**SVGConfig().to_dict(), "free_running": True}
    assert SVGConfig.from_dict(older) == SVGConfig()
    assert moved_training_settings(older) == {"free_running": True}
    assert moved_training_settings(SVGConfig().to_dict()) == {}


def test_the_data_spec_is_the_training_configs_data_fields():
    train = TrainConfig(dataset="kth", data_root="/videos", num_digits=1)
    assert train.data == DataSpec("kth", num_digits=1, data_root="/videos")
    assert train.to_dict()["dataset"] == "kth"  # saved flat, as before
    _, preset = build_configs("tiny", deterministic_motion=True)
    assert preset.data == DataSpec(num_digits=1, deterministic_motion=True)
    with pytest.raises(ValueError, match="num_digits"):
        DataSpec(num_digits=3)


def test_the_data_spec_of_a_saved_flat_training_config():
    old = {"dataset": "smmnist", "num_digits": 1, "mnist_root": None, "batch_size": 100}
    assert DataSpec.from_dict(old) == DataSpec(num_digits=1)
    assert DataSpec.from_dict(None) == DataSpec.from_dict({}) == DataSpec()
    spec = DataSpec.from_dict(TrainConfig(dataset="bair", data_root="/a").to_dict())
    assert spec.with_roots(data_root="/b") == DataSpec("bair", data_root="/b")
    assert spec.with_roots() == spec and hash(spec) == hash(DataSpec("bair", data_root="/a"))
