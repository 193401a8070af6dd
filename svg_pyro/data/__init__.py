"""Datasets (knows nothing of the model): Stochastic Moving MNIST, KTH, BAIR and test sets."""

from svg_pyro.data.bair import BAIR, write_bair_testset
from svg_pyro.data.digits import load_digits
from svg_pyro.data.kth import KTH, write_kth_testset
from svg_pyro.data.moving_mnist import StochasticMovingMNIST
from svg_pyro.data.srvp import srvp_testset, write_srvp_testset
from svg_pyro.data.testsets import (
    TestSet,
    load_frames,
    load_testset,
    smmnist_test_sequences,
    to_float,
    write_smmnist_testset,
)

#: Datasets read from files under ``TrainConfig.data_root``: name -> (Dataset class, channels).
VIDEO_DATASETS: dict[str, tuple[type, int]] = {"kth": (KTH, 1), "bair": (BAIR, 3)}

__all__ = [
    "BAIR",
    "KTH",
    "StochasticMovingMNIST",
    "VIDEO_DATASETS",
    "TestSet",
    "load_digits",
    "load_frames",
    "load_testset",
    "smmnist_test_sequences",
    "srvp_testset",
    "to_float",
    "write_bair_testset",
    "write_kth_testset",
    "write_smmnist_testset",
    "write_srvp_testset",
]
