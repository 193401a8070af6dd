"""Configuration: the model (:class:`SVGConfig`), training (:class:`TrainConfig`) and presets.

Imports nothing of ours, so every other module may import it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

SKIP_SOURCES = ("last_context", "original", "previous")
RNNS = ("fc", "conv")
ENCODERS = ("dcgan", "vgg")
ADAM_EPS_UNITS = ("paper", "loss")  # what Adam's eps is compared with; see TrainConfig
PRECISIONS = ("fp32", "bf16")  # bf16: autocast around the loss; distribution parameters stay fp32
HELDOUT_BN = ("auto", "running", "rollout")  # BatchNorm statistics of the held-out scores


@dataclass
class SVGConfig:
    """Everything that defines the networks and the objective.

    ``prior`` names a registered prior (``"learned"`` for SVG-LP, ``"fixed"`` for SVG-FP) or
    ``"none"`` for the deterministic model. ``beta`` is in the paper's units: the objective is
    ``sum_t [mean-pixel MSE + beta * KL]``. ``obs_sigma`` is the standard deviation of the
    Normal likelihood of every pixel; the model scales the KL by ``beta * P / (2 obs_sigma^2)``
    (P = channels * 64 * 64) so that any ``obs_sigma`` gives the paper's weighting.
    ``skip_source`` picks the frame whose encoder feature maps feed the decoder's skips:
    ``"last_context"`` (the paper: the last ground-truth frame), ``"original"`` (the original
    code's off-by-one: the second-to-last context frame) or ``"previous"`` (the frame before
    every predicted frame, the original's ``--last_frame_skip``; its encoder then sees its own
    generated frames, and in eval mode with the trained BatchNorm statistics its SM-MNIST
    forecasts fade to black: re-estimate them on its forecasts, :mod:`svg_pyro.rollout_bn`).
    ``rnn="conv"`` swaps the fully connected LSTMs for ConvLSTMs over ``feature_size`` x
    ``feature_size`` encoder maps (DCGAN only): ``g_dim`` and ``z_dim`` are then channels per map
    location, ``rnn_size`` the ConvLSTMs' hidden channels, and ``z_t`` is a ``z_dim x s x s`` map.
    How the model is trained (teacher-forced or free-running frames, ...) is not part of it:
    see :class:`TrainConfig`.
    """

    prior: str = "learned"
    encoder: str = "dcgan"
    channels: int = 1
    image_size: int = 64
    nf: int = 64
    g_dim: int = 128
    z_dim: int = 10
    rnn_size: int = 256
    predictor_layers: int = 2
    posterior_layers: int = 1
    prior_layers: int = 1
    n_past: int = 5
    n_future: int = 10
    beta: float = 1e-4
    obs_sigma: float = 1.0 / math.sqrt(2.0)
    skip_source: str = "last_context"
    rnn: str = "fc"
    feature_size: int = 8

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first field that is out of range."""
        positive = ("channels", "nf", "g_dim", "rnn_size", "predictor_layers", "n_past")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise ValueError(f"SVGConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.prior != "none":
            for name in ("z_dim", "posterior_layers"):
                if int(getattr(self, name)) < 1:
                    raise ValueError(f"SVGConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.n_future < 0:
            raise ValueError(f"SVGConfig.n_future must be >= 0, got {self.n_future}")
        if self.beta <= 0:  # Pyro's poutine.scale needs a positive scale
            raise ValueError(
                f"SVGConfig.beta must be > 0, got {self.beta} (use prior='none' for no latent)"
            )
        if self.obs_sigma <= 0:
            raise ValueError(f"SVGConfig.obs_sigma must be > 0, got {self.obs_sigma}")
        if self.skip_source not in SKIP_SOURCES:
            raise ValueError(
                f"SVGConfig.skip_source must be one of {SKIP_SOURCES}, got {self.skip_source!r}"
            )
        if self.encoder not in ENCODERS:
            raise ValueError(f"SVGConfig.encoder must be one of {ENCODERS}, got {self.encoder!r}")
        if self.rnn not in RNNS:
            raise ValueError(f"SVGConfig.rnn must be one of {RNNS}, got {self.rnn!r}")
        if self.rnn == "conv":
            if self.encoder != "dcgan":
                raise ValueError("SVGConfig.rnn='conv' needs encoder='dcgan'")
            if self.feature_size not in (4, 8):
                raise ValueError(f"SVGConfig.feature_size must be 4 or 8, got {self.feature_size}")
        if self.image_size != 64:
            raise ValueError(f"only 64x64 frames are supported, got image_size={self.image_size}")

    @property
    def seq_len(self) -> int:
        """Frames in a training sequence: ``n_past + n_future``."""
        return self.n_past + self.n_future

    @property
    def pixels(self) -> int:
        """P = C * H * W, the number of values in one frame."""
        return self.channels * self.image_size * self.image_size

    @property
    def latent_shape(self) -> tuple[int, ...]:
        """Shape of one ``z_t``: ``(z_dim,)``, or ``(z_dim, s, s)`` maps when ``rnn="conv"``."""
        if self.rnn == "conv":
            return (self.z_dim, self.feature_size, self.feature_size)
        return (self.z_dim,)

    @property
    def kl_scale(self) -> float:
        """The factor on the KL that reproduces the paper's beta: ``beta * P / (2 sigma^2)``."""
        return self.beta * self.pixels / (2.0 * self.obs_sigma**2)

    @property
    def variant(self) -> str:
        """``svg-lp``, ``svg-fp``, ``det`` or ``svg-<prior>`` for a user-registered prior."""
        return {"learned": "svg-lp", "fixed": "svg-fp", "none": "det"}.get(
            self.prior, f"svg-{self.prior}"
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SVGConfig:
        """The configuration saved as ``d`` (:meth:`to_dict`); the training settings that older
        files kept here (``MOVED_TO_TRAINING``) are left out: :func:`moved_training_settings`
        reads them."""
        d = {k: v for k, v in d.items() if k not in MOVED_TO_TRAINING}
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown SVGConfig fields: {sorted(unknown)}")
        return cls(**d)


#: Settings that older checkpoints kept in the model configuration and now belong to training.
MOVED_TO_TRAINING = ("free_running",)


def moved_training_settings(model_dict: dict[str, Any]) -> dict[str, Any]:
    """The training settings (``MOVED_TO_TRAINING``) that a saved model configuration of an older
    checkpoint holds, to be given to :class:`TrainConfig`; ``{}`` for a current one."""
    return {k: model_dict[k] for k in MOVED_TO_TRAINING if k in model_dict}


@dataclass(frozen=True)
class DataSpec:
    """Which sequences a model learns from and is scored on: the dataset (``"smmnist"``,
    ``"kth"`` or ``"bair"``), Stochastic Moving MNIST's digits per frame and motion
    (``deterministic_motion``: bounces keep the angle), and where the files are (``mnist_root``:
    the full MNIST IDX files, else the embedded digits; ``data_root``: KTH's or BAIR's files).

    A run's is :attr:`TrainConfig.data`; a checkpoint's, :meth:`from_dict` of its
    ``train_config``. :func:`svg_pyro.data.dataset_frames` draws its sequences
    (``dataset_frames(spec, split, n, seed, length)``: uint8 ``[n, length, C, 64, 64]``).
    Frozen, hence hashable: the drawn frames are cached by it.
    """

    dataset: str = "smmnist"
    num_digits: int = 2
    deterministic_motion: bool = False
    mnist_root: str | None = None
    data_root: str | None = None

    def __post_init__(self) -> None:
        if self.num_digits not in (1, 2):
            raise ValueError(f"TrainConfig.num_digits must be 1 or 2, got {self.num_digits}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> DataSpec:
        """The data of a saved training configuration (a checkpoint's ``train_config``, whose
        data fields are flat: ``dataset``, ``num_digits``, ...; other keys are ignored, and
        missing or ``None`` ones take the defaults)."""
        d = d or {}
        return cls(**{f.name: d[f.name] for f in fields(cls) if d.get(f.name) is not None})

    def with_roots(self, mnist_root: str | None = None, data_root: str | None = None) -> DataSpec:
        """The same data read from other folders (only the roots given change)."""
        roots = {"mnist_root": mnist_root, "data_root": data_root}
        return dataclasses.replace(self, **{k: v for k, v in roots.items() if v})


#: The fields of :class:`TrainConfig` that make up its :class:`DataSpec` (kept flat in the
#: training configuration: the saved files and the ``--dataset`` ... flags stay as they are).
DATA_FIELDS = tuple(f.name for f in fields(DataSpec))


@dataclass
class TrainConfig:
    """How to train: optimiser, batch, schedule, data, logging and speed.

    The data fields (``dataset``, ``num_digits``, ``deterministic_motion``, ``mnist_root``,
    ``data_root``) are :attr:`data`, a :class:`DataSpec`.

    Adam's ``adam_eps`` is in the units of ``adam_eps_units``: ``"paper"`` (default) compares
    it with gradients of the paper's objective (batch-mean ``sum_t [MSE + beta * KL]``), as the
    original release's Adam does. The loss we backpropagate is that objective times
    ``batch_size * P / (2 obs_sigma^2)`` (409,600 at batch 100), so the optimiser gets
    ``eps`` times that factor, and every update equals the original's. ``"loss"`` applies
    ``adam_eps`` to our loss's gradients as they are (this project's behaviour before 0.2),
    which makes eps 409,600 times smaller relative to the gradients and so enlarges the updates
    of the networks with tiny gradients (prior and posterior).

    Held-out evaluation during training: every ``eval_every`` steps (0: never) the trainer scores
    ``eval_sequences`` fixed test-split sequences (drawn with ``eval_seed``, the same for every run)
    with best-of-``eval_samples`` SSIM / PSNR under the dataset's protocol, the test ELBO and KL,
    writes a preview and keeps ``best.pt`` (see :mod:`svg_pyro.heldout`). ``heldout_bn`` says
    which BatchNorm statistics it scores with: ``"running"`` (the trained ones), ``"rollout"``
    (re-estimated on the model's own forecasts, :mod:`svg_pyro.rollout_bn`, on a copy) or
    ``"auto"``: rollout for a model with ``skip_source="previous"``, running otherwise.

    ``free_running=True`` trains the frames after the first ``n_past`` of each training sequence
    as the model forecasts them: each one's decoded mean is encoded and fed back (and, with
    ``skip_source="previous"``, gives the next skips) instead of the true frame, and the true
    frame is observed there; the latents are still drawn from the posterior on the true frames
    (:class:`svg_pyro.elbo.SVGLoss`). The paper teacher-forces every frame (``False``). It costs a
    step through time per predicted frame. The model itself is the same either way.

    ``particles`` K > 1 estimates the ELBO with K latent draws per sequence, vectorized (one
    batched pass over K x batch sequences; the logged loss stays per sequence, averaged over the
    particles).

    ``lr_warmup`` W > 0 raises the learning rate linearly from ``lr / W`` to ``lr`` over the
    run's first W steps (see :func:`svg_pyro.train.warmup_lr`); meant for ``--init-from``, whose
    fresh Adam otherwise moves every weight by about ``lr`` in its first updates.

    ``ema`` d > 0 keeps an exponential moving average of the weights (and BatchNorm statistics)
    beside them, ``avg <- d * avg + (1 - d) * weights`` after every step: the held-out
    evaluation scores it, ``best.pt`` is kept by its score, and :func:`svg_pyro.checkpoint.
    load_model`, ``export-weights`` and ``--init-from`` read it, where the weights of one step
    would carry that step's noise. 0 (the paper's) is off.

    Speed settings: ``precision`` ``"bf16"`` runs the networks under bf16 autocast (the
    distributions' parameters and the loss stay fp32); ``compile`` applies ``torch.compile`` to
    the encoder and decoder; ``channels_last`` stores conv weights NHWC.
    """

    dataset: str = "smmnist"
    num_digits: int = 2
    deterministic_motion: bool = False
    mnist_root: str | None = None
    data_root: str | None = None
    batch_size: int = 100
    particles: int = 1
    free_running: bool = False
    steps: int = 180_000
    lr: float = 0.002
    lr_warmup: int = 0
    ema: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_eps: float = 1e-8
    adam_eps_units: str = "paper"
    seed: int = 1
    log_every: int = 50
    checkpoint_every: int = 1000
    max_bad_steps: int = 20
    eval_every: int = 0
    eval_sequences: int = 32
    eval_samples: int = 10
    eval_seed: int = 0
    heldout_bn: str = "auto"
    num_workers: int = 0
    device: str = "auto"
    precision: str = "fp32"
    compile: bool = False
    channels_last: bool = False

    def __post_init__(self) -> None:
        for name in ("batch_size", "particles", "log_every", "checkpoint_every", "max_bad_steps"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.steps < 0:
            raise ValueError(f"TrainConfig.steps must be >= 0, got {self.steps}")
        if self.eval_every < 0:
            raise ValueError(f"TrainConfig.eval_every must be >= 0 (0: off), got {self.eval_every}")
        for name in ("eval_sequences", "eval_samples"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"TrainConfig.lr must be > 0, got {self.lr}")
        if self.lr_warmup < 0:
            raise ValueError(f"TrainConfig.lr_warmup must be >= 0 (0: off), got {self.lr_warmup}")
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f"TrainConfig.ema must be in [0, 1) (0: off), got {self.ema}")
        if self.heldout_bn not in HELDOUT_BN:
            raise ValueError(
                f"TrainConfig.heldout_bn must be one of {HELDOUT_BN}, got {self.heldout_bn!r}"
            )
        _ = self.data  # DataSpec checks the data fields
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"TrainConfig.device must be auto, cpu or cuda, got {self.device!r}")
        if self.adam_eps < 0:
            raise ValueError(f"TrainConfig.adam_eps must be >= 0, got {self.adam_eps}")
        if self.adam_eps_units not in ADAM_EPS_UNITS:
            raise ValueError(
                f"TrainConfig.adam_eps_units must be one of {ADAM_EPS_UNITS}, "
                f"got {self.adam_eps_units!r}"
            )
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"TrainConfig.precision must be one of {PRECISIONS}, got {self.precision!r}"
            )

    @property
    def data(self) -> DataSpec:
        """The data of this run (its data fields as a :class:`DataSpec`)."""
        return DataSpec(**{name: getattr(self, name) for name in DATA_FIELDS})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown TrainConfig fields: {sorted(unknown)}")
        return cls(**d)


# (n_past, n_future) that `evaluate` and `sample` use by default, per training dataset.
EVAL_PROTOCOLS: dict[str, tuple[int, int]] = {"smmnist": (5, 20), "kth": (10, 30), "bair": (2, 28)}


def eval_protocol(
    model_config: SVGConfig,
    dataset: str | None,
    n_past: int | None = None,
    n_future: int | None = None,
) -> tuple[int, int]:
    """``(n_past, n_future)`` of scores and samples: the given values, else the evaluation
    protocol of the training ``dataset`` (``EVAL_PROTOCOLS``), else (a dataset without one, or
    none recorded) the model's training lengths. ``ValueError`` unless both are >= 1."""
    default = EVAL_PROTOCOLS.get(dataset or "", (model_config.n_past, model_config.n_future))
    p = default[0] if n_past is None else int(n_past)
    f = default[1] if n_future is None else int(n_future)
    if p < 1 or f < 1:
        raise ValueError(f"need n_past >= 1 and n_future >= 1, got {p}, {f}")
    return p, f


@dataclass
class Preset:
    """A named pair of model and training settings."""

    description: str
    model: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    #: A setting sized for a GPU (the paper's batches and steps): ``svg-pyro train`` asks before
    #: running it on a CPU, where it would take weeks.
    gpu: bool = False

    def build(self, **overrides: Any) -> tuple[SVGConfig, TrainConfig]:
        """Return the configs with ``overrides`` (field name -> value) applied to either."""
        model, train = dict(self.model), dict(self.train)
        model_fields = {f.name for f in fields(SVGConfig)}
        train_fields = {f.name for f in fields(TrainConfig)}
        for key, value in overrides.items():
            if key in model_fields:
                model[key] = value
            elif key in train_fields:
                train[key] = value
            else:
                raise ValueError(f"unknown setting {key!r}")
        return SVGConfig(**model), TrainConfig(**train)


#: The presets by name (``svg-pyro train --preset NAME``; :func:`get_preset`, :func:`build_configs`
#: read them).
PRESETS: dict[str, Preset] = {
    "smmnist": Preset(
        "The paper's Stochastic Moving MNIST setting: DCGAN-64, z=10, g=128, rnn=256, "
        "beta=1e-4, 5 context + 10 future frames, Adam lr 0.002, batch 100, 180k steps.",
        model=dict(prior="learned", channels=1, nf=64, g_dim=128, z_dim=10, rnn_size=256,
                   predictor_layers=2, posterior_layers=1, prior_layers=1, n_past=5,
                   n_future=10, beta=1e-4),
        train=dict(dataset="smmnist", num_digits=2, batch_size=100, steps=180_000, lr=0.002,
                   seed=1, log_every=50, checkpoint_every=1000, eval_every=2000),
        gpu=True,
    ),
    "smmnist-conv": Preset(
        "The SM-MNIST setting with ConvLSTMs: DCGAN-64 encoder to 8x8 maps of g=64 channels, "
        "a z map of 4 x 8 x 8, ConvLSTMs of 64 hidden channels (layers 1/1/2), beta=1e-4, "
        "5 context + 10 future frames, Adam lr 0.002, batch 100, 180k steps.",
        model=dict(prior="learned", rnn="conv", feature_size=8, channels=1, nf=64, g_dim=64,
                   z_dim=4, rnn_size=64, predictor_layers=2, posterior_layers=1, prior_layers=1,
                   n_past=5, n_future=10, beta=1e-4),
        train=dict(dataset="smmnist", num_digits=2, batch_size=100, steps=180_000, lr=0.002,
                   seed=1, log_every=50, checkpoint_every=1000, eval_every=2000),
        gpu=True,
    ),
    "smmnist-cpu": Preset(
        "SM-MNIST on a CPU (the recipe measured in docs/RESULTS.md): the paper's model at "
        "reduced widths, DCGAN-64 nf=8, z=8, g=64, rnn=128 (layers 1/1/2), beta=1e-4, 5 context "
        "+ 10 future frames, Adam lr 0.002 (eps in the paper's units), batch 32, fp32, "
        "channels_last, 100k steps.",
        model=dict(prior="learned", channels=1, nf=8, g_dim=64, z_dim=8, rnn_size=128,
                   predictor_layers=2, posterior_layers=1, prior_layers=1, n_past=5,
                   n_future=10, beta=1e-4),
        train=dict(dataset="smmnist", num_digits=2, batch_size=32, steps=100_000, lr=0.002,
                   seed=1, log_every=20, checkpoint_every=100, eval_every=2000,
                   channels_last=True),
    ),
    "kth": Preset(
        "The original release's KTH 64x64 setting: VGG-64, z=24, g=128, rnn=256, beta=1e-6, "
        "10 context + 10 future frames, 1 channel, Adam lr 0.0008, batch 100, 180k steps. "
        "Needs --data-root (the .avi files).",
        model=dict(prior="learned", encoder="vgg", channels=1, nf=64, g_dim=128, z_dim=24,
                   rnn_size=256, predictor_layers=2, posterior_layers=1, prior_layers=1,
                   n_past=10, n_future=10, beta=1e-6),
        train=dict(dataset="kth", batch_size=100, steps=180_000, lr=0.0008, seed=1,
                   log_every=50, checkpoint_every=1000, eval_every=2000),
        gpu=True,
    ),
    "bair": Preset(
        "The paper's BAIR robot pushing setting: VGG-64, z=64, g=128, rnn=256, beta=1e-4, "
        "2 context + 10 future frames, 3 channels, Adam lr 0.002, batch 100, 180k steps. "
        "Needs --data-root (softmotion30_44k or processed_data).",
        model=dict(prior="learned", encoder="vgg", channels=3, nf=64, g_dim=128, z_dim=64,
                   rnn_size=256, predictor_layers=2, posterior_layers=1, prior_layers=1,
                   n_past=2, n_future=10, beta=1e-4),
        train=dict(dataset="bair", batch_size=100, steps=180_000, lr=0.002, seed=1,
                   log_every=50, checkpoint_every=1000, eval_every=2000),
        gpu=True,
    ),
    "tiny": Preset(
        "A small SM-MNIST model for CPU tests and the demo: nf=8, g=32, z=4, rnn=64, "
        "3 context + 5 future frames, batch 16, 1 digit.",
        model=dict(prior="learned", channels=1, nf=8, g_dim=32, z_dim=4, rnn_size=64,
                   predictor_layers=1, posterior_layers=1, prior_layers=1, n_past=3,
                   n_future=5, beta=1e-4),
        train=dict(dataset="smmnist", num_digits=1, batch_size=16, steps=300, lr=0.002,
                   seed=1, log_every=10, checkpoint_every=100, eval_every=1000),
    ),
}  # fmt: skip


def get_preset(name: str) -> Preset:
    """Look a preset up by name; ``ValueError`` lists the known ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}") from None


def build_configs(preset: str, **overrides: Any) -> tuple[SVGConfig, TrainConfig]:
    """Configs of a named preset with field overrides (``None`` values are ignored)."""
    return get_preset(preset).build(**{k: v for k, v in overrides.items() if v is not None})
