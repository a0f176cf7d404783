"""Built-in optimizers: ``step(params, grads)`` updates the arrays of ``params`` in place.

``params`` and ``grads`` are dicts with the same keys; state is kept per key, allocated on the
first step in the parameter's dtype, and the gradients are never modified. ``lr`` is a plain
attribute so a learning-rate schedule can set it between steps.

SGD and Momentum also offer ``fused_targets``: their first pass over a parameter,
``target <- alpha * g + beta * target``, is what the BLAS call that makes the gradient ``g``
(a weight matrix's GEMM, a bias's GEMV; see ``mlpx.core.model.MLP.backward``) computes for free,
so the largest matrix is not read and written again just to apply the step.
"""

import math
from dataclasses import dataclass
from typing import Collection, Dict, Tuple

import numpy as np

from mlpx.core.blas import axpy
from mlpx.core.compiled import kernel
from mlpx.hookspecs import hookimpl

Arrays = Dict[str, np.ndarray]
FusedTargets = Dict[str, Tuple[np.ndarray, float, float]]  # key -> (target, alpha, beta)


class SubnormalFlush:
    """Zeroes optimizer state below ``TINY`` every ``EVERY`` steps.

    The momentum of a parameter whose gradient is exactly zero (a dead ReLU unit) decays
    geometrically and sinks into float32 subnormals, on which x86 arithmetic is ~20x slower: a
    default run's epochs slowed from 0.6 s to 0.9 s. 0.9 ** 64 keeps anything above TINY normal
    until the next flush, and values this small move no weight.
    """

    TINY = 1e-30
    EVERY = 64

    def __init__(self) -> None:
        self.steps = 0

    def __call__(self, *states: Arrays) -> None:
        self.steps += 1
        if self.steps % self.EVERY:
            return
        for state in states:
            for array in state.values():
                np.copyto(array, 0, where=np.abs(array) < self.TINY)


def _subtract_scaled(p: np.ndarray, lr: float, x: np.ndarray, scratch: np.ndarray) -> None:
    """p <- p - lr * x in place: one BLAS axpy pass where it pays, else two NumPy passes
    through ``scratch`` (same shape and dtype as ``p``)."""
    if not axpy(-lr, x, p):
        np.multiply(x, lr, out=scratch)
        p -= scratch


def _check_lr(lr: float) -> None:
    if not (lr >= 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be a finite number >= 0, got {lr}")


@dataclass
class SGDConfig:
    lr: float = 0.1


class SGD:
    """p <- p - lr * g."""

    fused_biases = True  # fused_targets serves biases too (see mlpx.core.trainer.fused_params)

    def __init__(self, lr: float = 0.1) -> None:
        _check_lr(lr)
        self.lr = lr
        self._scratch: Arrays = {}

    def fused_targets(self, params: Arrays) -> FusedTargets:
        """The whole step is the GEMM's accumulation: p <- -lr * g + p."""
        return {key: (p, -self.lr, 1.0) for key, p in params.items()}

    def step(self, params: Arrays, grads: Arrays, fused: Collection[str] = ()) -> None:
        """Update ``params``; keys in ``fused`` were already stepped by ``fused_targets``."""
        for key, p in params.items():
            if key in fused:
                continue
            scratch = self._scratch.get(key)
            if scratch is None:
                scratch = self._scratch[key] = np.zeros_like(p)
            _subtract_scaled(p, self.lr, grads[key], scratch)

    compiled_kernel = kernel("sgd", fused_targets, step)  # mlpx.core.compiled's step does their arithmetic


@dataclass
class MomentumConfig:
    lr: float = 0.1
    momentum: float = 0.9


class Momentum:
    """Heavy-ball momentum as PyTorch writes it: v <- mu * v + g; p <- p - lr * v."""

    def __init__(self, lr: float = 0.1, momentum: float = 0.9) -> None:
        _check_lr(lr)
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        self.lr = lr
        self.momentum = momentum
        self._velocity: Arrays = {}
        self._scratch: Arrays = {}
        self._flush = SubnormalFlush()

    fused_biases = True  # fused_targets serves biases too (see mlpx.core.trainer.fused_params)

    def _state(self, key: str, p: np.ndarray) -> np.ndarray:
        v = self._velocity.get(key)
        if v is None:
            v = self._velocity[key] = np.zeros_like(p)
            self._scratch[key] = np.zeros_like(p)  # zeros: unused while axpy serves
        return v

    def fused_targets(self, params: Arrays) -> FusedTargets:
        """The velocity update is the GEMM's accumulation: v <- g + mu * v."""
        return {key: (self._state(key, p), 1.0, self.momentum) for key, p in params.items()}

    def step(self, params: Arrays, grads: Arrays, fused: Collection[str] = ()) -> None:
        """Update ``params``; for keys in ``fused`` the velocity was already updated."""
        for key, p in params.items():
            v = self._state(key, p)
            if key not in fused:
                v *= self.momentum
                v += grads[key]
            self._descend(p, v, grads[key], self._scratch[key])
        self.flush_subnormals()

    def flush_subnormals(self) -> None:
        """Once every ``SubnormalFlush.EVERY`` calls, one per step, zero the velocities' tiny
        entries (also called by ``mlpx.core.compiled``'s step, which updates the velocities in C)."""
        self._flush(self._velocity)

    def _descend(self, p: np.ndarray, v: np.ndarray, g: np.ndarray, scratch: np.ndarray) -> None:
        """p <- p - lr * v."""
        _subtract_scaled(p, self.lr, v, scratch)

    #: mlpx.core.compiled's step does their arithmetic (and calls flush_subnormals)
    compiled_kernel = kernel("momentum", _state, fused_targets, step, _descend)


@dataclass
class AdamConfig:
    lr: float = 0.001
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8


class Adam:
    """Adam (Kingma & Ba, 2015) with bias correction; eps is added to the corrected sqrt(v)."""

    def __init__(
        self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8
    ) -> None:
        _check_lr(lr)
        for label, beta in (("beta1", beta1), ("beta2", beta2)):
            if not 0 <= beta < 1:
                raise ValueError(f"{label} must be in [0, 1), got {beta}")
        if not eps > 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self._m: Arrays = {}
        self._v: Arrays = {}
        self._scratch: Arrays = {}
        self._t: Dict[str, int] = {}
        self._flush = SubnormalFlush()

    def step(self, params: Arrays, grads: Arrays) -> None:
        for key, p in params.items():
            if key not in self._m:
                self._m[key] = np.zeros_like(p)
                self._v[key] = np.zeros_like(p)
                self._scratch[key] = np.empty_like(p)
                self._t[key] = 0
            self._t[key] += 1
            t = self._t[key]
            g, m, v, scratch = grads[key], self._m[key], self._v[key], self._scratch[key]
            m *= self.beta1
            np.multiply(g, 1 - self.beta1, out=scratch)
            m += scratch
            v *= self.beta2
            np.multiply(g, g, out=scratch)
            scratch *= 1 - self.beta2
            v += scratch
            # scratch <- lr / (1 - beta1^t) * m / (sqrt(v / (1 - beta2^t)) + eps)
            np.sqrt(v, out=scratch)
            scratch *= 1 / math.sqrt(1 - self.beta2**t)
            scratch += self.eps
            np.divide(m, scratch, out=scratch)
            scratch *= self.lr / (1 - self.beta1**t)
            p -= scratch
        self._flush(self._m, self._v)


@hookimpl
def register_optimizers(register):
    register("sgd", SGD, SGDConfig)
    register("momentum", Momentum, MomentumConfig)
    register("adam", Adam, AdamConfig)
