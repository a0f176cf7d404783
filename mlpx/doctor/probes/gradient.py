"""Probe ``gradient``: each array's gradient, from every source the code offers, against central
differences of the stated objective through the code's own forward pass.

Sources: the explicit ``gradients(net, X, Y)``, the gradient inferred from one ``update``
((old - new) / lr), and an ``optimizer``'s ``gradients``. A wrong array is named with its
relative error and, when the evidence fits, the mistake: the gradient is a constant multiple of
the right one (sign, batch size), follows another loss or only the last record, has a constant
bias, or the L2 term is missing, mis-scaled or on the biases. Arrays are listed by layer, so an
error that starts in one layer and propagates to the layers below reads as such.
"""

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from mlpx.checks.numeric import fmt, format_table, relative_distance
from mlpx.doctor.context import Context
from mlpx.doctor.measure import ArrayMeasurement, measure_arrays, remeasure
from mlpx.doctor.report import Finding
from mlpx.doctor.structure import is_bias, layer_of, layer_order
from mlpx.doctor.subject import CodeError
from mlpx.doctor.thresholds import thresholds
from mlpx.doctor.twin import Twin, fit_twin, mistakes

Arrays = Dict[str, np.ndarray]
_LOSS_WORDS = {"cross_entropy": "cross-entropy", "bce": "binary cross-entropy", "mse": "squared error"}


@dataclass
class Verdict:
    """One array of one source: its error and what the error looks like."""

    name: str
    error: float
    kind: Optional[str] = None
    extra_kinds: List[str] = field(default_factory=list)
    shape_note: str = ""
    ratio: Optional[float] = None

    @property
    def wrong(self) -> bool:
        return self.kind != "ok"


@dataclass
class Source:
    label: str  # "gradients", "update", "optimizer gradients"
    gradients: Arrays


def probe_gradient(ctx: Context) -> None:
    subject = ctx.subject
    net = subject.fresh()
    jittered = _jitter_zero_arrays(ctx, subject.arrays(net))
    x, y = ctx.batch()
    sources = list(_sources(ctx, net, x, y))
    if not sources:
        ctx.facts.setdefault("skipped", {})["gradient"] = "no gradients, update or optimizer given"
        return
    arrays = subject.arrays(net)
    ctx.facts["layers"] = layers = layer_order(
        {k: np.asarray(v) for k, v in arrays.items()}, ctx.n_features, ctx.n_classes
    )
    focus = sources[0].gradients
    if _gradient_draws_masks_forward_does_not(ctx, net, x, y, sources[0]):
        return
    measured = measure_arrays(ctx, net, arrays, x, y, focus={k: v for k, v in focus.items() if k in arrays})
    for name in _dead_to_forward(ctx, net, arrays, measured, x):
        del measured[name]
    limits = thresholds(ctx.dtype)
    penalised = set(ctx.math.l2_names(arrays))
    any_wrong = False
    for source in sources:
        verdicts = []
        for name, m in measured.items():
            g = source.gradients.get(name)
            if g is None:
                continue
            verdicts.append(_judge(ctx, net, arrays[name], m, g, x, y, limits, name in penalised))
        wrong = [v for v in verdicts if v.wrong]
        ctx.facts.setdefault("gradient_errors", {})[source.label] = {v.name: v.error for v in verdicts}
        if wrong:
            any_wrong = True
            _name_by_twin(ctx, net, arrays, measured, source, verdicts, x, y, penalised, limits)
            _name_dropout(ctx, wrong)
            _report(ctx, source, verdicts, wrong, layers, measured)
    if jittered:
        ctx.facts.setdefault("notes", []).append(
            f"gradients were checked with small random values in the all-zero arrays {', '.join(jittered)} "
            "(zeros hide some mistakes)"
        )
    ctx.facts["gradient_ok"] = not any_wrong


