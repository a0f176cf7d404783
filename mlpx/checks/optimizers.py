"""Optimizer checks, on a factory: ``factory(**hyperparameters)`` builds a fresh optimizer per check.

- ``interface``: the optimizer has a number ``lr`` and a ``step(params, grads)`` method.
- ``descends``: on a random convex quadratic per parameter, 100 steps reduce every parameter's
  loss (to 0.9 of its start or less), at the configured lr or at 0.1, 0.01 or 0.001.
- ``lr_zero``: with ``lr = 0`` set on the object, steps change nothing.
- ``in_place``: the caller's arrays are updated in place and keep their dtype.
- ``grads_untouched``: the gradients are not modified.
- ``separate_state``: state is kept per key: a parameter whose gradient is zero does not move
  because another one is being optimised, and every trajectory equals a solo run's.
- ``reference``: when the name states a standard algorithm (SGD, momentum, Nesterov, Adam, AdamW,
  RMSprop, Adagrad), the trajectory on a fixed gradient sequence matches an independent
  reference implementation of one of its standard variants, with the plugin's hyperparameters
  and again with different ones (an ignored argument is caught).
- ``fused``: when the optimizer offers ``fused_targets`` (its first pass over each parameter,
  done by the BLAS call that computes the gradient), stepping through them follows the same
  trajectory as ``step(params, grads)``; the gradients of fused keys are then not read.
"""

import inspect
import itertools
import numbers
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from mlpx.checks.base import run_checks
from mlpx.checks.numeric import fmt
from mlpx.checks.references import Family, identify, nonstandard_switches
from mlpx.checks.report import CheckReport, Problem
from mlpx.checks.tolerances import Tolerances
from mlpx.core.trainer import fused_params, fused_targets_of

Arrays = Dict[str, np.ndarray]
SHAPES = {"W1": (4, 3), "b1": (3,)}
DESCENT_STEPS = 100
LR_LADDER = (0.1, 0.01, 0.001)
TRAJECTORY_STEPS = 10
_MAX_GRID = 64


def check_optimizer(
    factory: Any,
    report: CheckReport,
    rng: np.random.Generator,
    tol: Tolerances,
    names: Sequence[str],
    hyperparameters: Optional[Mapping[str, Any]] = None,
) -> None:
    hp = {**_required_lr(factory), **(hyperparameters or {})}
    problem, base_lr = _interface(factory, hp)
    if problem is not None:
        report.problems.append(problem)
        return
    report.passed.append("interface")

    def build(lr: float, extra: Optional[Mapping[str, Any]] = None) -> Any:
        optimizer = factory(**{**hp, **(extra or {})})
        optimizer.lr = lr
        return optimizer

    seeds = [int(s) for s in rng.integers(2**31, size=6)]
    run_checks(
        report,
        [
            ("descends", lambda: _descends(build, base_lr, np.random.default_rng(seeds[0]), tol)),
            ("lr_zero", lambda: _lr_zero(build, np.random.default_rng(seeds[1]))),
            ("in_place", lambda: _in_place(build, base_lr, np.random.default_rng(seeds[2]))),
            ("grads_untouched", lambda: _grads_untouched(build, base_lr, np.random.default_rng(seeds[3]))),
            ("separate_state", lambda: _separate_state(build, base_lr, np.random.default_rng(seeds[4]), tol)),
        ],
    )
    if fused_targets_of(build(base_lr)) is not None:  # the trainer would take the fused path
        run_checks(report, [("fused", lambda: _fused(build, base_lr, np.random.default_rng(seeds[4]), tol))])
    family = identify(names)
    if family is None:
        report.notes.append(
            "no reference trajectory: the name states none of SGD, momentum, Nesterov, Adam, "
            "AdamW, RMSprop, Adagrad"
        )
        return
    switches = nonstandard_switches({**_signature_defaults(factory), **hp})
    if switches:
        report.notes.append(f"no reference trajectory: {', '.join(switches)} selects a non-standard form")
        return
    lr = base_lr if base_lr > 0 else 0.01
    check = (factory, hp, family, lr, np.random.default_rng(seeds[5]), tol, report.notes)
    run_checks(report, [("reference", lambda: _reference(*check))])


