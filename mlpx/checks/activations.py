"""Activation checks: is ``backward`` the vector-Jacobian product of ``forward``, and is it safe?

- ``gradient``: ``backward(z, a, grad_a)`` against central differences of ``<grad_a, forward(z)>``
  in float64, with a random upstream gradient (all ones would hide a missing ``grad_a *``) and
  inputs kept away from 0, where kinks live; another ``forward`` call sits between the forward
  and backward being checked, as in a network, so state saved by ``forward`` is caught.
- ``no_mutation``: neither method modifies its arguments.
- ``dtype``: float32 in gives float32 out (and float64 gives float64), for both methods.
- ``extreme_inputs``: outputs and gradients stay finite for inputs up to +-1e3.
- ``out_path``: when ``forward`` or ``backward`` accepts ``out=`` (the model's fast path), the
  results written that way equal the plain calls', and ``z`` and ``a`` are left untouched.
"""

import inspect
from typing import Any, List, Optional

import numpy as np

from mlpx.checks.base import missing_methods, run_checks
from mlpx.checks.diagnose import bug_shape
from mlpx.checks.numeric import compare_gradient, fmt, numerical_gradient, relative_distance
from mlpx.checks.report import CheckReport, Problem
from mlpx.checks.tolerances import Tolerances, tolerances

SHAPE = (5, 7)  # (n_samples, n_units), not square so a transpose cannot pass
#: pre-activations from about -1e3 to 1e3, and 0 itself
EXTREME = np.array(
    [[-1e3, -700.0, -100.0, -30.0, -1.0, -1e-3, 0.0], [1e-3, 1.0, 30.0, 100.0, 700.0, 1e3, 5.0]]
)


def check_activation(activation: Any, report: CheckReport, rng: np.random.Generator, tol: Tolerances) -> None:
    missing = missing_methods(activation, ("forward", "backward"))
    if missing:
        report.problems.append(
            Problem(
                "interface",
                f"no {', '.join(missing)}",
                "forward(z) and backward(z, a, grad_a)",
                "An activation needs both methods; see register_activations in mlpx/hookspecs.py.",
            )
        )
        return
    report.passed.append("interface")
    z = moderate_inputs(rng, SHAPE)
    upstream = rng.standard_normal(SHAPE)
    run_checks(
        report,
        [
            ("gradient", lambda: _gradient(activation, z, upstream, tol)),
            ("no_mutation", lambda: _no_mutation(activation, z, upstream)),
            ("dtype", lambda: _dtype(activation, z, upstream)),
            ("extreme_inputs", lambda: _extreme_inputs(activation, upstream[: EXTREME.shape[0]])),
        ],
    )
    if accepts_out(activation.forward) or accepts_out(activation.backward):
        run_checks(report, [("out_path", lambda: _out_path(activation, z, upstream))])


def accepts_out(method: Any) -> bool:
    """Whether a method takes ``out=``: the model then uses that fast path (see the hookspec)."""
    try:
        return "out" in inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False


_STATEFUL = (
    "In a network every layer's forward runs before any backward, so state kept on the object "
    "belongs to another layer: compute from the z and a arguments instead."
)


def moderate_inputs(rng: np.random.Generator, shape: tuple) -> np.ndarray:
    """Values with 0.1 <= |z| <= 4 and random signs: both branches of a kink at 0, none on it."""
    return rng.uniform(0.1, 4.0, size=shape) * rng.choice([-1.0, 1.0], size=shape)


def _gradient(activation: Any, z: np.ndarray, upstream: np.ndarray, tol: Tolerances) -> List[Problem]:
    a = np.array(activation.forward(z.copy()), dtype=np.float64)
    try:
        activation.forward(-2.0 * z[:3, :4].copy())  # another layer's forward, as in a network
    except Exception:
        pass  # the decoy only matters if it succeeds; the checks below call forward properly
    try:
        analytic = np.asarray(activation.backward(z.copy(), a.copy(), upstream.copy()))
    except Exception as exc:
        activation.forward(z.copy())
        activation.backward(z.copy(), a.copy(), upstream.copy())  # raises if it is not about state
        return [
            Problem(
                "gradient",
                f"{type(exc).__name__}: {exc}",
                "no exception",
                "backward fails when another forward call (on an array of another shape) comes "
                "between it and its own forward, and works right after it: it uses something "
                f"forward saved on the object. {_STATEFUL}",
            )
        ]
    if analytic.shape != z.shape:
        return [_shape_problem("gradient", "backward", analytic.shape, z.shape)]

    def objective(x: np.ndarray) -> float:
        return float(np.sum(upstream * activation.forward(x)))

    comparison = compare_gradient(analytic, objective, z, tol)
    if comparison.ok:
        return []
    cause = _diagnose(activation, z, a, upstream, comparison.analytic, comparison.numeric, tol)
    mismatched = comparison.mismatched
    return [
        Problem(
            "gradient",
            comparison.error,
            tol.gradient,
            " ".join(
                part
                for part in (
                    "backward(z, a, grad_a) is not the derivative of forward: it should return the "
                    "vector-Jacobian product, grad_a * f'(z) for an elementwise f.",
                    cause,
                    "Measured: the largest |backward - central difference| over the largest entry, "
                    f"in float64; {np.count_nonzero(mismatched)} of {mismatched.size} entries are off.",
                )
                if part
            ),
            details=comparison.worst(labels=("backward", "central diff.")),
        )
    ]