def _gradient_draws_masks_forward_does_not(ctx: Context, net, x, y, source: "Source") -> bool:
    """With seed=, a gradient that changes with the seed while forward does not (forward in
    evaluation mode, gradients with dropout) cannot be compared: say so instead of a false alarm."""
    subject = ctx.subject
    if subject.seed is None or ctx.facts.get("uses_global_random") or source.label != "gradients":
        return False
    seed = subject.seed
    try:
        subject.seed = seed + 1
        again = _call_gradients(ctx, "gradients", subject.gradients_fn, net, x, y, list(source.gradients))
    finally:
        subject.seed = seed
    if again is None or all(np.array_equal(again[k], v) for k, v in source.gradients.items() if k in again):
        return False
    ctx.add(
        Finding(
            "gradient",
            "warning",
            "gradients() draws random masks (dropout) but forward does not: "
            "the gradient cannot be checked against forward. Make forward apply the same masks "
            "(training mode) when the doctor calls it",
        )
    )
    ctx.facts.setdefault("skipped", {})["gradient"] = "gradients are random, forward is not"
    return True


def _dead_to_forward(ctx: Context, net, arrays: Arrays, measured, x) -> List[str]:
    """Arrays no probe moved forward by even a bit, and that a large nudge does not move either:
    not what forward reads (params() must return the live arrays, not copies)."""
    dead = []
    for name, m in measured.items():
        if any(p.changes["stated"] for p in (*m.directions, *m.entries)):
            continue
        array = arrays[name]
        saved = array.copy()
        base = ctx.subject.forward(net, x)
        try:
            array[...] = saved + 0.3 * max(1.0, float(np.abs(saved).max())) * ctx.rng.standard_normal(
                array.shape
            )
            moved = ctx.subject.forward(net, x)
        finally:
            array[...] = saved
        if np.array_equal(moved, base):
            dead.append(name)
    if dead:
        ctx.add(
            Finding(
                "gradient",
                "warning",
                f"changing {', '.join(dead)} does not change forward's output: "
                "they are not checked. If they are trained, params(net) must return the arrays "
                "forward reads (not copies)",
                params=tuple(dead),
            )
        )
    return dead


# ---------------------------------------------------------------- sources


def _sources(ctx: Context, net: Any, x: np.ndarray, y: np.ndarray):
    subject = ctx.subject
    names = list(subject.arrays(net))
    if subject.gradients_fn is not None:
        got = _call_gradients(ctx, "gradients", subject.gradients_fn, net, x, y, names)
        if got is not None:
            yield Source("gradients", got)
    if subject.update_fn is not None:
        got = _inferred_from_update(ctx, net, x, y)
        if got is not None:
            yield Source("update", got)
    if subject.optimizer is not None and callable(subject.optimizer.get("gradients")):
        got = _call_gradients(ctx, "optimizer gradients", subject.optimizer["gradients"], net, x, y, names)
        if got is not None:
            yield Source("optimizer gradients", got)


def _call_gradients(ctx, label, fn, net, x, y, names) -> Optional[Arrays]:
    twin = copy.deepcopy(net)
    try:
        got = ctx.subject.call(label, fn, twin, x.copy(), y.copy())
    except CodeError as error:
        ctx.add(_raised("gradient", error))
        return None
    if isinstance(got, (list, tuple)) and sum(isinstance(part, dict) for part in got) == 1:
        got = next(part for part in got if isinstance(part, dict))  # (loss, grads) as CS231n returns
    if not isinstance(got, dict):
        if isinstance(got, (list, tuple)) and len(got) == len(names):
            got = dict(zip(names, got, strict=True))
        else:
            ctx.add(
                Finding(
                    "gradient",
                    "error",
                    f"{label}(net, X, Y) returned {type(got).__name__}, not a dict {{array name: gradient}}",
                    kind="code-raised",
                )
            )
            return None
    got = _match_names(ctx, label, dict(got), names)
    missing = [n for n in names if n not in got]
    if missing:
        ctx.add(
            Finding(
                "gradient",
                "error",
                f"{label}() returned no gradient for {', '.join(missing)} "
                f"(it returned {', '.join(map(str, got)) or 'nothing'}); the keys must be the "
                "names of the arrays",
                params=missing,
            )
        )
    return _conform(ctx, label, got, ctx.subject.arrays(net), x)


