"""Probe ``stress``: inputs multiplied by 1000 keep the outputs, the gradients and the reported
loss finite (a softmax without max subtraction overflows; a log of an exact 0 is inf)."""

import copy

import numpy as np

from mlpx.doctor.context import Context
from mlpx.doctor.report import Finding
from mlpx.doctor.subject import CodeError

FACTOR = 1000.0


def probe_stress(ctx: Context) -> None:
    subject = ctx.subject
    net = subject.fresh()
    x, y = ctx.batch()
    big = (x * FACTOR).astype(x.dtype)
    probs = subject.forward(net, big)
    if not np.all(np.isfinite(probs)):
        softmax = ctx.facts.get("softmax_outputs", False)
        ctx.add(
            Finding(
                "stress",
                "error",
                f"with inputs x{FACTOR:g}, forward returns nan or inf"
                + (": exp of large logits overflows" if softmax else ""),
                kind="softmax-overflow-no-max-subtraction" if softmax else "non-finite-at-large-inputs",
            )
        )
        return
    problems = []
    if subject.gradients_fn is not None:
        try:
            grads = subject.call("gradients", subject.gradients_fn, copy.deepcopy(net), big, y.copy())
            bad = [k for k, g in dict(grads).items() if not np.all(np.isfinite(np.asarray(g, dtype=float)))]
            if bad:
                problems.append((f"gradients are nan or inf for {', '.join(map(str, bad))}", bad))
        except (CodeError, TypeError, ValueError):
            pass
    if subject.update_fn is not None:
        twin = copy.deepcopy(net)
        try:
            twin = subject.step(twin, "update", subject.update_fn, big, y.copy())
            bad = [k for k, a in subject.arrays(twin).items() if not np.all(np.isfinite(a))]
            if bad:
                problems.append((f"update leaves nan or inf in {', '.join(bad)}", bad))
        except CodeError:
            pass
    for message, names in problems:
        ctx.add(
            Finding(
                "stress",
                "error",
                f"with inputs x{FACTOR:g} (outputs finite): {message}",
                params=tuple(names),
                kind="non-finite-at-large-inputs",
            )
        )
    if subject.loss_fn is not None:
        try:
            value = float(subject.call("loss", subject.loss_fn, net, big, y.copy()))
        except (CodeError, TypeError, ValueError):
            return
        if not np.isfinite(value):
            zeros = int((probs == 0).sum())
            ctx.add(
                Finding(
                    "loss",
                    "error",
                    f"with inputs x{FACTOR:g} the reported loss is {value} while forward's "
                    f"outputs are finite ({zeros} of them exactly 0): the loss takes log of 0",
                    kind="log-of-zero",
                    measured={"zeros": zeros},
                )
            )
