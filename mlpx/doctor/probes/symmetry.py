"""Probe ``symmetry``: hidden units that start identical (zero or constant weights) get identical
gradients and stay identical: the layer is as good as one unit. Judged at initialisation, then
after a few of the code's own training steps (a zero output layer is broken by its targets; a
zero hidden layer never is)."""

from typing import Any, Dict, List, Optional

import numpy as np

from mlpx.doctor import stepping
from mlpx.doctor.context import Context
from mlpx.doctor.report import Finding
from mlpx.doctor.structure import layer_order
from mlpx.doctor.subject import CodeError

STEPS = 5


def identical_units(
    arrays: Dict[str, np.ndarray], layers: Optional[List[List[str]]], n_features: int
) -> Dict[str, int]:
    """Hidden layers' weight arrays whose units (the output side) are all identical: name -> units."""
    found = {}
    width = n_features
    for index, names in enumerate(layers or [], start=1):
        weight = np.asarray(arrays[names[0]], dtype=np.float64)
        axis = 1 if weight.shape[0] in (width, width + 1) else 0  # (in, out) rows or (out, in) columns
        width = weight.shape[axis]
        if index == len(layers):
            continue  # output units differ by their targets
        units = np.moveaxis(weight, axis, 0).reshape(weight.shape[axis], -1)
        if len(units) > 1 and np.all(np.abs(units - units[0]) <= 1e-12 * max(np.abs(units).max(), 1e-300)):
            found[names[0]] = len(units)
    return found


def probe_symmetry(ctx: Context) -> None:
    subject = ctx.subject
    net = subject.fresh()
    arrays = subject.arrays(net)
    layers = ctx.facts.get("layers") or layer_order(
        {k: np.asarray(v) for k, v in arrays.items()}, ctx.n_features, ctx.n_classes
    )
    if not layers:
        return
    ctx.facts["layers"] = layers
    at_start = identical_units(arrays, layers, ctx.n_features)
    if not at_start:
        return
    if not stepping.can_train(subject):
        ctx.add(
            Finding(
                "symmetry",
                "warning",
                f"the units of {', '.join(at_start)} start identical; give "
                "update= or gradients= so mlpx can tell whether training separates them",
                params=tuple(at_start),
                kind="zero-init-symmetry",
            )
        )
        return
    net = _train_a_little(ctx, net)
    if net is None:  # the code's own step raised: the training probe reports it
        return
    after = identical_units(subject.arrays(net), layers, ctx.n_features)
    stuck = {k: v for k, v in after.items() if k in at_start}
    if stuck:
        described = ", ".join(f"{k} ({v} units)" for k, v in stuck.items())
        ctx.add(
            Finding(
                "symmetry",
                "error",
                f"the hidden units fed by {described} start identical and are still "
                f"identical after {STEPS} training steps: each such layer acts as a single unit",
                params=tuple(stuck),
                kind="zero-init-symmetry",
            )
        )


def _train_a_little(ctx: Context, net: Any) -> Any:
    x, y = ctx.train if ctx.train is not None else (ctx.x, ctx.y)
    size = ctx.subject.check_batch or stepping.MINIBATCH
    only_epochs = ctx.subject.train_epoch is not None and not (
        ctx.subject.update_fn or ctx.subject.optimizer or ctx.subject.gradients_fn
    )
    try:
        if only_epochs:  # the code's own loop, on a few records
            for number in range(2):
                net = stepping.epoch(ctx.subject, net, x[:32], y[:32], number, np.random.default_rng(number))
            return net
        for t in range(STEPS):
            start = (t * size) % max(len(x) - size + 1, 1)
            net = stepping.step(ctx.subject, net, x[start : start + size], y[start : start + size])
    except (CodeError, ValueError, TypeError):
        return None
    return net