def _match_names(ctx: Context, label: str, got: Dict[Any, Any], names: List[str]) -> Dict[Any, Any]:
    """Gradients keyed 'dW1', 'grad_W1' or 'W1_grad' for the array 'W1' are taken as its, with a note."""
    if all(n in got for n in names):
        return got
    mapping = {}
    for key in got:
        text = str(key)
        for bare in _bare_names(text):
            if bare in names and bare not in got and bare not in mapping.values():
                mapping[key] = bare
                break
    if mapping:
        ctx.facts.setdefault("notes", []).append(
            f"{label}() keys read as array names: " + ", ".join(f"{k} -> {n}" for k, n in mapping.items())
        )
    return {mapping.get(k, k): v for k, v in got.items()}


def _bare_names(key: str) -> List[str]:
    found = []
    for prefix in ("grad_", "d_", "g_", "grad", "d"):
        if key.startswith(prefix):
            found.append(key[len(prefix) :])
    for suffix in ("_grad", "_gradient", "_g"):
        if key.endswith(suffix):
            found.append(key[: -len(suffix)])
    return found


def _inferred_from_update(ctx, net, x, y) -> Optional[Arrays]:
    subject = ctx.subject
    twin = copy.deepcopy(net)
    before = subject.copies(twin)
    lr = subject.learning_rate(twin)
    try:
        twin = subject.step(twin, "update", subject.update_fn, x.copy(), y.copy())
    except CodeError as error:
        ctx.add(_raised("gradient", error))
        return None
    after = subject.arrays(twin)
    if lr == 0:
        ctx.add(Finding("gradient", "error", "lr is 0: the update's gradient cannot be inferred"))
        return None
    inferred = {}
    for name, old in before.items():
        new = np.asarray(after[name], dtype=np.float64)
        inferred[name] = (old - new) / lr if new.shape == old.shape else new
    return _conform(ctx, "update", inferred, before, x)


def _conform(ctx: Context, label: str, got: Dict[str, Any], arrays: Arrays, x: np.ndarray) -> Arrays:
    """Gradients as float64 arrays of their parameter's shape; a wrong shape is a finding."""
    out = {}
    for name, g in got.items():
        if name not in arrays:
            continue
        target = np.shape(arrays[name])
        g = np.asarray(g, dtype=np.float64)
        if g.shape == target:
            out[name] = g
        elif g.size == int(np.prod(target)) and np.squeeze(g).shape == np.squeeze(np.empty(target)).shape:
            out[name] = g.reshape(target)
        else:
            ctx.add(_shape_finding(label, name, g.shape, target, len(x), arrays[name]))
    return out


def _shape_finding(
    label: str, name: str, got: Tuple[int, ...], target: Tuple[int, ...], n: int, array
) -> Finding:
    what = "the change made by update" if label == "update" else f"the gradient from {label}"
    message = f"{name}: {what} has shape {got}, but {name} has shape {target}"
    kind = "shape-mismatch"
    if is_bias(name, np.empty(target)) and n in got:
        kind = "bias-grad-wrong-axis"
        message += f" (a side of {n} is the batch: the bias gradient was summed over the wrong axis)"
    elif tuple(got) == tuple(target)[::-1]:
        kind = "transposed-weight-in-backward"
        message += " (transposed)"
    elif got == ():
        kind = "bias-grad-collapsed-to-scalar" if is_bias(name, np.empty(target)) else kind
    return Finding("gradient", "error", message, params=(name,), kind=kind, measured={"shape": list(got)})


def _raised(check: str, error: CodeError) -> Finding:
    return Finding(check, "error", str(error), kind="code-raised", where=error.where)


def _jitter_zero_arrays(ctx: Context, arrays: Arrays) -> List[str]:
    """Give all-zero arrays (biases) small random values: an L2 term on them, or a bias
    gradient that ignores them, is invisible at exactly zero."""
    scales = [float(np.std(a)) for a in arrays.values() if np.any(a)]
    scale = 0.1 * (float(np.median(scales)) if scales else 0.1)
    done = []
    for name, array in arrays.items():
        if not np.any(array) and array.flags.writeable:
            array[...] = scale * ctx.rng.standard_normal(array.shape)
            done.append(name)
    return done


