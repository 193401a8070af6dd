"""Datasets (knows nothing of the model): Stochastic Moving MNIST and stored test sets."""

from svg_pyro.data.digits import load_digits
from svg_pyro.data.moving_mnist import StochasticMovingMNIST
from svg_pyro.data.testsets import TestSet, load_testset, write_smmnist_testset

__all__ = [
    "StochasticMovingMNIST",
    "TestSet",
    "load_digits",
    "load_testset",
    "write_smmnist_testset",
]
