"""Loss checks: is ``grad`` the gradient of ``value``, are the batch conventions kept, is it safe?

- ``interface``: ``value`` is one number, ``grad`` and ``probs`` are shaped like the logits.
- ``gradient``: ``grad`` against central differences of ``value`` in float64; when they disagree,
  the gradient is compared with the usual suspects (cross-entropy, squared error through softmax,
  squared error on the logits, a sum instead of a mean, a flipped sign, only the last row...)
  and the one it matches is named.
- ``batch_mean``: the value of a batch is the mean of its rows' values, and each row's gradient
  in a batch of n is 1/n of its gradient alone.
- ``extreme_logits``: value, gradient and probabilities stay finite, and probabilities sum to 1,
  for logits of +-1e3, confidently wrong rows, and rows of very different scales in one batch,
  in float64 and float32.
- ``no_mutation``: logits and labels are left untouched.
- ``probs``: rows of ``probs`` are probabilities summing to 1.
- ``value_and_grad``: when the loss has this optional fast path (the trainer then uses it), it
  returns what ``value`` and ``grad`` return, leaves its arguments alone, and stays finite.
"""

import functools
from typing import Any, Callable, List, Optional, Tuple

import numpy as np

from mlpx.checks.base import missing_methods, run_checks
from mlpx.checks.diagnose import bug_shape
from mlpx.checks.numeric import compare_gradient, fmt, relative_distance
from mlpx.checks.report import CheckReport, Problem
from mlpx.checks.tolerances import Tolerances, tolerances
from mlpx.core.numerics import log_softmax, softmax

N_SAMPLES, N_CLASSES = 5, 4  # not square, so a transposed gradient cannot pass
#: logits that break naive code: +-1e3, a confidently wrong row, scales from 1e-3 to 1e3
EXTREME_LOGITS = np.array(
    [
        [1e3, -1e3, 0.0, 5.0],  # confidently right (label 0)
        [-1e3, 1e3, 2.0, -2.0],  # confidently wrong (label 0, all mass on 1)
        [1e-3, -2e-3, 0.0, 5e-4],  # tiny scale, in the same batch as +-1e3
        [-1e3, -999.0, -1001.0, -1e3],  # every logit very negative
        [30.0, -20.0, 10.0, 0.0],  # moderate, confidently wrong (label 3)
    ]
)
EXTREME_LABELS = np.array([0, 0, 2, 3, 3])


def check_loss(loss: Any, report: CheckReport, rng: np.random.Generator, tol: Tolerances) -> None:
    missing = missing_methods(loss, ("value", "grad", "probs"))
    if missing:
        report.problems.append(
            Problem(
                "interface",
                f"no {', '.join(missing)}",
                "value(logits, y_onehot), grad(logits, y_onehot), probs(logits)",
                "A loss needs all three methods; see register_losses in mlpx/hookspecs.py.",
            )
        )
        return
    logits = rng.normal(0.0, 1.0, size=(N_SAMPLES, N_CLASSES))  # no probability far below 1e-2
    labels = np.concatenate([rng.permutation(N_CLASSES), rng.integers(0, N_CLASSES, N_SAMPLES - N_CLASSES)])
    y = np.eye(N_CLASSES)[labels]
    interface = _interface(loss, logits, y)
    if interface:
        report.problems.extend(interface)
        return
    report.passed.append("interface")
    run_checks(
        report,
        [
            ("gradient", lambda: _gradient(loss, logits, y, tol)),
            ("batch_mean", lambda: _batch_mean(loss, logits, y, tol)),
            ("extreme_logits", lambda: _extreme_logits(loss)),
            ("no_mutation", lambda: _no_mutation(loss, logits, y)),
            ("probs", lambda: _probs(loss, logits, tol)),
        ],
    )
    if callable(getattr(loss, "value_and_grad", None)):
        run_checks(report, [("value_and_grad", lambda: _value_and_grad(loss, logits, y))])


def _interface(loss: Any, logits: np.ndarray, y: np.ndarray) -> List[Problem]:
    problems = []
    try:
        value = loss.value(logits.copy(), y.copy())
        if np.ndim(value) != 0:
            problems.append(
                Problem(
                    "interface",
                    f"value returned shape {np.shape(value)}",
                    "one number",
                    "value(logits, y_onehot) must return the mean over the batch, a single number: "
                    "the per-row values still need .mean().",
                )
            )
        else:
            float(value)
        for method, result in (
            ("grad", loss.grad(logits.copy(), y.copy())),
            ("probs", loss.probs(logits.copy())),
        ):
            shape = np.shape(result)
            if shape != logits.shape:
                transposed = " (the transpose)" if shape == logits.shape[::-1] else ""
                problems.append(
                    Problem(
                        "interface",
                        f"{method} returned shape {shape}{transposed}",
                        f"shape {logits.shape}",
                        f"{method} must return an array shaped like the logits (n_samples, n_classes).",
                    )
                )
    except Exception as exc:
        problems.append(
            Problem(
                "interface",
                f"{type(exc).__name__}: {exc}",
                "no exception",
                "Calling value, grad or probs on ordinary logits (5 samples, 4 classes) failed.",
            )
        )
    return problems