def _interface(factory: Any, hp: Dict[str, Any]) -> Tuple[Optional[Problem], float]:
    contract = "factory(**hyperparameters) -> object with a number lr and step(params, grads)"
    if not callable(factory):
        return Problem(
            "interface",
            f"{type(factory).__name__} is not callable",
            contract,
            "check_plugin('optimizer', ...) takes the factory (usually the class), not an optimizer object.",
        ), 0.0
    try:
        optimizer = factory(**hp)
    except Exception as exc:
        return Problem(
            "interface",
            f"{type(exc).__name__}: {exc}",
            contract,
            f"The factory could not be called with {hp or 'no arguments'}.",
        ), 0.0
    lr = getattr(optimizer, "lr", None)
    if not callable(getattr(optimizer, "step", None)) or not _is_number(lr):
        return Problem(
            "interface",
            f"lr = {lr!r}, step: {callable(getattr(optimizer, 'step', None))}",
            contract,
            "The trainer sets optimizer.lr every step (learning-rate schedules) "
            "and calls optimizer.step(params, grads).",
        ), 0.0
    return None, float(lr)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _random_params(rng: np.random.Generator, dtype: Any = np.float64) -> Arrays:
    return {key: rng.uniform(-2.0, 2.0, size=shape).astype(dtype) for key, shape in SHAPES.items()}


def _random_grads(rng: np.random.Generator, shapes: Mapping[str, tuple] = SHAPES) -> Arrays:
    """Entries of size 0.5 to 1.5 with random signs: no entry so small that eps would matter."""
    return {
        key: rng.uniform(0.5, 1.5, size=shape) * rng.choice([-1.0, 1.0], size=shape)
        for key, shape in shapes.items()
    }


# ---------------------------------------------------------------- descent on a quadratic


def _descends(
    build: Callable[..., Any], base_lr: float, rng: np.random.Generator, tol: Tolerances
) -> List[Problem]:
    problem = {}
    for key, shape in SHAPES.items():
        size = int(np.prod(shape))
        q, _ = np.linalg.qr(rng.standard_normal((size, size)))
        curvature = q @ np.diag(rng.uniform(0.5, 2.0, size)) @ q.T
        centre = rng.standard_normal(size)
        problem[key] = (shape, curvature, centre, centre + rng.standard_normal(size))

    def loss(key: str, p: np.ndarray) -> float:
        _, curvature, centre, _ = problem[key]
        d = p.ravel() - centre
        return 0.5 * float(d @ curvature @ d)

    tried = []
    for lr in dict.fromkeys(lr for lr in (base_lr, *LR_LADDER) if lr > 0):
        optimizer = build(lr)
        params = {key: start.reshape(shape).copy() for key, (shape, _, _, start) in problem.items()}
        start = {key: loss(key, p) for key, p in params.items()}
        for _ in range(DESCENT_STEPS):
            grads = {
                key: (problem[key][1] @ (p.ravel() - problem[key][2])).reshape(p.shape)
                for key, p in params.items()
            }
            optimizer.step(params, grads)
        ratios = {key: loss(key, p) / start[key] for key, p in params.items()}
        worst = max(ratios.values()) if all(np.isfinite(r) for r in ratios.values()) else np.inf
        if worst <= tol.descent:
            return []
        tried.append((lr, worst, ratios))
    best = min(tried, key=lambda item: item[1])
    climbed = [key for key, ratio in best[2].items() if not ratio < 1.0]
    if climbed:
        why = (
            f"The loss of {', '.join(climbed)} grew (or became nan): the update climbs instead of "
            "descending (a flipped sign, p += lr * g), or it blows up."
        )
    else:
        why = "It descends too slowly to be the method it claims: check the size of the update."
    return [
        Problem(
            "descends",
            f"loss ratio {fmt(best[1])} at best (lr {fmt(best[0])})",
            f"<= {tol.descent} for some lr in {', '.join(fmt(lr) for lr, _, _ in tried)}",
            f"On a convex quadratic 0.5 (p - c)' A (p - c) per parameter, {DESCENT_STEPS} steps must "
            f"bring every parameter's loss to at most {tol.descent:g} of its start. {why}",
        )
    ]


# ---------------------------------------------------------------- contract checks


def _lr_zero(build: Callable[..., Any], rng: np.random.Generator) -> List[Problem]:
    optimizer = build(0.0)
    params = _random_params(rng)
    start = {k: p.copy() for k, p in params.items()}
    for _ in range(5):
        optimizer.step(params, _random_grads(rng))
    moved = max(float(np.max(np.abs(params[k] - start[k]))) for k in params)
    if moved == 0.0:
        return []
    return [
        Problem(
            "lr_zero",
            f"parameters moved by up to {fmt(moved)}"
            if np.isfinite(moved)
            else "parameters became nan or inf",
            "no change at all",
            "With optimizer.lr = 0 nothing may change: the trainer's learning-rate schedule sets lr "
            "before every step. Either lr is copied at construction and the attribute is not read "
            "in step, or part of the update (e.g. weight decay) is not multiplied by lr.",
        )
    ]


