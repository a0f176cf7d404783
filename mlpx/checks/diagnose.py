"""Bug shapes: how a wrong gradient differs from the true one, in words a student can act on.

``bug_shape`` recognises the shapes that recur in hand-written backprop: a flipped sign, a
constant factor (a missing or extra 1/batch, a lost 1/2), a scalar broadcast to every entry,
only the last row of a batch, and entries that are zero where they should not be.
"""

from typing import Optional

import numpy as np

from mlpx.checks.numeric import fmt
from mlpx.checks.tolerances import Tolerances


def bug_shape(
    analytic: np.ndarray, numeric: np.ndarray, tol: Tolerances, batch: Optional[int] = None
) -> Optional[str]:
    """A sentence describing how ``analytic`` departs from ``numeric``, or None if no known shape fits.

    ``batch`` (the number of rows) lets a factor equal to it be named as the 1/batch convention.
    """
    a, n = np.asarray(analytic, dtype=np.float64), np.asarray(numeric, dtype=np.float64)
    if a.shape != n.shape:
        return None
    if not np.all(np.isfinite(a)):
        return f"it contains {np.count_nonzero(~np.isfinite(a))} nan or inf entries"
    if not np.all(np.isfinite(n)):
        return None
    scale_n, scale_a = float(np.max(np.abs(n), initial=0.0)), float(np.max(np.abs(a), initial=0.0))
    if scale_n == 0.0:
        return "it is nonzero although the function does not change at all here"
    if scale_a <= tol.fingerprint * scale_n:
        return "it is zero everywhere: nothing reaches this gradient"
    ratio = _constant_ratio(a, n, tol)
    if ratio is not None and abs(ratio - 1.0) > 10 * tol.fingerprint:
        return _describe_ratio(ratio, batch, tol)
    if np.ptp(a) <= tol.fingerprint * scale_a and np.ptp(n) > tol.fingerprint * scale_n:
        return (
            f"every entry is the same number ({fmt(float(a.flat[0]))}): a single scalar was spread "
            "over the array, e.g. a sum over the wrong axis or over the whole array"
        )
    if a.ndim == 2 and len(a) > 1:
        rest_zero = float(np.max(np.abs(a[:-1]), initial=0.0)) <= tol.fingerprint * scale_a
        last_ratio = _constant_ratio(a[-1], n[-1], tol)
        if rest_zero and last_ratio is not None:
            return (
                "only the last row (sample) of the batch has a gradient, the others are zero: "
                "a loop over samples that assigns with `=` where `+=` was meant"
            )
    zeros = (np.abs(a) <= tol.fingerprint * scale_a) & (np.abs(n) > 1e3 * tol.gradient * scale_n)
    if zeros.any():
        return (
            f"it is zero at {np.count_nonzero(zeros)} of {a.size} entries where the true gradient "
            "is not: a branch or mask drops part of the gradient"
        )
    return None


def _constant_ratio(a: np.ndarray, n: np.ndarray, tol: Tolerances) -> Optional[float]:
    """k when a = k * n to within the fingerprint tolerance (k != 0), else None."""
    denominator = float(np.vdot(n, n))
    if denominator == 0.0:
        return None
    k = float(np.vdot(a, n)) / denominator
    residual = float(np.max(np.abs(a - k * n), initial=0.0))
    if k == 0.0 or residual > tol.fingerprint * float(np.max(np.abs(a), initial=0.0)):
        return None
    return k


def _describe_ratio(k: float, batch: Optional[int], tol: Tolerances) -> str:
    def near(target: float) -> bool:
        return abs(k - target) <= 10 * tol.fingerprint * abs(target)

    if near(-1.0):
        return "it has the wrong sign everywhere: it is minus the true gradient, so descent would climb"
    if batch and batch > 1:
        if near(float(batch)):
            return (
                f"it is {batch} times (the batch size) too large everywhere: the 1/batch of the "
                "mean is missing, so it is the gradient of the sum over the batch"
            )
        if near(-float(batch)):
            return f"it is -{batch} times the true gradient: the sign is flipped and the 1/batch is missing"
        if near(1.0 / batch):
            return f"it is 1/{batch} of the true gradient: it is divided by the batch size twice"
    return (
        f"it is a constant {fmt(k)} times the true gradient everywhere: a constant factor is missing "
        "or extra (a 1/2 or 2 from a square, a 1/batch, a learning rate folded in)"
    )