def _gradient(loss: Any, logits: np.ndarray, y: np.ndarray, tol: Tolerances) -> List[Problem]:
    analytic = np.asarray(loss.grad(logits.copy(), y.copy()), dtype=np.float64)
    comparison = compare_gradient(analytic, lambda z: float(loss.value(z, y.copy())), logits, tol)
    if comparison.ok:
        return []
    value_name = name_value(float(loss.value(logits.copy(), y.copy())), logits, y, tol)
    cause = fingerprint(comparison.analytic, comparison.numeric, logits, y, tol, value_name)
    return [
        Problem(
            "gradient",
            comparison.error,
            tol.gradient,
            f"grad(logits, y) is not the gradient of value(logits, y). {cause} "
            "Measured: the largest |grad - central difference of value| over the largest entry, "
            f"in float64 ({np.count_nonzero(comparison.mismatched)} of {analytic.size} entries off).",
            details=comparison.worst(labels=("grad", "central diff.")),
        )
    ]


#: (description, value per row) of well-known losses, used to name what a value computes
def _known_values(logits: np.ndarray, y: np.ndarray) -> List[Tuple[str, np.ndarray]]:
    p = softmax(logits)
    return [
        ("cross-entropy", -(y * log_softmax(logits)).sum(axis=1)),
        ("squared error through softmax", 0.5 * ((p - y) ** 2).sum(axis=1)),
        ("squared error through softmax", ((p - y) ** 2).sum(axis=1)),
        ("squared error on the logits", 0.5 * ((logits - y) ** 2).sum(axis=1)),
        ("squared error on the logits", ((logits - y) ** 2).sum(axis=1)),
        ("squared error on the logits", ((logits - y) ** 2).mean(axis=1)),
    ]


def name_value(value: float, logits: np.ndarray, y: np.ndarray, tol: Tolerances) -> Optional[str]:
    """The well-known loss whose batch mean equals ``value`` on these logits, if any."""
    for name, per_row in _known_values(logits, y):
        mean = float(per_row.mean())
        if abs(value - mean) <= tol.fingerprint * abs(mean):
            return name
    return None


def _suspects(logits: np.ndarray, y: np.ndarray, numeric: np.ndarray) -> List[Tuple[str, np.ndarray]]:
    """Gradients (of the batch mean) of the classic suspects, with how to say each in words."""
    n = len(logits)
    p = softmax(logits)
    error = p - y
    with np.errstate(divide="ignore"):
        wrt_probs = -y / p / n
    return [
        ("this loss's value", numeric),
        ("cross-entropy", (p * y.sum(axis=1, keepdims=True) - y) / n),
        (
            "squared error through softmax (1/2 ||softmax(z) - y||^2)",
            p * (error - (error * p).sum(axis=1, keepdims=True)) / n,
        ),
        (
            "squared error through softmax with only the diagonal of the softmax Jacobian, "
            "p * (1 - p) * (p - y)",
            p * (1 - p) * error / n,
        ),
        ("squared error on the logits (1/2 ||z - y||^2)", (logits - y) / n),
        ("cross-entropy taken with respect to the probabilities (-y / p), not the logits", wrt_probs),
    ]


def _last_row(g: np.ndarray) -> np.ndarray:
    out = np.zeros_like(g)
    out[-1] = g[-1]
    return out


#: how a suspect's gradient may have been mangled, and how to say it
_TRANSFORMS: List[Tuple[str, Callable[[np.ndarray, int], np.ndarray]]] = [
    ("", lambda g, n: g),
    (" without the 1/batch of the mean (the gradient of the sum over the batch)", lambda g, n: g * n),
    (" divided by the batch size twice", lambda g, n: g / n),
    (" with the sign flipped (descent would climb)", lambda g, n: -g),
    (" with the sign flipped and without the 1/batch", lambda g, n: -g * n),
    (
        " but only for the last row (sample) of the batch, the others zero: a loop over samples "
        "that assigns with `=` where `+=` was meant",
        lambda g, n: _last_row(g),
    ),
    (" for the last row only and without the 1/batch", lambda g, n: _last_row(g) * n),
]