# ---------------------------------------------------------------- judging one array


def _judge(ctx, net, array, m: ArrayMeasurement, g: np.ndarray, x, y, limits, l2_on: bool) -> Verdict:
    if not np.all(np.isfinite(g)):
        return Verdict(m.name, float("inf"), None, shape_note="the gradient has nan or inf entries")
    l2g = ctx.math.l2_gradient(net, m.name, m.value)
    error = _error(m, g, l2g if l2_on else None)
    if error > limits.gradient:
        rescued = dataclasses.replace(m, directions=list(m.directions), entries=list(m.entries))
        _rescue_kinks(ctx, net, array, rescued, g, x, y, l2g if l2_on else None, limits.gradient)
        error = _error(rescued, g, l2g if l2_on else None)
    if error <= limits.gradient:
        return Verdict(m.name, error, "ok")
    verdict = Verdict(m.name, error)
    _fingerprint(ctx, m, g, l2g, l2_on, verdict, limits)
    return verdict


def _vectors(m: ArrayMeasurement, g: np.ndarray, l2g: Optional[np.ndarray], variant: str = "stated"):
    """(code, true) derivatives along directions and entries, with the L2 term when it applies."""
    out = []
    for probes in (m.directions, m.entries):
        c = m.code(probes, g)
        t = m.true(probes, variant)
        if l2g is not None:
            t = t + m.code(probes, l2g)
        out.append((c, t))
    return out


def _error(m: ArrayMeasurement, g: np.ndarray, l2g: Optional[np.ndarray]) -> float:
    (cd, td), (ce, te) = _vectors(m, g, l2g)
    err_d = np.linalg.norm(cd - td) / max(np.linalg.norm(cd), np.linalg.norm(td), m.noise, 1e-300)
    err_e = 0.0
    if len(ce):
        scale = max(np.abs(ce).max(), np.abs(te).max(), m.noise, 1e-300)
        err_e = np.abs(ce - te).max() / scale
    return float(max(err_d, err_e))


def _rescue_kinks(ctx, net, array, m, g, x, y, l2g, tolerance: float) -> None:
    """Measure disagreeing functionals again with the other steps; keep the closest (a step may
    straddle a ReLU kink; one lost in rounding must not fail a correct array). Kinks spoil a
    few functionals: when most disagree, the gradient is wrong and nothing is re-measured."""
    ratios = [s / ctx.tol.fd_steps[0] for s in ctx.tol.fd_steps[1:]]

    def gap(probe) -> float:
        if not probe.width:
            return 0.0
        extra = probe.project(l2g) if l2g is not None else 0.0
        return abs(probe.project(g) - probe.changes["stated"] - extra) / probe.width

    plans = []
    for group, (c, t) in zip((m.directions, m.entries), _vectors(m, g, l2g), strict=True):
        scale = max(float(np.abs(c).max(initial=0)), float(np.abs(t).max(initial=0)), m.noise, 1e-300)
        plans.append((group, [i for i, p in enumerate(group) if gap(p) > tolerance * scale]))
    total = len(m.directions) + len(m.entries)
    if sum(len(bad) for _, bad in plans) > total / 2:
        return
    for group, bad in plans:
        for i in bad:
            best = group[i]
            for ratio in ratios:
                other = remeasure(ctx, net, array, x, y, group[i], ratio)
                if other.width and gap(other) < gap(best):
                    best = other
            group[i] = best


def _fit(code: np.ndarray, true: np.ndarray) -> Tuple[float, float]:
    """(ratio, residual): code ~ ratio * true, residual relative to |code|."""
    tt = float(np.dot(true, true))
    cc = float(np.linalg.norm(code))
    if tt == 0.0 or cc == 0.0:
        return 0.0, 1.0 if cc else 0.0
    ratio = float(np.dot(code, true)) / tt
    return ratio, float(np.linalg.norm(code - ratio * true)) / cc


