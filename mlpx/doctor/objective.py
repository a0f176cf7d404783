"""The stated objective as numbers: its value on probabilities, the variants a wrong gradient may
really follow (another loss, the sum instead of the mean, the last record only), and the L2 term.

Every function takes probabilities P and one-hot Y of shape (n, C) in float64; logs are of
probabilities clipped to [1e-300, 1], so a correct code that clips or uses log-sum-exp agrees.
"""

from typing import Callable, Dict, Iterable, Mapping

import numpy as np

from mlpx.doctor.spec import Objective

_TINY = 1e-300


def per_record(loss: str, probs: np.ndarray, y: np.ndarray, scale: float = 0.5) -> np.ndarray:
    """The loss of each record (n,)."""
    p = np.clip(probs, _TINY, 1.0)
    if loss == "cross_entropy":
        return -(y * np.log(p)).sum(axis=1)
    if loss == "bce":
        q = np.clip(1.0 - probs, _TINY, 1.0)
        return -(y * np.log(p) + (1.0 - y) * np.log(q)).sum(axis=1)
    return scale * ((probs - y) ** 2).sum(axis=1)


def _last_record(loss: str, scale: float) -> Callable[[np.ndarray, np.ndarray], float]:
    return lambda p, y: float(per_record(loss, p[-1:], y[-1:], scale).sum())


def is_weight(name: str, array: np.ndarray) -> bool:
    """A weight matrix (2-D with both sides > 1), as opposed to a bias vector."""
    shape = np.shape(array)
    return len(shape) >= 2 and sum(d > 1 for d in shape) >= 2


class ObjectiveMath:
    """The objective's data term and variants on P, and its L2 penalty on the arrays."""

    def __init__(self, objective: Objective) -> None:
        self.objective = objective

    def data_term(self, probs: np.ndarray, y: np.ndarray) -> float:
        o = self.objective
        values = per_record(o.loss, probs, y, o.scale)
        return float(values.mean() if o.reduction == "mean" else values.sum())

    def variants(self) -> Dict[str, Callable[[np.ndarray, np.ndarray], float]]:
        """Data terms a wrong gradient may follow instead, by name (the stated one is 'stated')."""
        o = self.objective

        def reduce(loss: str, scale: float = 0.5) -> Callable[[np.ndarray, np.ndarray], float]:
            def value(p: np.ndarray, y: np.ndarray) -> float:
                v = per_record(loss, p, y, scale)
                return float(v.mean() if o.reduction == "mean" else v.sum())

            return value

        found: Dict[str, Callable[[np.ndarray, np.ndarray], float]] = {"stated": self.data_term}
        for loss in ("cross_entropy", "bce", "mse"):
            if loss != o.loss:
                found[loss] = reduce(loss, o.scale if loss == "mse" else 0.5)
        for name, loss in [
            ("stated", o.loss),
            *((n, n) for n in ("cross_entropy", "bce", "mse") if n != o.loss),
        ]:
            found[f"{name}_last_record"] = _last_record(loss, o.scale if loss == "mse" else 0.5)
        return found

    def l2_names(self, arrays: Mapping[str, np.ndarray]) -> Iterable[str]:
        l2 = self.objective.l2
        if l2 is None:
            return []
        if l2.params is not None:
            return [n for n in l2.params if n in arrays]
        return [n for n, a in arrays.items() if is_weight(n, a)]

    def l2_value(self, net, arrays: Mapping[str, np.ndarray]) -> float:
        l2 = self.objective.l2
        if l2 is None:
            return 0.0
        coef = l2.coefficient(net)
        return float(
            sum(
                coef * l2.scale * np.sum(np.asarray(arrays[n], np.float64) ** 2)
                for n in self.l2_names(arrays)
            )
        )

    def l2_gradient(self, net, name: str, array: np.ndarray) -> np.ndarray:
        """d(penalty)/d(array) as if ``array`` were penalised: 2 coef scale W."""
        l2 = self.objective.l2
        if l2 is None:
            return np.zeros(np.shape(array))
        return 2.0 * l2.coefficient(net) * l2.scale * np.asarray(array, np.float64)

    def value(self, net, probs: np.ndarray, y: np.ndarray, arrays: Mapping[str, np.ndarray]) -> float:
        return self.data_term(probs, y) + self.l2_value(net, arrays)
