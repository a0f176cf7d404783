"""Central differences, gradient comparison and the aligned table of the worst entries.

Everything here works in float64 on small arrays; plugins are called through ``quiet()`` so
overflow warnings do not count: checks judge outputs, not warnings.
"""

import contextlib
import warnings
from dataclasses import dataclass
from typing import Callable, Iterator, List, Sequence

import numpy as np

from mlpx.checks.tolerances import Tolerances

_TINY = 1e-300


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence NumPy floating-point warnings and Python warnings raised by plugin code."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def numerical_gradient(f: Callable[[np.ndarray], float], x: np.ndarray, step: float) -> np.ndarray:
    """Central differences of the scalar ``f`` at ``x``, one entry at a time, in float64.

    The step is ``step * max(1, |x_i|)``; ``f`` gets a fresh copy of the input on every call, so
    a plugin that modifies its argument cannot skew the estimate.
    """
    x = np.array(x, dtype=np.float64)
    grad = np.empty_like(x)
    for index in np.ndindex(x.shape):
        h = step * max(1.0, abs(float(x[index])))
        up, down = x.copy(), x.copy()
        up[index] += h
        down[index] -= h
        width = up[index] - down[index]  # the step actually taken, after rounding
        grad[index] = (float(f(up)) - float(f(down))) / width
    return grad


@dataclass
class GradientComparison:
    """An analytic gradient against central differences, entry by entry.

    ``error`` is max |analytic - numerical| over the largest |entry| of either: 0 for a perfect
    match, about 1 when whole entries are wrong, scale-free so one tolerance fits every plugin.
    """

    analytic: np.ndarray
    numeric: np.ndarray
    error: float
    mismatched: np.ndarray  # bool, shape of the gradient

    @property
    def ok(self) -> bool:
        return not self.mismatched.any()

    def worst(self, count: int = 4, labels: Sequence[str] = ("analytic", "numerical")) -> str:
        return worst_entries(self.analytic, self.numeric, count, labels)


def compare_gradient(
    analytic: np.ndarray, f: Callable[[np.ndarray], float], x: np.ndarray, tol: Tolerances
) -> GradientComparison:
    """Compare ``analytic`` with central differences of ``f`` at ``x``.

    The first step of ``tol.fd_steps`` decides; only when it finds mismatches are the other
    steps tried, and each entry is judged by the step that agrees best (a step straddling a
    kink, or one lost in rounding, must not fail a correct plugin).
    """
    analytic = np.asarray(analytic, dtype=np.float64)
    numeric = numerical_gradient(f, x, tol.fd_steps[0])
    result = _compare(analytic, numeric, tol.gradient)
    if result.ok:
        return result
    best = numeric.copy()
    for step in tol.fd_steps[1:]:
        other = numerical_gradient(f, x, step)
        closer = np.abs(analytic - other) < np.abs(analytic - best)
        best[closer] = other[closer]
    rescued = _compare(analytic, best, tol.gradient)
    return rescued if rescued.ok else result


def _compare(analytic: np.ndarray, numeric: np.ndarray, allowed: float) -> GradientComparison:
    with np.errstate(invalid="ignore", over="ignore"):
        difference = np.abs(analytic - numeric)
    difference[~np.isfinite(difference)] = np.inf
    magnitudes = np.concatenate([np.abs(analytic).ravel(), np.abs(numeric).ravel()])
    scale = max(float(magnitudes[np.isfinite(magnitudes)].max(initial=0.0)), _TINY)
    error = float(difference.max(initial=0.0)) / scale
    return GradientComparison(analytic, numeric, error, difference > allowed * scale)


def relative_distance(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| over the largest |entry| of either; inf when shapes differ or values are not finite."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return np.inf
    scale = max(float(np.max(np.abs(a), initial=0.0)), float(np.max(np.abs(b), initial=0.0)))
    if scale == 0.0:
        return 0.0
    return float(np.max(np.abs(a - b), initial=0.0)) / scale


def worst_entries(
    first: np.ndarray, second: np.ndarray, count: int = 4, labels: Sequence[str] = ("analytic", "numerical")
) -> str:
    """The ``count`` entries where ``first`` and ``second`` differ most, as an aligned table."""
    first, second = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        difference = np.abs(first - second)
    difference[~np.isfinite(difference)] = np.inf
    order = np.argsort(-difference, axis=None, kind="stable")[:count]
    rows = [("entry", *labels)]
    for flat in order:
        index = np.unravel_index(flat, first.shape)
        rows.append((str(list(map(int, index))), f"{first[index]: .6g}", f"{second[index]: .6g}"))
    return format_table(rows)


def format_table(rows: List[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def fmt(value: float) -> str:
    """A number for a sentence: 3 significant digits."""
    return f"{value:.3g}"