def _stacked(m: ArrayMeasurement, g, l2g, variant: str) -> Tuple[np.ndarray, np.ndarray]:
    """Directions and entries in one vector, each group scaled to comparable size."""
    parts_c, parts_t = [], []
    for c, t in _vectors(m, g, l2g, variant):
        if not len(c):
            continue
        scale = max(np.linalg.norm(c), np.linalg.norm(t), 1e-300)
        parts_c.append(c / scale)
        parts_t.append(t / scale)
    return np.concatenate(parts_c), np.concatenate(parts_t)


def _fingerprint(ctx: Context, m: ArrayMeasurement, g, l2g, l2_on: bool, verdict: Verdict, limits) -> None:
    n = len(ctx.batch()[0])
    bias = is_bias(m.name, m.value)
    mean = ctx.subject.objective.reduction == "mean"
    flat = g.ravel()
    if bias and flat.size > 1 and np.ptp(flat) <= 1e-12 * max(np.abs(flat).max(), 1e-300):
        verdict.kind = "bias-grad-collapsed-to-scalar"
        value = float(flat[0])
        verdict.shape_note = f"every entry gets the same value {value:.3g}" + (
            ": zero, so this bias never moves" if value == 0 else ""
        )
        last = _collapsed_from_last_record(m, value, n, l2g if l2_on else None)
        if last:
            verdict.extra_kinds.append("bias-grad-overwritten")
            verdict.shape_note += "; that value is the sum of the last record's error terms only"
        return
    if not np.any(flat):
        verdict.shape_note = "the gradient is zero everywhere: this array never moves"
        return
    penal = l2g if l2_on else None
    fits = {}
    for variant in m.directions[0].changes:
        c, t = _stacked(m, g, penal, variant)
        fits[variant] = _fit(c, t)
    ratio, residual = fits["stated"]
    explains = min(limits.fingerprint, 0.2 * verdict.error)  # a fit must remove most of the error
    others = {k: v for k, v in fits.items() if k != "stated" and v[1] < explains}
    best = min(others.items(), key=lambda item: item[1][1]) if others else None
    # a constant multiple of the right gradient, unless another loss fits it far better (a
    # sigmoid's missing s(1 - s) is almost a constant 4 near the start)
    if residual < explains and (_named_ratio(ratio, n) or best is None or best[1][1] > residual / 10):
        verdict.ratio = ratio
        _name_ratio(verdict, ratio, n, mean, limits)
        return
    if ctx.math.objective.l2 is not None and _fingerprint_l2(m, g, l2g, l2_on, verdict, limits):
        return
    if best is not None:
        variant, (ratio, residual) = best
        verdict.ratio = ratio
        _name_variant(ctx, verdict, variant, ratio, n)
        return
    verdict.shape_note = _describe_shape(m, g, penal, fits["stated"])


def _collapsed_from_last_record(m: ArrayMeasurement, value: float, n: int, l2g) -> bool:
    if value == 0.0:
        return False
    for variant in m.directions[0].changes:
        if not variant.endswith("last_record"):
            continue
        total = m.total(variant)
        if total and any(abs(value - f * total) <= 1e-3 * abs(f * total) for f in (1, 1 / n, -1, -1 / n)):
            return True
    return False


def _named_ratio(ratio: float, n: int) -> bool:
    return any(abs(ratio - t) <= 0.02 * abs(t) for t in (1, -1, n, -n, 1 / n, -1 / n))


def _name_ratio(verdict: Verdict, ratio: float, n: int, mean: bool, limits) -> None:
    def near(target: float) -> bool:
        return abs(ratio - target) <= 0.02 * abs(target)

    if ratio < 0:
        verdict.kind = "gradient-ascent-sign-error"
        if n > 1 and mean and near(-n):
            verdict.extra_kinds.append("gradient-not-averaged")
        verdict.shape_note = f"it is {fmt(ratio)} times the right gradient: the sign is flipped"
    elif n > 1 and mean and near(n):
        verdict.kind = "gradient-not-averaged"
        verdict.shape_note = (
            f"it is {fmt(ratio)} times the right gradient: the batch size ({n}), a sum not a mean"
        )
    elif n > 1 and not mean and near(1 / n):
        verdict.kind = "gradient-not-averaged"
        verdict.shape_note = (
            f"it is 1/{n} of the right gradient: the code averages over the batch while the "
            "objective states reduction='sum'"
        )
    else:
        verdict.shape_note = f"it is a constant {fmt(ratio)} times the right gradient"


