"""More built-in optimizers: Nesterov momentum, RMSprop, Adagrad and AdamW.

Same conventions as ``mlpx.builtins.optimizers``: ``step(params, grads)`` updates the arrays of
``params`` in place; state is kept per key, allocated on the first step in the parameter's
dtype, with preallocated scratch buffers; the gradients are never modified; ``lr`` is a plain
attribute a learning-rate schedule may set between steps.
"""

import math
from dataclasses import dataclass
from typing import Dict

import numpy as np

from mlpx.builtins.optimizers import Adam, Momentum, SubnormalFlush
from mlpx.hookspecs import hookimpl

Arrays = Dict[str, np.ndarray]


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _check_lr(lr: float) -> None:
    _require(lr >= 0 and math.isfinite(lr), f"lr must be a finite number >= 0, got {lr}")


@dataclass
class NesterovConfig:
    lr: float = 0.1
    momentum: float = 0.9


class Nesterov(Momentum):
    """Nesterov momentum as PyTorch writes it: v <- mu v + g; p <- p - lr (g + mu v).

    The gradient is taken at p, not at the look-ahead point p - lr mu v; for a constant lr
    this is the same trajectory as Sutskever's form, rewritten so it needs one gradient per step.
    Its step reads the gradient again, so it offers no fused targets.
    """

    fused_targets = None

    def _descend(self, p: np.ndarray, v: np.ndarray, g: np.ndarray, scratch: np.ndarray) -> None:
        """p <- p - lr * (g + mu v), the look-ahead step."""
        np.multiply(v, self.momentum, out=scratch)
        scratch += g
        scratch *= self.lr
        p -= scratch


@dataclass
class RMSpropConfig:
    lr: float = 0.001
    alpha: float = 0.99
    eps: float = 1e-8


class RMSprop:
    """RMSprop (Hinton, 2012): v <- alpha v + (1 - alpha) g^2; p <- p - lr g / (sqrt(v) + eps)."""

    def __init__(self, lr: float = 0.001, alpha: float = 0.99, eps: float = 1e-8) -> None:
        _check_lr(lr)
        _require(0 <= alpha < 1, f"alpha must be in [0, 1), got {alpha}")
        _require(eps > 0, f"eps must be > 0, got {eps}")
        self.lr, self.alpha, self.eps = lr, alpha, eps
        self._square_avg: Arrays = {}
        self._scratch: Arrays = {}
        self._flush = SubnormalFlush()

    def step(self, params: Arrays, grads: Arrays) -> None:
        for key, p in params.items():
            v = self._square_avg.get(key)
            if v is None:
                v = self._square_avg[key] = np.zeros_like(p)
                self._scratch[key] = np.empty_like(p)
            g, scratch = grads[key], self._scratch[key]
            v *= self.alpha
            np.multiply(g, g, out=scratch)
            scratch *= 1 - self.alpha
            v += scratch
            np.sqrt(v, out=scratch)
            scratch += self.eps
            np.divide(g, scratch, out=scratch)
            scratch *= self.lr
            p -= scratch
        self._flush(self._square_avg)


@dataclass
class AdagradConfig:
    lr: float = 0.01
    eps: float = 1e-10
    initial_accumulator_value: float = 0.0


class Adagrad:
    """Adagrad (Duchi et al., 2011): s <- s + g^2; p <- p - lr g / (sqrt(s) + eps).

    Each coordinate's step shrinks with the sum of its past squared gradients.
    """

    def __init__(self, lr: float = 0.01, eps: float = 1e-10, initial_accumulator_value: float = 0.0) -> None:
        _check_lr(lr)
        _require(eps > 0, f"eps must be > 0, got {eps}")
        _require(initial_accumulator_value >= 0, "initial_accumulator_value must be >= 0")
        self.lr, self.eps = lr, eps
        self.initial_accumulator_value = initial_accumulator_value
        self._sum: Arrays = {}
        self._scratch: Arrays = {}

    def step(self, params: Arrays, grads: Arrays) -> None:
        for key, p in params.items():
            s = self._sum.get(key)
            if s is None:
                s = self._sum[key] = np.full_like(p, self.initial_accumulator_value)
                self._scratch[key] = np.empty_like(p)
            g, scratch = grads[key], self._scratch[key]
            np.multiply(g, g, out=scratch)
            s += scratch
            np.sqrt(s, out=scratch)
            scratch += self.eps
            np.divide(g, scratch, out=scratch)
            scratch *= self.lr
            p -= scratch


@dataclass
class AdamWConfig:
    lr: float = 0.001
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.01


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019), as PyTorch writes it:
    p <- p (1 - lr wd), then the bias-corrected Adam step; the decay never enters m or v."""

    def __init__(
        self,
        lr: float = 0.001,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        weight_decay: float = 0.01,
    ) -> None:
        super().__init__(lr, beta1, beta2, eps)
        _require(weight_decay >= 0, f"weight_decay must be >= 0, got {weight_decay}")
        self.weight_decay = weight_decay

    def step(self, params: Arrays, grads: Arrays) -> None:
        for p in params.values():
            p *= 1 - self.lr * self.weight_decay
        super().step(params, grads)


@hookimpl
def register_optimizers(register):
    register("nesterov", Nesterov, NesterovConfig)
    register("rmsprop", RMSprop, RMSpropConfig)
    register("adagrad", Adagrad, AdagradConfig)
    register("adamw", AdamW, AdamWConfig)
