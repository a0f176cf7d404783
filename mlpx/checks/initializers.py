"""Initializer checks: reproducible from the Generator, the right shape, random, the right spread.

- ``shape``: exactly the requested shape, for non-square shapes in both orientations.
- ``reproducible``: the same Generator state gives the same array, another seed another array.
- ``global_state``: NumPy's (and Python's) global random state is neither used nor changed.
- ``not_constant``: finite, not all equal, rows and columns not copies of each other.
- ``spread``: the sample standard deviation matches the scheme's formula, when the plugin
  declares it through ``std(fan_in, fan_out)`` or its name is a standard scheme (he, glorot or
  xavier, lecun); the sample mean must be near 0 too.
"""

import itertools
import math
import random
import re
from typing import Any, Callable, List, Sequence, Tuple

import numpy as np

from mlpx.checks.base import missing_methods, normalise_name, run_checks
from mlpx.checks.numeric import fmt
from mlpx.checks.report import CheckReport, Problem
from mlpx.checks.tolerances import Tolerances

SHAPES = ((7, 3), (3, 7))  # (fan_in, fan_out), non-square both ways
#: large draws for the spread: fan_in much smaller, then much larger, than fan_out
SPREAD_SHAPES = ((100, 400), (400, 100))

#: standard schemes by name: (pattern on the normalised name, std formula, formula in words)
_SCHEMES: Tuple[Tuple[str, Callable[[int, int], float], str], ...] = (
    (r"(^|_)he(_|$|normal|uniform)|kaiming", lambda fi, fo: math.sqrt(2.0 / fi), "sqrt(2 / fan_in)"),
    (r"glorot|xavier", lambda fi, fo: math.sqrt(2.0 / (fi + fo)), "sqrt(2 / (fan_in + fan_out))"),
    (r"lecun", lambda fi, fo: math.sqrt(1.0 / fi), "sqrt(1 / fan_in)"),
)
#: names that mention a standard scheme but change its spread on purpose
_NOT_STANDARD = re.compile(r"trunc|orthogonal|scaled|sparse|gain")


def check_initializer(
    initializer: Any, report: CheckReport, rng: np.random.Generator, tol: Tolerances, names: Sequence[str]
) -> None:
    if missing_methods(initializer, ("init",)):
        report.problems.append(
            Problem(
                "interface",
                "no init",
                "init(shape, fan_in, fan_out, rng)",
                "An initializer needs init; see register_initializers in mlpx/hookspecs.py.",
            )
        )
        return
    report.passed.append("interface")
    seed = int(rng.integers(2**31))
    numpy_saved, python_saved = np.random.get_state(), random.getstate()
    try:  # a plugin that draws from the global generators must not disturb the caller's
        run_checks(
            report,
            [
                ("shape", lambda: _shape(initializer, seed)),
                ("reproducible", lambda: _reproducible(initializer, seed)),
                ("global_state", lambda: _global_state(initializer, seed)),
                ("not_constant", lambda: _not_constant(initializer, seed)),
            ],
        )
        expected = _expected_stds(initializer, names)
        if expected:
            run_checks(report, [("spread", lambda: _spread(initializer, seed, tol, expected))])
        else:
            report.notes.append(
                "spread not checked: declare std(fan_in, fan_out) on the initializer to have it checked"
            )
    finally:
        np.random.set_state(numpy_saved)
        random.setstate(python_saved)


def _draw(initializer: Any, shape: Tuple[int, int], seed: int) -> np.ndarray:
    return np.asarray(initializer.init(shape, shape[0], shape[1], np.random.default_rng(seed)))


def _shape(initializer: Any, seed: int) -> List[Problem]:
    for shape in SHAPES:
        got = np.shape(_draw(initializer, shape, seed))
        if got != shape:
            hint = " (the transpose: rows are fan_in, columns fan_out)" if got == shape[::-1] else ""
            return [
                Problem(
                    "shape",
                    f"shape {got}{hint}",
                    f"shape {shape}",
                    "init(shape, fan_in, fan_out, rng) must return exactly `shape`; the layer computes "
                    "a @ W with W of shape (fan_in, fan_out).",
                )
            ]
    return []


def _reproducible(initializer: Any, seed: int) -> List[Problem]:
    shape = SHAPES[0]
    first, again = _draw(initializer, shape, seed), _draw(initializer, shape, seed)
    if not np.array_equal(first, again):
        return [
            Problem(
                "reproducible",
                "two draws from Generators with the same seed differ",
                "identical arrays",
                "All randomness must come from the rng argument, so a run's seed fixes its weights. "
                "The draws differ: the initializer uses another source (np.random.default_rng() "
                "without a seed, the time, os.urandom).",
            )
        ]
    if np.array_equal(first, _draw(initializer, shape, seed + 1)):
        return [
            Problem(
                "reproducible",
                "Generators with different seeds give the same array",
                "different arrays for different seeds",
                "The initializer ignores the rng argument (a fixed seed of its own, or no "
                "randomness at all), so every seed starts from the same weights.",
            )
        ]
    return []