def _in_place(build: Callable[..., Any], base_lr: float, rng: np.random.Generator) -> List[Problem]:
    optimizer = build(base_lr)
    params = {
        "W1": rng.uniform(-2, 2, SHAPES["W1"]),
        "b1": rng.uniform(-2, 2, SHAPES["b1"]).astype(np.float32),
    }
    originals = dict(params)
    before = {k: p.copy() for k, p in params.items()}
    optimizer.step(params, {k: g.astype(params[k].dtype) for k, g in _random_grads(rng).items()})
    found = []
    for key, array in originals.items():
        if params.get(key) is not array:
            found.append(f"params['{key}'] was replaced by a new array")
        elif array.dtype != before[key].dtype:
            found.append(f"params['{key}'] changed dtype")
        if np.array_equal(array, before[key]):
            found.append(f"the caller's array '{key}' ({array.dtype}) did not change")
    if not found:
        return []
    return [
        Problem(
            "in_place",
            "; ".join(found),
            "the caller's arrays updated in place",
            "The model keeps references to its parameter arrays, so step must change them in place "
            "(p -= update, or p[...] = new); `params[key] = p - update` makes a new array the model "
            "never sees, and it would never learn.",
        )
    ]


def _grads_untouched(build: Callable[..., Any], base_lr: float, rng: np.random.Generator) -> List[Problem]:
    optimizer = build(base_lr)
    params = _random_params(rng)
    for step in range(1, 4):
        grads = _random_grads(rng)
        copies = {k: g.copy() for k, g in grads.items()}
        optimizer.step(params, grads)
        changed = [k for k in grads if not np.array_equal(grads[k], copies[k])]
        if changed:
            return [
                Problem(
                    "grads_untouched",
                    f"grads {changed} changed at step {step}",
                    "gradients left as they were",
                    "step must not modify grads: the trainer, observers and diagnostics read them "
                    "after the step. Use your own scratch arrays (`g *= lr` or `np.multiply(g, lr, "
                    "out=g)` write into the caller's gradient).",
                )
            ]
    return []


def _separate_state(
    build: Callable[..., Any], base_lr: float, rng: np.random.Generator, tol: Tolerances
) -> List[Problem]:
    shape = SHAPES["W1"]
    start = {"W1": rng.uniform(-2, 2, shape), "W2": rng.uniform(-2, 2, shape)}
    grads = [
        {"W1": g, "W2": np.zeros(shape)} for g in (_random_grads(rng, {"W1": shape})["W1"] for _ in range(5))
    ]
    joint = _follow(build(base_lr), start, grads)
    alone = {
        key: _follow(build(base_lr), {key: start[key]}, [{key: g[key]} for g in grads])[key] for key in start
    }
    if not all(np.all(np.isfinite(p)) for path in alone.values() for p in path):
        return []  # a method that blows up on its own fails other checks; sharing is not the question
    scale = max(float(np.max(np.abs(p))) for p in start.values())
    differs = {
        key: max(float(np.max(np.abs(a - b))) for a, b in zip(joint[key], alone[key], strict=True))
        for key in start
    }
    bad = [key for key, d in differs.items() if not d <= tol.recompute * scale]
    if not bad:
        return []
    return [
        Problem(
            "separate_state",
            "; ".join(f"'{k}' differs from its solo run by {fmt(differs[k])}" for k in bad),
            f"<= {tol.recompute:g} x {fmt(scale)}",
            "Two parameters of the same shape, 'W1' with gradients and 'W2' with zero gradients, "
            "were stepped together and each alone. Together they must follow the same paths: here "
            "state is shared between keys (one velocity or moment buffer for all, state keyed by "
            "shape, or a step counter advanced once per key). Keep state in a dict keyed by "
            "the parameter's name.",
        )
    ]


