"""Example plugin: the Swish activation, z * sigmoid(beta * z), with its hyperparameter ``beta``.

Any ``.py`` file in this folder is loaded as a plugin; use it with
``python -m mlpx activation=swish activation.beta=1.5``.
"""

from dataclasses import dataclass

import numpy as np

import mlpx


@dataclass
class SwishConfig:
    beta: float = 1.0


class Swish:
    """swish(z) = z * s with s = sigmoid(beta * z); d swish / dz = s + beta * z * s * (1 - s)."""

    def __init__(self, beta: float = 1.0) -> None:
        self.beta = beta

    def _sigmoid(self, z: np.ndarray) -> np.ndarray:
        s = np.tanh(0.5 * self.beta * z)  # never overflows, unlike 1 / (1 + exp(-x))
        s += 1
        s *= 0.5
        return s

    def forward(self, z: np.ndarray) -> np.ndarray:
        return z * self._sigmoid(z)

    def backward(self, z: np.ndarray, a: np.ndarray, grad_a: np.ndarray) -> np.ndarray:
        s = self._sigmoid(z)
        return grad_a * (s + self.beta * z * s * (1 - s))


@mlpx.hookimpl
def register_activations(register):
    register("swish", Swish, SwishConfig)