def _name_variant(ctx: Context, verdict: Verdict, variant: str, ratio: float, n: int) -> None:
    stated = ctx.subject.objective.loss
    last = variant.endswith("last_record")
    loss = variant.replace("_last_record", "")
    loss = stated if loss == "stated" else loss
    softmax = ctx.facts.get("softmax_outputs", True)
    parts = []
    if loss != stated:
        parts.append(f"it follows {_LOSS_WORDS[loss]}, not the stated {_LOSS_WORDS[stated]}")
        if stated == "cross_entropy" and loss == "mse":
            verdict.kind = "mse-gradient-through-softmax-with-ce-loss"
        elif stated == "mse" and loss == "cross_entropy" and softmax:
            verdict.kind = "missing-softmax-derivative"
        elif stated == "mse" and loss == "bce":
            verdict.kind = "missing-activation-derivative"
            parts.append("the output sigmoid's derivative is missing")
        elif stated == "mse" and loss == "cross_entropy":
            verdict.kind = "missing-activation-derivative"
    if last:
        parts.append("it comes from the last record of the batch only")
        (verdict.extra_kinds if verdict.kind else [None]).append("only-last-sample-used")
        if verdict.kind is None:
            verdict.kind = "only-last-sample-used"
    if ratio < 0:
        parts.append("with the sign flipped")
        verdict.extra_kinds.append("gradient-ascent-sign-error")
    elif not last and abs(ratio - 1) > 0.02:
        parts.append(f"times {fmt(ratio)}")
    verdict.shape_note = ", ".join(parts)


def _fingerprint_l2(m, g, l2g, l2_on: bool, verdict: Verdict, limits) -> bool:
    """g = data gradient + beta * (2 coef scale W): name a missing, mis-scaled or misplaced L2 term."""
    code_parts, data_parts, l2_parts = [], [], []
    for c, t in _vectors(m, g, None):
        code_parts.append(c)
        data_parts.append(t)
    for probes in (m.directions, m.entries):
        l2_parts.append(m.code(probes, l2g))
    c, t, p = (np.concatenate(v) for v in (code_parts, data_parts, l2_parts))
    if not np.any(p):
        return False
    beta = float(np.dot(c - t, p) / np.dot(p, p))
    residual = float(np.linalg.norm(c - t - beta * p) / max(np.linalg.norm(c), 1e-300))
    if residual >= min(limits.fingerprint, 0.2 * verdict.error):
        return False
    if l2_on and abs(beta) < 0.02:
        verdict.kind = "l2-missing-from-gradient"
        verdict.shape_note = "it is the data term's gradient alone: the L2 term is missing"
    elif l2_on:
        verdict.kind = "l2-gradient-wrong-factor"
        verdict.shape_note = f"its L2 term is {fmt(beta)} times the right one"
    elif abs(beta - 1) < 0.05 or beta > 0:
        verdict.kind = "l2-applied-to-biases" if is_bias(m.name, m.value) else None
        verdict.shape_note = "it includes an L2 term although the objective does not penalise this array"
    else:
        return False
    verdict.ratio = beta
    return True