def _fused(
    build: Callable[..., Any], base_lr: float, rng: np.random.Generator, tol: Tolerances
) -> List[Problem]:
    """The trainer's fused path, with the GEMM's accumulation written out, against plain steps."""
    start = _random_params(rng)
    grads = [_random_grads(rng) for _ in range(TRAJECTORY_STEPS)]
    lr = base_lr if base_lr > 0 else 0.01
    plain = _follow(build(lr), start, grads)
    optimizer = build(lr)
    params = {k: p.copy() for k, p in start.items()}
    gaps = []
    for step, g in enumerate(grads):
        weight_keys = [key for key in params if key.startswith("W")]
        offered = fused_params(optimizer, params, weight_keys)  # what the trainer offers
        targets = optimizer.fused_targets(offered)
        for key, (target, alpha, beta) in targets.items():
            target *= beta
            target += alpha * g[key]
        stale = {k: np.full_like(v, np.nan) if k in targets else v.copy() for k, v in g.items()}
        optimizer.step(params, stale, fused=list(targets))
        gaps.extend(float(np.max(np.abs(p - plain[key][step]))) for key, p in params.items())
    worst = float(np.max(gaps))  # nan, if any step made one, stays
    scale = max(float(np.max(np.abs(p))) for p in start.values())
    if worst <= tol.recompute * scale:
        return []
    return [
        Problem(
            "fused",
            f"the fused path left the plain one by {fmt(worst)}"
            if np.isfinite(worst)
            else "nan or inf: a gradient of a fused key was read",
            f"<= {tol.recompute:g} x {fmt(scale)}",
            "The trainer takes fused_targets when they are offered: for each parameter the BLAS call "
            "that computes its gradient (a weight matrix's GEMM, a bias's GEMV) writes "
            "target <- alpha * gradient + beta * target, then step(params, grads, fused=keys) "
            "must finish the update without reading those keys' gradients (they hold nan here). "
            "Make the two paths agree, or set fused_targets = None (as a subclass whose step "
            "reads the gradient again must).",
        )
    ]


def _follow(optimizer: Any, start: Arrays, grads: Sequence[Arrays]) -> Dict[str, List[np.ndarray]]:
    """Step ``optimizer`` from ``start`` through ``grads``; each key's positions after each step."""
    params = {k: p.copy() for k, p in start.items()}
    path: Dict[str, List[np.ndarray]] = {k: [] for k in start}
    for g in grads:
        optimizer.step(params, {k: v.copy() for k, v in g.items()})
        for k in path:
            path[k].append(np.array(params[k], dtype=np.float64))
    return path


# ---------------------------------------------------------------- reference trajectories


def _reference(
    factory: Any,
    hp: Dict[str, Any],
    family: Family,
    lr: float,
    rng: np.random.Generator,
    tol: Tolerances,
    notes: List[str],
) -> List[Problem]:
    start = _random_params(rng)
    grads = [_random_grads(rng) for _ in range(TRAJECTORY_STEPS)]
    values, arguments, unknown = _discover(family, factory, hp)
    runs = [("its hyperparameters", hp, values)]
    perturbed_args, perturbed_values = _perturb(family, arguments, values)
    if perturbed_args:
        runs.append((f"changed hyperparameters {perturbed_args}", {**hp, **perturbed_args}, perturbed_values))
    for label, kwargs, role_values in runs:
        try:
            optimizer = factory(**kwargs)
        except Exception:
            continue  # the plugin rejects the changed values: nothing to learn from this run
        optimizer.lr = lr
        path = _follow(optimizer, start, grads)
        distance, variant, used = _closest(
            family.variants, path, start, grads, lr, role_values, unknown, family
        )
        if distance <= tol.trajectory:
            if label == "its hyperparameters":
                notes.append(f"trajectory matches the reference {family.name} ({variant})")
            continue
        if not np.isfinite(distance):
            return [
                Problem(
                    "reference",
                    "nan or inf in the trajectory",
                    f"a finite trajectory close to {family.name}",
                    f"Over {TRAJECTORY_STEPS} steps with {label} (lr={lr:g}) and gradients of size 0.5 "
                    "to 1.5, the parameters became nan or inf (a division by zero, e.g. 1 - beta^t "
                    "with t = 0, or the square root of a negative number).",
                )
            ]
        mistake = _closest(family.mistakes, path, start, grads, lr, role_values, unknown, family)
        cause = (
            f" It matches {family.name} with a classic mistake: {mistake[1]}."
            if mistake[0] <= tol.trajectory
            else ""
        )
        shown = ", ".join(f"{k}={v:g}" for k, v in used.items())
        return [
            Problem(
                "reference",
                distance,
                tol.trajectory,
                f"Over {TRAJECTORY_STEPS} steps with {label} (lr={lr:g}), the trajectory differs from "
                f"every standard form of {family.name}; the closest, '{variant}' with {shown}, by "
                f"{fmt(distance)} of the distance travelled.{cause} The name says {family.name}, so it "
                "is compared with an independent implementation of it; rename the plugin if it is a "
                "different algorithm on purpose.",
            )
        ]
    return []


