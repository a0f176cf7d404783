"""The assembled network: its full backward pass against central differences, layer by layer.

Cheap by design: one random direction per parameter array, so two forward passes each; the
directional derivative <grad, d> from backward must equal (L(p + h d) - L(p - h d)) / 2h. An
array that disagrees is tried again along new directions and steps (a step can straddle a ReLU
kink), and fails only if every try disagrees.
"""

from dataclasses import dataclass, field
from typing import Any, List, Optional

import numpy as np

from mlpx.checks.numeric import format_table, quiet
from mlpx.checks.tolerances import Tolerances, tolerances

#: a layer whose directional derivative is this small a fraction of the largest is judged
#: against the largest: below it, rounding noise of the central difference dominates
_NOISE_FLOOR = 1e-4


@dataclass
class LayerResult:
    """One parameter array: the directional derivative from backward and from central differences."""

    key: str
    analytic: float
    numeric: float
    error: float


@dataclass
class NetworkCheck:
    """The per-array results; ``error`` is the worst relative error, logged as ``gradcheck_rel_err``."""

    layers: List[LayerResult] = field(default_factory=list)
    tolerance: float = 0.0
    n_samples: int = 0
    failure: Optional[str] = None  # the network could not even run forward and backward

    @property
    def error(self) -> float:
        if self.failure is not None:
            return float("inf")
        return max((layer.error for layer in self.layers), default=0.0)

    @property
    def ok(self) -> bool:
        return self.failure is None and self.error <= self.tolerance

    def __str__(self) -> str:
        head = (
            f"network gradient check (float64, {self.n_samples} samples, one random direction per "
            f"array): worst relative error {self.error:.3g}, allowed {self.tolerance:g}"
        )
        if self.failure is not None:
            return f"{head}\n  {self.failure}"
        rows = [("array", "backward", "central diff.", "rel. error", "")]
        for layer in self.layers:
            verdict = "ok" if layer.error <= self.tolerance else "WRONG"
            rows.append(
                (layer.key, f"{layer.analytic: .6e}", f"{layer.numeric: .6e}", f"{layer.error:.2e}", verdict)
            )
        table = format_table(rows)
        return head + "\n" + "\n".join("  " + line for line in table.splitlines())


def check_network(
    model: Any,
    loss: Any,
    x: np.ndarray,
    y_onehot: np.ndarray,
    rng: np.random.Generator,
    tol: Optional[Tolerances] = None,
) -> NetworkCheck:
    """Check ``model.backward`` (a float64 ``mlpx.core.model.MLP``) with ``loss`` on ``x``, ``y_onehot``."""
    tol = tol or tolerances(np.float64)
    result = NetworkCheck(tolerance=tol.network, n_samples=len(x))
    try:
        with quiet():
            _check(model, loss, x, y_onehot, rng, tol, result)
    except Exception as exc:  # a plugin failing inside the network is the finding
        result.failure = f"forward or backward raised {type(exc).__name__}: {exc}"
        result.layers = []
    return result


def _check(model, loss, x, y, rng, tol, result) -> None:
    def objective() -> float:
        return float(loss.value(model.forward(x, keep=False), y))

    logits = model.forward(x, keep=True)
    grads = {key: np.array(g, dtype=np.float64) for key, g in model.backward(loss.grad(logits, y)).items()}
    attempts = []
    for key, param in model.params.items():
        attempts.append([_directional(model, objective, key, param, grads[key], rng, tol.fd_steps[0])])
    floor = _NOISE_FLOOR * max((abs(a[0][0]) for a in attempts), default=0.0)
    for key, tries in zip(model.params, attempts, strict=True):
        if _error(*tries[0], floor) > tol.network:
            param = model.params[key]
            for step in (*tol.fd_steps, *tol.fd_steps[:1]):
                tries.append(_directional(model, objective, key, param, grads[key], rng, step))
        analytic, numeric = min(tries, key=lambda t: _error(*t, floor))
        result.layers.append(LayerResult(key, analytic, numeric, _error(analytic, numeric, floor)))


def _directional(model, objective, key, param, grad, rng, step) -> tuple:
    """(<grad, d>, central difference along d) for a random direction d of ``param``."""
    direction = rng.standard_normal(param.shape)
    h = step * max(1.0, float(np.max(np.abs(param), initial=0.0)))
    saved = param.copy()
    try:
        param += h * direction
        up = objective()
        param[...] = saved - h * direction
        down = objective()
    finally:
        param[...] = saved
    return float(np.vdot(grad, direction)), (up - down) / (2 * h)


def _error(analytic: float, numeric: float, floor: float) -> float:
    scale = max(abs(analytic), abs(numeric), floor, 1e-300)
    return abs(analytic - numeric) / scale if np.isfinite(analytic - numeric) else float("inf")