def _diagnose(
    activation: Any,
    z: np.ndarray,
    a: np.ndarray,
    upstream: np.ndarray,
    analytic: np.ndarray,
    numeric: np.ndarray,
    tol: Tolerances,
) -> str:
    """The likeliest cause of a wrong backward, in one or two sentences."""
    fresh = np.asarray(activation.backward(z.copy(), activation.forward(z.copy()), upstream.copy()))
    if fresh.shape == z.shape and relative_distance(fresh, numeric) <= tol.gradient:
        return f"Right only when called straight after forward on the same z. {_STATEFUL}"
    derivative = numerical_gradient(lambda x: float(np.sum(activation.forward(x))), z, tol.fd_steps[0])
    if relative_distance(analytic, derivative) <= tol.fingerprint:
        return "It returns f'(z) without multiplying by grad_a, the upstream gradient."
    if relative_distance(analytic, -derivative) <= tol.fingerprint:
        return "It returns -f'(z): grad_a is not multiplied in and the sign is flipped."
    if np.all(np.isfinite(a)) and relative_distance(a, z) > tol.fingerprint:
        at_output = numerical_gradient(
            lambda x: float(np.sum(upstream * activation.forward(x))), a, tol.fd_steps[0]
        )
        if relative_distance(analytic, at_output) <= tol.fingerprint:
            return "It evaluates the derivative at the output a instead of the input z (f'(a), not f'(z))."
    shape = bug_shape(analytic, numeric, tol)
    sentence = f"The backward result: {shape}." if shape else ""
    wrong = ~np.isclose(analytic, numeric, rtol=0.0, atol=tol.gradient * max(np.max(np.abs(numeric)), 1e-300))
    if wrong.any() and np.all(z[wrong] < 0):
        sentence += f" All {np.count_nonzero(wrong)} wrong entries have z < 0: check the negative branch."
    elif wrong.any() and np.all(z[wrong] > 0):
        sentence += f" All {np.count_nonzero(wrong)} wrong entries have z > 0: check the positive branch."
    return sentence.strip()


def _no_mutation(activation: Any, z: np.ndarray, upstream: np.ndarray) -> List[Problem]:
    problems = []
    for dtype in (np.float64, np.float32):
        z_in, grad_in = z.astype(dtype), upstream.astype(dtype)
        z_copy, grad_copy = z_in.copy(), grad_in.copy()
        a = np.asarray(activation.forward(z_in))
        changed = [] if np.array_equal(z_in, z_copy) else ["forward changed z"]
        z_in = z_copy.copy()
        a_in = np.array(a, copy=True)
        a_copy = a_in.copy()
        activation.backward(z_in, a_in, grad_in)
        for label, array, copy in (("z", z_in, z_copy), ("a", a_in, a_copy), ("grad_a", grad_in, grad_copy)):
            if not np.array_equal(array, copy, equal_nan=True):
                changed.append(f"backward changed {label}")
        if changed:
            problems.append(
                Problem(
                    "no_mutation",
                    f"{'; '.join(changed)} ({np.dtype(dtype).name})",
                    "arguments left as they were",
                    "The network keeps z, a and grad_a for other uses (the next layer's input, the "
                    "stored pre-activation), so an in-place update (`z *= ...`, `grad_a[z < 0] = 0`, "
                    "np.maximum(z, 0, out=z)) silently corrupts them. Compute into a new array.",
                )
            )
            break
    return problems


