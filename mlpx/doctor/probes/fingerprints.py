"""Naming the mistake behind a wrong gradient: a constant multiple of the right one (sign, batch
size), another loss or the last record only, a constant bias, the L2 term missing, mis-scaled or
on the biases, and, through the reference twin, the layer-internal backward mistakes."""

import dataclasses
from typing import Dict, List, Optional, Tuple

import numpy as np

from mlpx.checks.numeric import fmt, relative_distance
from mlpx.doctor.context import Context
from mlpx.doctor.measure import ArrayMeasurement
from mlpx.doctor.probes.comparison import Verdict, fit, relative_error, rescue_kinks, stacked, vectors
from mlpx.doctor.probes.sources import Source
from mlpx.doctor.structure import is_bias
from mlpx.doctor.twin import Twin, fit_twin, mistakes

Arrays = Dict[str, np.ndarray]
_LOSS_WORDS = {"cross_entropy": "cross-entropy", "bce": "binary cross-entropy", "mse": "squared error"}


def judge(ctx, net, array, m: ArrayMeasurement, g: np.ndarray, x, y, limits, l2_on: bool) -> Verdict:
    if not np.all(np.isfinite(g)):
        return Verdict(m.name, float("inf"), None, shape_note="the gradient has nan or inf entries")
    l2g = ctx.math.l2_gradient(net, m.name, m.value)
    error = relative_error(m, g, l2g if l2_on else None)
    if error > limits.gradient:
        rescued = dataclasses.replace(m, directions=list(m.directions), entries=list(m.entries))
        rescue_kinks(ctx, net, array, rescued, g, x, y, l2g if l2_on else None, limits.gradient)
        error = relative_error(rescued, g, l2g if l2_on else None)
    if error <= limits.gradient:
        return Verdict(m.name, error, "ok")
    verdict = Verdict(m.name, error)
    _fingerprint(ctx, m, g, l2g, l2_on, verdict, limits)
    return verdict


def _fingerprint(ctx: Context, m: ArrayMeasurement, g, l2g, l2_on: bool, verdict: Verdict, limits) -> None:
    n = len(ctx.batch()[0])
    bias = is_bias(m.name, m.value)
    mean = ctx.subject.objective.reduction == "mean"
    flat = g.ravel()
    truth = np.abs(m.true(m.entries)).max(initial=0.0)
    layers = ctx.facts.get("layers") or []
    output_bias = bool(layers) and m.name in layers[-1][1:] and ctx.facts.get("softmax_outputs")
    # (with as many records as classes a sum over the wrong axis is zero too: the twin tells them apart)
    if bias and output_bias and truth and np.abs(flat).max() <= 1e-9 * truth and n != flat.size:
        # a softmax delta sums to zero over the classes: collapsed to its sum, this bias gets 0
        verdict.kind = "bias-grad-collapsed-to-scalar"
        verdict.shape_note = (
            "its gradient is zero, so this bias never moves: the output delta summed over every axis is 0, "
            "since each record's softmax delta sums to zero over the classes"
        )
        return
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
        c, t = stacked(m, g, penal, variant)
        fits[variant] = fit(c, t)
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
    for c, t in vectors(m, g, None):
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
    (_, _), (ce, te) = vectors(m, g, l2g)
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
        if judge(ctx, net, arrays[name], m, g, x, y, limits, name in penalised).wrong:
            return None
    ctx.facts["twin"] = twin
    ctx.facts["twin_gradient"] = right
    return twin


def name_by_twin(ctx, net, arrays, measured, source: Source, verdicts, x, y, penalised, limits) -> None:
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


def name_dropout(ctx: Context, wrong: List[Verdict]) -> None:
    """A network that draws masks from np.random with an unexplained wrong gradient: the backward
    pass most likely ignores the mask."""
    if not ctx.facts.get("uses_global_random"):
        return
    for v in wrong:
        if v.kind is None:
            v.kind = "dropout-mask-missing-in-backward"
            v.shape_note += "; forward draws random masks (dropout) that the backward pass does not follow"


def overwritten_biases(verdicts: List[Verdict]) -> None:
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