def _global_state(initializer: Any, seed: int) -> List[Problem]:
    """Put the global generators in a known state, call init, compare (the caller restores them)."""
    np.random.set_state(np.random.RandomState(seed).get_state())
    random.setstate(random.Random(seed).getstate())
    numpy_before, python_before = np.random.get_state(), random.getstate()
    _draw(initializer, SHAPES[0], seed)
    changed = []
    if not _same_numpy_state(numpy_before, np.random.get_state()):
        changed.append("NumPy's global random state (np.random.*)")
    if python_before != random.getstate():
        changed.append("Python's random module")
    if not changed:
        return []
    return [
        Problem(
            "global_state",
            f"used or reseeded {' and '.join(changed)}",
            "only the rng argument",
            "Global random state makes runs depend on whatever else drew numbers before, and "
            "seeding it changes other code's randomness. Draw from the rng argument: "
            "rng.normal(0, std, size=shape) or rng.uniform(-limit, limit, size=shape).",
        )
    ]


def _same_numpy_state(a: tuple, b: tuple) -> bool:
    return all(
        np.array_equal(x, y) if isinstance(x, np.ndarray) else x == y for x, y in zip(a, b, strict=True)
    )


def _not_constant(initializer: Any, seed: int) -> List[Problem]:
    w = np.asarray(_draw(initializer, SHAPES[0], seed), dtype=np.float64)
    if not np.all(np.isfinite(w)):
        found = "not finite values"
    elif np.ptp(w) == 0:
        found = f"every entry equal to {fmt(float(w.flat[0]))}"
    elif np.all(w == w[:1]):
        found = "every row identical"
    elif np.all(w == w[:, :1]):
        found = "every column identical"
    else:
        return []
    return [
        Problem(
            "not_constant",
            found,
            "distinct random entries",
            "Units that start with equal weights get equal gradients and stay copies of each other "
            "forever (the symmetry is never broken). Draw every entry independently: pass "
            "size=shape to the rng.",
        )
    ]


Formula = Tuple[Callable[[int, int], float], str]


def _expected_stds(initializer: Any, names: Sequence[str]) -> List[Formula]:
    """The declared std, and the formula of the standard scheme the name states, when there are."""
    formulas: List[Formula] = []
    declared = getattr(initializer, "std", None)
    if callable(declared):
        formulas.append(((lambda fi, fo: float(declared(fi, fo))), "its declared std(fan_in, fan_out)"))
    for name in names:
        normalised = normalise_name(name)
        if _NOT_STANDARD.search(normalised):
            break
        scheme = next((s for s in _SCHEMES if re.search(s[0], normalised)), None)
        if scheme is not None:
            formulas.append((scheme[1], f"{scheme[2]}, the formula of the scheme its name '{name}' states"))
            break
    return formulas


def _spread(initializer: Any, seed: int, tol: Tolerances, formulas: List[Formula]) -> List[Problem]:
    problems = []
    for (fan_in, fan_out), (formula, words) in itertools.product(SPREAD_SHAPES, formulas):
        w = np.asarray(_draw(initializer, (fan_in, fan_out), seed), dtype=np.float64)
        expected = formula(fan_in, fan_out)
        std, mean = float(w.std()), float(w.mean())
        if abs(mean) > tol.spread * expected:
            problems.append(
                Problem(
                    "spread",
                    f"mean {fmt(mean)} for fan_in={fan_in}, fan_out={fan_out}",
                    f"|mean| <= {fmt(tol.spread * expected)}",
                    "The weights are not centred on 0 (e.g. rng.uniform(0, limit) instead of "
                    "rng.uniform(-limit, limit)).",
                )
            )
            break
        if abs(std - expected) > tol.spread * expected:
            ratio = std / expected if expected else np.inf
            problems.append(
                Problem(
                    "spread",
                    f"std {fmt(std)} for fan_in={fan_in}, fan_out={fan_out}",
                    f"{fmt(expected)} +- {tol.spread:.0%} ({words})",
                    f"The weights' spread is {fmt(ratio)} times what the scheme prescribes. "
                    + _spread_hint(ratio, fan_in, fan_out),
                )
            )
            break
    return problems


def _spread_hint(ratio: float, fan_in: int, fan_out: int) -> str:
    hints = {
        math.sqrt(2): "A factor sqrt(2): the 2 of He's formula is missing or extra.",
        1 / math.sqrt(2): "A factor 1/sqrt(2): the 2 of He's formula is missing or extra.",
        math.sqrt(3): "A factor sqrt(3): a uniform limit used as a std (the std of U(-l, l) is l / sqrt(3)).",
        1 / math.sqrt(3): "A factor 1/sqrt(3): a std used as a uniform limit (the limit is sqrt(3) * std).",
        math.sqrt(fan_in / fan_out): "fan_out was used where fan_in belongs.",
        math.sqrt(fan_out / fan_in): "fan_in was used where fan_out belongs.",
    }
    for factor, hint in hints.items():
        if abs(ratio - factor) <= 0.05 * factor:
            return hint
    return "Check the formula: which fan, which constant, and sqrt of the variance."
