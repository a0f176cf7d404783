"""Built-in weight initializers; all randomness comes from the Generator they are given.

``init(shape, fan_in, fan_out, rng)`` returns a float64 array of ``shape`` (fan_in, fan_out);
``std(fan_in, fan_out)`` states the scheme's standard deviation so checks can verify it.
"""

import math
from typing import Tuple

import numpy as np

from mlpx.hookspecs import hookimpl


class HeNormal:
    """N(0, 2 / fan_in): keeps the variance of ReLU activations constant across layers."""

    def std(self, fan_in: int, fan_out: int) -> float:
        return math.sqrt(2.0 / fan_in)

    def init(self, shape: Tuple[int, ...], fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
        return rng.normal(0.0, self.std(fan_in, fan_out), size=shape)


class GlorotUniform:
    """U(-l, l) with l = sqrt(6 / (fan_in + fan_out)): balances forward and backward variance."""

    def std(self, fan_in: int, fan_out: int) -> float:
        return math.sqrt(2.0 / (fan_in + fan_out))

    def init(self, shape: Tuple[int, ...], fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, size=shape)


class HeUniform:
    """U(-l, l) with l = sqrt(6 / fan_in): He's variance 2 / fan_in from a uniform draw."""

    def std(self, fan_in: int, fan_out: int) -> float:
        return math.sqrt(2.0 / fan_in)

    def init(self, shape: Tuple[int, ...], fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
        limit = math.sqrt(6.0 / fan_in)
        return rng.uniform(-limit, limit, size=shape)


class GlorotNormal:
    """N(0, 2 / (fan_in + fan_out)): Glorot's variance from a normal draw."""

    def std(self, fan_in: int, fan_out: int) -> float:
        return math.sqrt(2.0 / (fan_in + fan_out))

    def init(self, shape: Tuple[int, ...], fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
        return rng.normal(0.0, self.std(fan_in, fan_out), size=shape)


class LecunNormal:
    """N(0, 1 / fan_in): keeps unit variance through linear and SELU layers."""

    def std(self, fan_in: int, fan_out: int) -> float:
        return math.sqrt(1.0 / fan_in)

    def init(self, shape: Tuple[int, ...], fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
        return rng.normal(0.0, self.std(fan_in, fan_out), size=shape)


@hookimpl
def register_initializers(register):
    register("he_normal", HeNormal)
    register("glorot_uniform", GlorotUniform)
    register("he_uniform", HeUniform)
    register("glorot_normal", GlorotNormal)
    register("lecun_normal", LecunNormal)
