"""Built-in losses on the output layer's logits; softmax lives inside the losses that need it.

``logits`` and ``y_onehot`` are of shape (n_samples, n_classes). ``value`` is the mean over
the batch and ``grad`` is dL/dlogits of that mean, so it already carries the 1/n_samples.
"""

from dataclasses import dataclass
from typing import Tuple

import numpy as np

from mlpx.core.compiled import kernel
from mlpx.core.numerics import log_softmax, row_max, row_sums, softmax
from mlpx.hookspecs import hookimpl


class CrossEntropy:
    """-sum(y * log softmax(z)) per row, on a stable log-softmax.

    Its gradient is softmax(z) - y (for rows of y that sum to 1): the "activations[-1] - y"
    output delta, right for softmax paired with cross-entropy and for no other pair.
    """

    def value(self, logits: np.ndarray, y_onehot: np.ndarray) -> float:
        per_row = -(y_onehot * log_softmax(logits)).sum(axis=1)
        return float(per_row.mean(dtype=np.float64))

    def grad(self, logits: np.ndarray, y_onehot: np.ndarray) -> np.ndarray:
        return self.value_and_grad(logits, y_onehot)[1]

    def value_and_grad(self, logits: np.ndarray, y_onehot: np.ndarray) -> Tuple[float, np.ndarray]:
        """Both from one softmax: log p = shifted - log(sum exp(shifted)).

        Called once per training step, so it is written for few NumPy calls on small arrays
        (the row sums of a (128, 10) batch cost more in dispatch than in arithmetic).
        """
        n_samples = len(logits)
        shifted = logits - row_max(logits)
        d_logits = np.exp(shifted)
        sums = row_sums(d_logits)
        row_mass = row_sums(y_onehot)  # 1 for one-hot rows
        value = (float(np.vdot(row_mass, np.log(sums))) - float(np.vdot(y_onehot, shifted))) / n_samples
        np.divide(row_mass, sums, out=sums)
        d_logits *= sums
        d_logits -= y_onehot
        d_logits *= 1.0 / n_samples
        return value, d_logits

    def probs(self, logits: np.ndarray) -> np.ndarray:
        return softmax(logits)

    compiled_kernel = kernel("cross_entropy", value, grad, value_and_grad)  # mlpx.core.compiled's step


class MSESoftmax:
    """½‖softmax(z) - y‖² per row: the loss the seed question's backprop really descended.

    With p = softmax(z) and g = p - y, the softmax Jacobian J = diag(p) - p pᵀ is symmetric, so
    dL/dz = J g = p * (g - <g, p>). It vanishes as p saturates, which is why confident mistakes
    cost almost nothing here while cross-entropy punishes them without bound.
    """

    def value(self, logits: np.ndarray, y_onehot: np.ndarray) -> float:
        error = softmax(logits) - y_onehot
        return float(0.5 * (error * error).sum(axis=1).mean(dtype=np.float64))

    def grad(self, logits: np.ndarray, y_onehot: np.ndarray) -> np.ndarray:
        p = softmax(logits)
        g = p - y_onehot
        g -= (g * p).sum(axis=1, keepdims=True)
        g *= p
        g /= len(logits)
        return g

    def probs(self, logits: np.ndarray) -> np.ndarray:
        return softmax(logits)


class MSE:
    """1/2 ||z - y||^2 per row, on the logits themselves: regression onto the one-hot targets.

    Its gradient (z - y) / n_samples never saturates; predictions still use softmax(z).
    """

    def value(self, logits: np.ndarray, y_onehot: np.ndarray) -> float:
        error = logits - y_onehot
        return float(0.5 * (error * error).sum(axis=1).mean(dtype=np.float64))

    def grad(self, logits: np.ndarray, y_onehot: np.ndarray) -> np.ndarray:
        d_logits = logits - y_onehot
        d_logits /= len(logits)
        return d_logits

    def probs(self, logits: np.ndarray) -> np.ndarray:
        return softmax(logits)


@dataclass
class LabelSmoothingConfig:
    smoothing: float = 0.1


class LabelSmoothing:
    """Cross-entropy against smoothed targets (1 - eps) y + eps / n_classes (Szegedy et al., 2016).

    Its gradient is softmax(z) - targets per row; it stops the logits growing without bound on
    examples the network already gets right.
    """

    def __init__(self, smoothing: float = 0.1) -> None:
        if not 0 <= smoothing < 1:
            raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
        self.smoothing = smoothing

    def _targets(self, y_onehot: np.ndarray) -> np.ndarray:
        targets = y_onehot * (1 - self.smoothing)
        targets += self.smoothing / y_onehot.shape[1]
        return targets

    def value(self, logits: np.ndarray, y_onehot: np.ndarray) -> float:
        per_row = -(self._targets(y_onehot) * log_softmax(logits)).sum(axis=1)
        return float(per_row.mean(dtype=np.float64))

    def grad(self, logits: np.ndarray, y_onehot: np.ndarray) -> np.ndarray:
        targets = self._targets(y_onehot)
        d_logits = softmax(logits)
        d_logits *= targets.sum(axis=1, keepdims=True)
        d_logits -= targets
        d_logits /= len(logits)
        return d_logits

    def probs(self, logits: np.ndarray) -> np.ndarray:
        return softmax(logits)


@hookimpl
def register_losses(register):
    register("cross_entropy", CrossEntropy)
    register("mse_softmax", MSESoftmax)
    register("mse", MSE)
    register("label_smoothing", LabelSmoothing, LabelSmoothingConfig)