def _describe_shape(m: ArrayMeasurement, g, l2g, stated_fit: Tuple[float, float]) -> str:
    (_, _), (ce, te) = _vectors(m, g, l2g)
    notes = []
    if len(ce):
        big = np.abs(te) > 0.05 * max(np.abs(te).max(), 1e-300)
        flipped = big & (np.sign(ce) == -np.sign(te))
        zero_code = big & (np.abs(ce) <= 1e-12 * max(np.abs(ce).max(), 1e-300))
        zero_true = (np.abs(te) <= m.noise) & (np.abs(ce) > 0.05 * max(np.abs(ce).max(), 1e-300))
        if big.any() and flipped.sum() > 0.5 * big.sum():
            notes.append(f"opposite sign on {flipped.sum()} of {big.sum()} sampled entries")
        if zero_code.any():
            notes.append(f"zero on {zero_code.sum()} sampled entries where the right gradient is not")
        if zero_true.any():
            notes.append(f"nonzero on {zero_true.sum()} sampled entries where the right gradient is zero")
        wrong = np.abs(ce - te) > 0.05 * max(np.abs(ce).max(), np.abs(te).max(), 1e-300)
        indices = [p.index for p, w in zip(m.entries, wrong, strict=True) if w]
        if len(indices) >= 2 and len(m.value.shape) == 2:
            rows = {i[0] for i in indices}
            cols = {i[1] for i in indices}
            if len(rows) == 1:
                notes.append(f"only row {rows.pop()} is wrong")
            elif len(cols) == 1:
                notes.append(f"only column {cols.pop()} is wrong")
    ratio, residual = stated_fit
    notes.append(
        f"not a constant multiple of the right gradient (best ratio {fmt(ratio)}, residual {fmt(residual)})"
    )
    return "; ".join(notes)


# ---------------------------------------------------------------- the twin's fingerprints


def _twin(ctx: Context, net, arrays: Arrays, measured, x, y, penalised, limits) -> Optional[Twin]:
    """The reference twin, fitted once and trusted only when its gradient passes the same check."""
    if "twin" in ctx.facts:
        return ctx.facts["twin"]
    ctx.facts["twin"] = None
    layers = ctx.facts.get("layers")
    if not layers:
        return None
    with np.errstate(all="ignore"):
        tolerance = 1e-5 if ctx.dtype == np.float64 else 1e-3
        twin = fit_twin(arrays, layers, ctx.n_features, x, ctx.subject.forward(net, x), tolerance)
        if twin is None:
            return None
        right = twin.gradients(np.asarray(x, np.float64), y, ctx.math)
    for name, m in measured.items():
        if name not in right:
            return None
        g = right[name] + (ctx.math.l2_gradient(net, name, m.value) if name in penalised else 0.0)
        if _judge(ctx, net, arrays[name], m, g, x, y, limits, name in penalised).wrong:
            return None
    ctx.facts["twin"] = twin
    ctx.facts["twin_gradient"] = right
    return twin


def _name_by_twin(ctx, net, arrays, measured, source: Source, verdicts, x, y, penalised, limits) -> None:
    """Name unexplained wrong arrays by the backward mistake whose exact gradient they equal."""
    unexplained = [v for v in verdicts if v.wrong and v.kind is None]
    if not unexplained:
        return
    twin = _twin(ctx, net, arrays, measured, x, y, penalised, limits)
    if twin is None:
        return
    code = {}
    for v in verdicts:
        g = source.gradients[v.name]
        if v.name in penalised:
            g = g - ctx.math.l2_gradient(net, v.name, measured[v.name].value)
        code[v.name] = g
    match_tol = 1e-5 if ctx.dtype == np.float64 else 2e-2
    lr = ctx.subject.learning_rate(net) if source.label == "update" else None
    for bug in mistakes(twin, lr):
        try:
            with np.errstate(all="ignore"):
                simulated = twin.gradients(np.asarray(x, np.float64), y, ctx.math, bug)
        except (ValueError, IndexError):
            continue
        if all(
            v.name in simulated and relative_distance(code[v.name], simulated[v.name]) <= match_tol
            for v in verdicts
        ):
            if bug.stepped_lr is not None:
                note = "it equals the gradient of a backward pass that steps each layer before sending the "
                note += "error back through its (already changed) weights"
            else:
                note = "it equals the gradient with this mistake in the backward step of layer "
                note += ", ".join(map(str, bug.layers))
            for v in unexplained:
                v.kind, v.shape_note = bug.kind, note
            return