def _dtype(activation: Any, z: np.ndarray, upstream: np.ndarray) -> List[Problem]:
    found = []
    for dtype in (np.float32, np.float64):
        z_in = z.astype(dtype)
        a = np.asarray(activation.forward(z_in))
        grad = np.asarray(activation.backward(z_in, a, upstream.astype(dtype)))
        for method, result in (("forward", a), ("backward", grad)):
            if result.dtype != dtype:
                found.append(f"{method} gave {result.dtype} for {np.dtype(dtype).name}")
    if not found:
        return []
    return [
        Problem(
            "dtype",
            "; ".join(found),
            "the dtype of z",
            "float32 in must give float32 out: a float64 result doubles memory and time in a float32 "
            "network. Common causes: a float64 constant array such as np.where(z > 0, 1.0, alpha) "
            "or .astype(float); keep the dtype with np.where(z > 0, grad_a, alpha * grad_a) or "
            ".astype(z.dtype).",
        )
    ]


def _out_path(activation: Any, z: np.ndarray, upstream: np.ndarray) -> List[Problem]:
    """The calls the model makes on its buffers, against the plain calls."""
    found = []
    for dtype in (np.float64, np.float32):
        allowed = tolerances(dtype).recompute
        z_in, grad_in = z.astype(dtype), upstream.astype(dtype)
        a = np.asarray(activation.forward(z_in.copy()))
        if accepts_out(activation.forward):
            z_arg, buffer = z_in.copy(), np.full_like(z_in, np.nan)  # nan shows entries left unwritten
            written = np.asarray(activation.forward(z_arg, out=buffer))
            if not relative_distance(written, a) <= allowed:
                found.append(f"forward(z, out=...) differs from forward(z) ({np.dtype(dtype).name})")
            if not np.array_equal(z_arg, z_in):
                found.append("forward(z, out=...) changed z")
        if accepts_out(activation.backward):
            expected = np.asarray(activation.backward(z_in.copy(), a.copy(), grad_in.copy()))
            z_arg, a_arg, grad_arg = z_in.copy(), a.copy(), grad_in.copy()
            written = np.asarray(activation.backward(z_arg, a_arg, grad_arg, out=grad_arg))  # as the model
            if not relative_distance(written, expected) <= allowed:
                found.append(
                    f"backward(z, a, grad_a, out=grad_a) differs from backward(z, a, grad_a) "
                    f"({np.dtype(dtype).name})"
                )
            if not (np.array_equal(z_arg, z_in) and np.array_equal(a_arg, a, equal_nan=True)):
                found.append("backward(..., out=grad_a) changed z or a")
        if found:
            break
    if not found:
        return []
    return [
        Problem(
            "out_path",
            "; ".join(found),
            "the same results as the plain calls",
            "The model passes out= (a preallocated array; for backward it is grad_a itself) when "
            "the methods accept it, so that is the path training takes. Write every entry of the "
            "result into out, return it, and read grad_a before overwriting it.",
        )
    ]


def _extreme_inputs(activation: Any, upstream: np.ndarray) -> List[Problem]:
    found = []
    for dtype in (np.float64, np.float32):
        z = EXTREME.astype(dtype)
        a = np.asarray(activation.forward(z.copy()))
        grad = np.asarray(activation.backward(z.copy(), np.array(a, copy=True), upstream.astype(dtype)))
        for method, result in (("forward", a), ("backward", grad)):
            bad = _first_non_finite(z, result)
            if bad is not None:
                found.append(f"{method}(z={fmt(bad[0])}) = {bad[1]} ({np.dtype(dtype).name})")
    if not found:
        return []
    return [
        Problem(
            "extreme_inputs",
            "; ".join(found),
            "finite for |z| <= 1e3",
            "A deep network can produce pre-activations in the hundreds, and one inf or nan spreads "
            "to every weight. Usual cause: an exp that overflows, as in exp(z) / (1 + exp(z)) or "
            "log(1 + exp(z)); rewrite with exp(-|z|), np.logaddexp, np.log1p or tanh.",
        )
    ]


def _first_non_finite(z: np.ndarray, result: np.ndarray) -> Optional[tuple]:
    if result.shape != z.shape:
        return (float(z.flat[0]), f"an array of shape {result.shape} for z of shape {z.shape}")
    bad = np.argwhere(~np.isfinite(result))
    if len(bad) == 0:
        return None
    index = tuple(bad[0])
    return (float(z[index]), str(result[index]))


def _shape_problem(check: str, method: str, got: tuple, expected: tuple) -> Problem:
    transposed = got == tuple(reversed(expected))
    return Problem(
        check,
        f"{method} returned shape {got}",
        f"shape {expected}",
        f"{method} must return an array shaped like z (n_samples, n_units)"
        + (": this is the transpose." if transposed else "."),
    )
