"""Probe ``state``: a second call must agree with the first when nothing changed.

``gradients`` called twice on the same network and batch returns the same arrays (twice the
first is an accumulator never reset), leaves the arrays it returned the first time alone and
changes no parameter. ``update`` twice is compared with one update from a fresh network set to
the first step's parameters: the difference is state the code carried over (an accumulator
never reset is a whole first gradient; momentum a fraction of it, which is not a bug).
"""

import numpy as np

from mlpx.checks.numeric import fmt, relative_distance
from mlpx.doctor.context import Context
from mlpx.doctor.report import Finding
from mlpx.doctor.subject import CodeError
from mlpx.doctor.thresholds import thresholds


def probe_state(ctx: Context) -> None:
    if ctx.subject.random_forward and ctx.subject.seed is None:
        ctx.facts.setdefault("skipped", {})["state"] = "the code is random and no seed was given"
        return
    if ctx.subject.gradients_fn is not None:
        _gradients_twice(ctx)
    if ctx.subject.update_fn is not None:
        _update_twice(ctx)


def _as_arrays(got) -> dict:
    return {str(k): np.asarray(v, dtype=np.float64) for k, v in dict(got).items()}


def _gradients_twice(ctx: Context) -> None:
    subject = ctx.subject
    limits = thresholds(ctx.dtype)
    net = subject.fresh()
    x, y = ctx.batch()
    before = subject.copies(net)
    try:
        first_live = subject.call("gradients", subject.gradients_fn, net, x.copy(), y.copy())
        first = {k: v.copy() for k, v in _as_arrays(first_live).items()}
        second = _as_arrays(subject.call("gradients", subject.gradients_fn, net, x.copy(), y.copy()))
    except (CodeError, TypeError, ValueError):
        return  # the gradient probe reports it
    moved = [k for k, v in subject.copies(net).items() if k in before and not np.array_equal(v, before[k])]
    if moved:
        ctx.add(
            Finding(
                "state",
                "error",
                f"gradients(net, X, Y) changed the arrays {', '.join(moved)}: "
                "computing a gradient must not train",
                params=moved,
                kind="in-place-update-aliasing",
            )
        )
        return
    aliased = [
        k
        for k, v in dict(first_live).items()
        if str(k) in first and isinstance(v, np.ndarray) and not np.array_equal(v, first[str(k)])
    ]
    accumulated, differ = [], []
    for name, g1 in first.items():
        g2 = second.get(name)
        if g2 is None or g2.shape != g1.shape:
            continue
        if relative_distance(g1, g2) <= limits.repeat * 1e3:
            continue
        if np.any(g1) and relative_distance(g2, 2 * g1) <= 1e-6:
            accumulated.append(name)
        else:
            differ.append(name)
    if accumulated:
        ctx.add(
            Finding(
                "state",
                "error",
                f"a second gradients() call on the same network and batch returns "
                f"twice the first for {', '.join(accumulated)}: the accumulators are never reset",
                params=accumulated,
                kind="gradients-not-reset-between-steps",
            )
        )
    if differ:
        ctx.add(
            Finding(
                "state",
                "error",
                f"a second gradients() call on the same network and batch returns "
                f"other values for {', '.join(differ)}",
                params=differ,
            )
        )
    if aliased and not accumulated:
        ctx.add(
            Finding(
                "state",
                "warning",
                f"the arrays gradients() returned for {', '.join(aliased)} changed "
                "during the next call: they are internal buffers reused between calls; copy them if "
                "you keep them",
                params=aliased,
                kind="in-place-update-aliasing",
            )
        )


def _update_twice(ctx: Context) -> None:
    subject = ctx.subject
    limits = thresholds(ctx.dtype)
    x, y = ctx.batch()
    try:
        net = subject.fresh()
        start = subject.copies(net)
        lr = subject.learning_rate(net)  # read before every step: a schedule may change it
        net = subject.step(net, "update", subject.update_fn, x.copy(), y.copy())
        middle = subject.copies(net)
        lr_second = subject.learning_rate(net)
        net = subject.step(net, "update", subject.update_fn, x.copy(), y.copy())
        end = subject.copies(net)
        fresh = subject.fresh()
        for name, array in subject.arrays(fresh).items():
            array[...] = middle[name]
        lr_alone = subject.learning_rate(fresh)
        fresh = subject.step(fresh, "update", subject.update_fn, x.copy(), y.copy())
        alone = subject.copies(fresh)
    except (CodeError, ValueError, KeyError):
        return
    if not (lr and lr_second and lr_alone):
        return
    accumulated, carried, differ = [], {}, []
    for name in start:
        if middle[name].shape != start[name].shape or end[name].shape != middle[name].shape:
            continue
        g1 = (start[name] - middle[name]) / lr
        g2 = (middle[name] - end[name]) / lr_second
        g2_alone = (middle[name] - alone[name]) / lr_alone
        if relative_distance(g2, g2_alone) <= max(limits.repeat * 1e3, 1e-6):
            continue
        extra = g2 - g2_alone
        if not np.any(g1):
            differ.append(name)
            continue
        share = float(np.vdot(extra, g1) / np.vdot(g1, g1))
        fits = relative_distance(extra, share * g1) <= 1e-3
        if fits and abs(share - 1) <= 0.02:
            accumulated.append(name)
        elif fits and 0 < share < 1:
            carried[name] = share
        else:
            differ.append(name)
    if accumulated:
        ctx.add(
            Finding(
                "state",
                "error",
                f"the second update's step for {', '.join(accumulated)} is its own "
                "gradient plus the whole first one: the gradient accumulators are never reset",
                params=accumulated,
                kind="gradients-not-reset-between-steps",
            )
        )
    if carried:
        share = np.median(list(carried.values()))
        ctx.add(
            Finding(
                "state",
                "warning",
                f"update carries {fmt(share)} of the previous step into the next "
                f"for {', '.join(carried)} (momentum inside update): the gradient is inferred from the "
                "first step only",
                params=tuple(carried),
            )
        )
    if differ:
        ctx.add(
            Finding(
                "state",
                "error",
                f"a second update depends on more than the arrays' values for "
                f"{', '.join(differ)}: the code keeps state between steps that changes the result",
                params=differ,
            )
        )