def _name_dropout(ctx: Context, wrong: List[Verdict]) -> None:
    """A network that draws masks from np.random with an unexplained wrong gradient: the backward
    pass most likely ignores the mask."""
    if not ctx.facts.get("uses_global_random"):
        return
    for v in wrong:
        if v.kind is None:
            v.kind = "dropout-mask-missing-in-backward"
            v.shape_note += "; forward draws random masks (dropout) that the backward pass does not follow"


# ---------------------------------------------------------------- findings


def _report(ctx, source: Source, verdicts: List[Verdict], wrong: List[Verdict], layers, measured) -> None:
    _overwritten_biases(verdicts)
    right = [v.name for v in verdicts if not v.wrong]
    origin = _origin(layers, {v.name for v in wrong}, [v.name for v in verdicts])
    groups: Dict[Optional[str], List[Verdict]] = {}
    for v in wrong:
        groups.setdefault(v.kind, []).append(v)
    table = _table(ctx, verdicts)
    where = f"from {source.label}" if source.label != "update" else "inferred from update ((old - new) / lr)"
    for kind, members in groups.items():
        names = tuple(v.name for v in members)
        lines = [f"wrong gradient {where} for {', '.join(names)}:"]
        for v in members:
            lines.append(f"  {v.name}: relative error {fmt(v.error)}; {v.shape_note}".rstrip("; "))
        if right:
            lines.append(f"consistent with the objective: {', '.join(right)}")
        if origin:
            lines.append(origin)
        finding = Finding(
            "gradient",
            "error",
            "\n".join(lines),
            params=names,
            kind=kind,
            measured={"relative_error": {v.name: v.error for v in members}, "source": source.label},
            details=table if kind == next(iter(groups)) else "",
        )
        ctx.add(finding)
        extra = {k for v in members for k in v.extra_kinds if k and k != kind}
        for other in sorted(extra):
            holders = tuple(v.name for v in members if other in v.extra_kinds)
            ctx.add(
                Finding(
                    "gradient",
                    "error",
                    f"{', '.join(holders)} {where}: also {other.replace('-', ' ')}",
                    params=holders,
                    kind=other,
                    measured={"source": source.label},
                )
            )


def _overwritten_biases(verdicts: List[Verdict]) -> None:
    """Only the biases follow the last record while the weights do not: the bias accumulator
    is assigned (=) in a per-record loop."""
    last = [v for v in verdicts if v.kind == "only-last-sample-used"]
    if last and all(is_bias(v.name, np.empty(2)) or v.name.startswith("b") for v in last):
        weights_fine = [
            v for v in verdicts if v.kind != "only-last-sample-used" and not v.name.startswith("b")
        ]
        if weights_fine:
            for v in last:
                v.kind = "bias-grad-overwritten"
                v.extra_kinds.append("only-last-sample-used")


def _origin(layers, wrong: set, order: List[str]) -> str:
    """Where an error that propagates backwards starts, when the layers show it."""
    if not layers or len(layers) < 2:
        return ""
    bad = [i for i, names in enumerate(layers, start=1) if any(n in wrong for n in names)]
    if not bad:
        return ""
    top = max(bad)
    if top == len(layers):
        return ""
    right_above = [n for names in layers[top:] for n in names]
    return (
        f"layers above {top} ({', '.join(right_above)}) are right: the error starts in layer {top} "
        f"({', '.join(n for n in layers[top - 1] if n in wrong)}) or in what the backward pass hands it, "
        + ("and reaches the layers below" if min(bad) < top else "and stays there")
    )


def _table(ctx: Context, verdicts: List[Verdict]) -> str:
    layers = ctx.facts.get("layers")
    rows = [("array", "layer", "rel. error", "")]
    for v in sorted(verdicts, key=lambda v: -(layer_of(layers, v.name) or 0)):
        layer = layer_of(layers, v.name)
        rows.append((v.name, str(layer) if layer else "-", f"{v.error:.2e}", "WRONG" if v.wrong else "ok"))
    return format_table(rows)