def fingerprint(
    analytic: np.ndarray,
    numeric: np.ndarray,
    logits: np.ndarray,
    y: np.ndarray,
    tol: Tolerances,
    value_name: Optional[str],
) -> str:
    """Name the known mistake ``analytic`` matches, else describe its bug shape."""
    n = len(logits)
    best: Tuple[float, str, str] = (np.inf, "", "")
    for suspect, gradient in _suspects(logits, y, numeric):
        for how, transform in _TRANSFORMS:
            if suspect == "this loss's value" and not how:
                continue  # that is the correct gradient, which the check already rejected
            distance = relative_distance(analytic, transform(gradient, n))
            if distance < best[0]:
                best = (distance, suspect, how)
    distance, suspect, how = best
    value_words = f"this loss's value ({value_name})" if value_name else "this loss's value"
    if distance <= tol.fingerprint:
        if suspect == "this loss's value":
            return f"The gradient is that of {value_words}{how}."
        if value_name and suspect.startswith(value_name):
            return f"The gradient is that of {suspect}{how}."
        return f"The gradient is that of {suspect}{how}, not of {value_words}."
    shape = bug_shape(analytic, numeric, tol, batch=n)
    if shape:
        return f"Compared with the true gradient, {shape}."
    return (
        f"It matches none of the classic mistakes; the value looks like {value_name or 'no well-known loss'}."
    )


def _batch_mean(loss: Any, logits: np.ndarray, y: np.ndarray, tol: Tolerances) -> List[Problem]:
    n = len(logits)
    problems = []
    value = float(loss.value(logits.copy(), y.copy()))
    rows = np.array([float(loss.value(logits[i : i + 1].copy(), y[i : i + 1].copy())) for i in range(n)])
    mean = float(rows.mean())
    if not abs(value - mean) <= tol.recompute * max(abs(mean), abs(value)):
        ratio = value / mean if mean else np.inf
        if abs(ratio - n) <= tol.fingerprint * n:
            why = f"It is {n} times the mean (batch of {n}): the value is a sum over the batch, not the mean."
        else:
            why = f"It is {fmt(ratio)} times the mean: the rows of a batch are not averaged."
        problems.append(
            Problem(
                "batch_mean",
                f"value(batch) = {fmt(value)}, mean of the rows' values = {fmt(mean)}",
                f"equal to within {tol.recompute:g} (relative)",
                "value(logits, y) must be the mean over the batch of each row's loss, so numbers "
                f"compare across batch sizes and the learning rate does not depend on them. {why}",
            )
        )
    grad = np.asarray(loss.grad(logits.copy(), y.copy()), dtype=np.float64)
    alone = np.concatenate(
        [np.asarray(loss.grad(logits[i : i + 1].copy(), y[i : i + 1].copy())) for i in range(n)]
    )
    distance = relative_distance(n * grad, alone)
    if not distance <= tol.recompute:
        k = float(np.vdot(n * grad, alone) / max(np.vdot(alone, alone), 1e-300))
        if abs(k - n) <= tol.fingerprint * n:
            why = "The gradient does not shrink with the batch: the 1/batch factor is missing."
        elif abs(k - 1 / n) <= tol.fingerprint / n:
            why = "The gradient shrinks twice: it is divided by the batch size twice."
        else:
            why = "The rows of a batch change each other's gradient."
        problems.append(
            Problem(
                "batch_mean",
                distance,
                tol.recompute,
                "In a batch of n, each row's gradient must be 1/n of the gradient that row gets alone "
                "(the derivative of a mean). Measured: the largest |n * grad(batch) - grad(row alone)| "
                f"over the largest entry. {why}",
                details="\n".join(
                    ["row  n*grad(batch)[row]  grad(row alone)"]
                    + [f"{i}    {_vector(n * grad[i])}  {_vector(alone[i])}" for i in range(min(n, 3))]
                ),
            )
        )
    return problems


def _vector(values: np.ndarray) -> str:
    return "[" + ", ".join(f"{v: .4g}" for v in values) + "]"


def _extreme_logits(loss: Any) -> List[Problem]:
    found = []
    y = np.eye(N_CLASSES)[EXTREME_LABELS]
    for dtype in (np.float64, np.float32):
        name = np.dtype(dtype).name
        logits, targets = EXTREME_LOGITS.astype(dtype), y.astype(dtype)
        value = float(loss.value(logits.copy(), targets.copy()))
        if not np.isfinite(value):
            found.append(f"value = {value} ({name})")
        grad = np.asarray(loss.grad(logits.copy(), targets.copy()))
        rows = _bad_rows(grad, lambda g: np.all(np.isfinite(g), axis=1))
        if rows:
            found.append(f"grad not finite in rows {rows} ({name})")
        probs = np.asarray(loss.probs(logits.copy()), dtype=np.float64)
        limit = tolerances(dtype).probs_sum
        rows = _bad_rows(probs, functools.partial(_probability_rows, limit=limit))
        if rows:
            found.append(f"probs not finite or not summing to 1 in rows {rows} ({name})")
    if not found:
        return []
    return [
        Problem(
            "extreme_logits",
            "; ".join(found),
            "finite, probs summing to 1",
            "Logits of +-1e3, confidently wrong rows and rows of very different scales in one batch "
            "(rows: 0 confident and right, 1 confident and wrong, 2 tiny, 3 all very negative, 4 "
            "moderate and wrong) must give finite numbers. Usual causes: softmax without "
            "subtracting each row's max (a max over the whole batch is not enough), log of a "
            "probability that underflowed to 0 (use log-softmax, or clip), 0 * log(0) = nan.",
        )
    ]


