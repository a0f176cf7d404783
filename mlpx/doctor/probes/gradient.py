"""Probe ``gradient``: each array's gradient, from every source the code offers, against central
differences of the stated objective through the code's own forward pass.

Sources: the explicit ``gradients(net, X, Y)``, the gradient inferred from one ``update``
((old - new) / lr), and an ``optimizer``'s ``gradients``. A wrong array is named with its
relative error and, when the evidence fits, the mistake: the gradient is a constant multiple of
the right one (sign, batch size), follows another loss or only the last record, has a constant
bias, or the L2 term is missing, mis-scaled or on the biases. Arrays are listed by layer, so an
error that starts in one layer and propagates to the layers below reads as such.

The sources live in ``sources``, the comparison with central differences in ``comparison``, the
naming of mistakes in ``fingerprints``; this module runs them and writes the findings.
"""

from typing import Dict, List, Optional

import numpy as np

from mlpx.checks.numeric import fmt, format_table
from mlpx.doctor.context import Context
from mlpx.doctor.measure import measure_arrays
from mlpx.doctor.probes.comparison import Verdict
from mlpx.doctor.probes.fingerprints import judge, name_by_twin, name_dropout, overwritten_biases
from mlpx.doctor.probes.sources import Source, call_gradients, code_gradients, inferred_from_update
from mlpx.doctor.report import Finding
from mlpx.doctor.structure import layer_of, layer_order
from mlpx.doctor.subject import CodeError
from mlpx.doctor.thresholds import thresholds

Arrays = Dict[str, np.ndarray]


def probe_gradient(ctx: Context) -> None:
    subject = ctx.subject
    net = subject.fresh()
    jittered = _jitter_zero_arrays(ctx, subject.arrays(net))
    x, y = ctx.batch()
    sources = list(code_gradients(ctx, net, x, y))
    if not sources:
        ctx.facts.setdefault("skipped", {})["gradient"] = "no gradients, update or optimizer given"
        return
    arrays = subject.arrays(net)
    ctx.facts["layers"] = layers = layer_order(
        {k: np.asarray(v) for k, v in arrays.items()}, ctx.n_features, ctx.n_classes
    )
    focus = sources[0].gradients
    if any(_gradient_draws_masks_forward_does_not(ctx, net, x, y, source) for source in sources):
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
            verdicts.append(judge(ctx, net, arrays[name], m, g, x, y, limits, name in penalised))
        wrong = [v for v in verdicts if v.wrong]
        ctx.facts.setdefault("gradient_errors", {})[source.label] = {v.name: v.error for v in verdicts}
        if wrong:
            any_wrong = True
            name_by_twin(ctx, net, arrays, measured, source, verdicts, x, y, penalised, limits)
            name_dropout(ctx, wrong)
            _report(ctx, source, verdicts, wrong, layers, measured)
    if jittered:
        ctx.facts.setdefault("notes", []).append(
            f"gradients were checked with small random values in the all-zero arrays {', '.join(jittered)} "
            "(zeros hide some mistakes)"
        )
    ctx.facts["gradient_ok"] = not any_wrong


def _gradient_draws_masks_forward_does_not(ctx: Context, net, x, y, source: "Source") -> bool:
    """A gradient (or update) that changes from one call to the next, or with the seed, while
    forward does not (forward in evaluation mode, training with dropout) cannot be compared with
    forward's differences: say so instead of calling correct code wrong."""
    subject = ctx.subject
    if ctx.facts.get("uses_global_random") or subject.random_forward or source.label == "optimizer gradients":
        return False
    seed = subject.seed
    try:
        subject.seed = None if seed is None else seed + 1
        if source.label == "gradients":
            again = call_gradients(ctx, "gradients", subject.gradients_fn, net, x, y, list(source.gradients))
        else:
            again = inferred_from_update(ctx, net, x, y)
    except CodeError:
        return False
    finally:
        subject.seed = seed
    if again is None or all(
        k in again and np.allclose(again[k], v, rtol=1e-9, atol=0) for k, v in source.gradients.items()
    ):
        return False
    what = "gradients()" if source.label == "gradients" else "update()"
    ctx.add(
        Finding(
            "gradient",
            "warning",
            f"{what} gives another result on a second call (dropout drawn from np.random?) while forward "
            "does not: the gradient cannot be checked against forward. Make forward apply the same masks "
            "(training mode) when the doctor calls it, and pass seed=",
        )
    )
    ctx.facts.setdefault("skipped", {})["gradient"] = f"{what} is random, forward is not"
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


# ---------------------------------------------------------------- the twin's fingerprints


# ---------------------------------------------------------------- findings


def _report(ctx, source: Source, verdicts: List[Verdict], wrong: List[Verdict], layers, measured) -> None:
    overwritten_biases(verdicts)
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