def _closest(
    references: Mapping[str, Any],
    path: Dict[str, List[np.ndarray]],
    start: Arrays,
    grads: Sequence[Arrays],
    lr: float,
    values: Dict[str, float],
    unknown: List[str],
    family: Family,
) -> Tuple[float, str, Dict[str, float]]:
    """(distance, name, hyperparameters) of the reference closest to ``path``."""
    best: Tuple[float, str, Dict[str, float]] = (np.inf, "", values)
    grids = [family.roles[role].grid or (family.roles[role].default,) for role in unknown]
    for combination in itertools.islice(itertools.product(*grids), _MAX_GRID):
        candidate = {**values, **dict(zip(unknown, combination, strict=True))}
        for name, reference in references.items():
            distance = _distance(path, start, grads, lr, candidate, reference)
            if distance < best[0]:
                best = (distance, name, candidate)
    return best


def _distance(path, start, grads, lr, values, reference) -> float:
    """||plugin - reference|| over ||reference - start||, all keys and steps together."""
    gap = travelled = 0.0
    for key, positions in path.items():
        expected = reference(start[key], [g[key] for g in grads], lr, values)
        actual = np.array(positions)
        if actual.shape != (len(expected), *start[key].shape) or not np.all(np.isfinite(actual)):
            return np.inf
        gap += float(np.sum((actual - np.array(expected)) ** 2))
        travelled += float(np.sum((np.array(expected) - start[key]) ** 2))
    return float(np.sqrt(gap / travelled)) if travelled > 0 else (0.0 if gap == 0 else np.inf)


def _discover(
    family: Family, factory: Any, hp: Mapping[str, Any]
) -> Tuple[Dict[str, float], Dict[str, str], List[str]]:
    """Each role's value (from the given hyperparameters, the built object or the signature's
    defaults), the argument name that sets it (when the factory takes one), and the roles not found."""
    defaults = _signature_defaults(factory)
    try:
        instance = factory(**hp)
    except Exception:
        instance = None
    values: Dict[str, float] = {}
    arguments: Dict[str, str] = {}
    unknown: List[str] = []
    for role_name, role in family.roles.items():
        for alias in role.names:
            attribute, index = _split_alias(alias)
            for source in (
                hp,
                vars(instance) if instance is not None and hasattr(instance, "__dict__") else {},
                defaults,
            ):
                if attribute in source:
                    value = source[attribute]
                    value = value[index] if index is not None and _indexable(value, index) else value
                    if _is_number(value) or isinstance(value, bool):
                        values[role_name] = float(value)
                        if attribute in defaults:
                            arguments[role_name] = alias
                        break
            if role_name in values:
                break
        else:
            if role.grid:
                unknown.append(role_name)
            else:
                values[role_name] = role.default
    return values, arguments, unknown


def _perturb(
    family: Family, arguments: Dict[str, str], values: Dict[str, float]
) -> Tuple[Dict[str, Any], Dict[str, float]]:
    """Arguments setting every exposed role to its perturbed value, and the role values that gives."""
    changed: Dict[str, Any] = {}
    new_values = dict(values)
    for role_name, alias in arguments.items():
        perturbed = family.roles[role_name].perturbed
        if perturbed is None:
            continue
        new_values[role_name] = perturbed
        attribute, index = _split_alias(alias)
        if index is None:
            changed[attribute] = perturbed
        else:
            current = list(changed.get(attribute, (values.get("beta1", 0.9), values.get("beta2", 0.999))))
            current[index] = perturbed
            changed[attribute] = tuple(current)
    return changed, new_values


def _split_alias(alias: str) -> Tuple[str, Optional[int]]:
    if alias.endswith("]"):
        name, index = alias[:-1].split("[")
        return name, int(index)
    return alias, None


def _indexable(value: Any, index: int) -> bool:
    return isinstance(value, (tuple, list)) and len(value) > index


def _required_lr(factory: Any) -> Dict[str, float]:
    """{"lr": 0.01} when the factory cannot be called without a learning rate (no default)."""
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return {}
    return {
        p.name: 0.01
        for p in parameters
        if p.default is inspect.Parameter.empty
        and p.name in ("lr", "learning_rate", "eta", "step_size")
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }


def _signature_defaults(factory: Any) -> Dict[str, Any]:
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return {}
    return {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}