def _probability_rows(probs: np.ndarray, limit: float) -> np.ndarray:
    """Per row: finite and summing to 1 within ``limit``."""
    return np.all(np.isfinite(probs), axis=1) & (np.abs(probs.sum(axis=1) - 1) <= limit)


def _bad_rows(array: np.ndarray, good: Callable[[np.ndarray], np.ndarray]) -> List[int]:
    if array.shape != EXTREME_LOGITS.shape:
        return list(range(len(EXTREME_LOGITS)))
    return [int(i) for i in np.flatnonzero(~good(array))]


def _no_mutation(loss: Any, logits: np.ndarray, y: np.ndarray) -> List[Problem]:
    changed = []
    for dtype in (np.float64, np.float32):
        for method in ("value", "grad", "probs"):
            z_in, y_in = logits.astype(dtype), y.astype(dtype)
            args = (z_in,) if method == "probs" else (z_in, y_in)
            getattr(loss, method)(*args)
            if not np.array_equal(z_in, logits.astype(dtype)):
                changed.append(f"{method} changed the logits")
            if not np.array_equal(y_in, y.astype(dtype)):
                changed.append(f"{method} changed y_onehot")
        if changed:
            break
    if not changed:
        return []
    return [
        Problem(
            "no_mutation",
            "; ".join(sorted(set(changed))),
            "arguments left as they were",
            "The trainer calls value, then grad, then computes accuracy on the same logits and "
            "labels; an in-place shift such as `logits -= logits.max(...)` or `y *= ...` changes what "
            "the next call sees. Compute into new arrays.",
        )
    ]


def _value_and_grad(loss: Any, logits: np.ndarray, y: np.ndarray) -> List[Problem]:
    found = []
    extreme_y = np.eye(N_CLASSES)[EXTREME_LABELS]
    for dtype in (np.float64, np.float32):
        allowed = tolerances(dtype).recompute
        for label, z, targets in (("ordinary", logits, y), ("extreme", EXTREME_LOGITS, extreme_y)):
            z_in, y_in = z.astype(dtype), targets.astype(dtype)
            value, grad = loss.value_and_grad(z_in, y_in)
            if not (np.array_equal(z_in, z.astype(dtype)) and np.array_equal(y_in, targets.astype(dtype))):
                found.append("it changed its arguments")
            expected_value = float(loss.value(z.astype(dtype), targets.astype(dtype)))
            expected_grad = np.asarray(loss.grad(z.astype(dtype), targets.astype(dtype)))
            if not np.isfinite(float(value)) or not np.all(np.isfinite(grad)):
                found.append(f"not finite on {label} logits ({np.dtype(dtype).name})")
            elif not (
                abs(float(value) - expected_value) <= allowed * max(abs(expected_value), 1.0)
                and relative_distance(grad, expected_grad) <= allowed
            ):
                found.append(f"differs from value and grad on {label} logits ({np.dtype(dtype).name})")
        if found:
            break
    if not found:
        return []
    return [
        Problem(
            "value_and_grad",
            "; ".join(sorted(set(found))),
            "the (value, grad) that value and grad return",
            "The trainer calls value_and_grad instead of value and grad when a loss has it, so "
            "that is what training descends; it must return exactly (value(logits, y), "
            "grad(logits, y)).",
        )
    ]


def _probs(loss: Any, logits: np.ndarray, tol: Tolerances) -> List[Problem]:
    probs = np.asarray(loss.probs(logits.copy()), dtype=np.float64)
    sums = probs.sum(axis=1)
    worst = float(np.max(np.abs(sums - 1)))
    low, high = float(probs.min()), float(probs.max())
    if worst <= tol.probs_sum and low >= -tol.probs_sum and high <= 1 + tol.probs_sum:
        return []
    columns = np.abs(probs.sum(axis=0) - 1).max() <= tol.probs_sum
    hint = " The columns sum to 1: the softmax is over axis 0 instead of axis 1." if columns else ""
    return [
        Problem(
            "probs",
            f"row sums {fmt(float(sums.min()))} to {fmt(float(sums.max()))}, "
            f"entries {fmt(low)} to {fmt(high)}",
            f"rows summing to 1 within {tol.probs_sum:g}, entries in [0, 1]",
            "probs(logits) gives each row's predicted class probabilities (usually softmax over "
            f"axis 1).{hint}",
        )
    ]
