"""Datasets (knows nothing of the model): Stochastic Moving MNIST, KTH, BAIR and test sets."""

from svg_pyro.data.bair import BAIR, write_bair_testset
from svg_pyro.data.digits import load_digits
from svg_pyro.data.kth import KTH, write_kth_testset
from svg_pyro.data.moving_mnist import StochasticMovingMNIST
from svg_pyro.data.srvp import srvp_testset, write_srvp_testset
from svg_pyro.data.testsets import (
    TestSet,
    load_testset,
    smmnist_test_sequences,
    write_smmnist_testset,
)

__all__ = [
    "BAIR",
    "KTH",
    "StochasticMovingMNIST",
    "TestSet",
    "load_digits",
    "load_testset",
    "smmnist_test_sequences",
    "srvp_testset",
    "write_bair_testset",
    "write_kth_testset",
    "write_smmnist_testset",
    "write_srvp_testset",
]
