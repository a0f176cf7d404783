"""Probe ``stress``: inputs multiplied by 1000 (then by 1e5, for networks whose logits grow
slowly) keep the outputs, the gradients and the reported loss finite: a softmax without max
subtraction overflows, a log of an exact 0 is inf."""

import copy

import numpy as np

from mlpx.doctor.context import Context
from mlpx.doctor.report import Finding
from mlpx.doctor.subject import CodeError, as_number

#: input scales tried in order; the first that shows a problem ends the probe
FACTORS = (1e3, 1e5)


def probe_stress(ctx: Context) -> None:
    for factor in FACTORS:
        if _stress(ctx, factor):
            return
    _large_logits(ctx)


#: every array multiplied by this: large logits even where inputs cannot make them (sigmoid layers)
LOGIT_FACTOR = 1000.0


def _large_logits(ctx: Context) -> None:
    """A softmax must stay finite for any logits: with every array scaled up, the logits are
    huge whatever the hidden layers saturate at. Judged only for softmax outputs, where a
    non-finite result can only be the softmax's exp."""
    if not ctx.facts.get("softmax_outputs"):
        return
    subject = ctx.subject
    net = subject.fresh()
    for array in subject.arrays(net).values():
        array *= LOGIT_FACTOR
    n = subject.check_batch or len(ctx.x)
    probs = subject.forward(net, ctx.x[:n])
    if not np.all(np.isfinite(probs)):
        ctx.add(
            Finding(
                "stress",
                "error",
                f"with every array x{LOGIT_FACTOR:g} (logits in the thousands), "
                "forward returns nan or inf: exp of large logits overflows",
                kind="softmax-overflow-no-max-subtraction",
            )
        )


def _stress(ctx: Context, factor: float) -> bool:
    """Probe at inputs x ``factor``; True when something was reported."""
    subject = ctx.subject
    net = subject.fresh()
    n = ctx.subject.check_batch or len(ctx.x)
    x, y = ctx.x[:n], ctx.y[:n]  # the inputs as given, not the probing batch scaled down
    big = (x * factor).astype(x.dtype)
    probs = subject.forward(net, big)
    if not np.all(np.isfinite(probs)):
        softmax = ctx.facts.get("softmax_outputs", False)
        message = f"with inputs x{factor:g}, forward returns nan or inf"
        if softmax:
            message += ": exp of large logits overflows"
        kind = "softmax-overflow-no-max-subtraction" if softmax else "non-finite-at-large-inputs"
        ctx.add(Finding("stress", "error", message, kind=kind))
        return True
    problems = list(_training_calls(ctx, net, big, y))
    extremes = int(((probs == 0) | (probs == 1)).sum())
    for message, names in problems:
        if extremes:  # Y / P or log(1 - P) of a probability that is exactly 0 or 1
            message += (
                f"; {extremes} outputs are exactly 0 or 1, and the code divides by or takes the log of them"
            )
        ctx.add(
            Finding(
                "stress",
                "error",
                f"with inputs x{factor:g} (outputs finite): {message}",
                params=tuple(names),
                kind="log-of-zero" if extremes else "non-finite-at-large-inputs",
            )
        )
    return bool(problems) or _loss(ctx, net, big, y, probs, factor)


def _training_calls(ctx: Context, net, big: np.ndarray, y: np.ndarray):
    subject = ctx.subject
    if subject.gradients_fn is not None:
        try:
            grads = subject.call("gradients", subject.gradients_fn, copy.deepcopy(net), big, y.copy())
            bad = [k for k, g in dict(grads).items() if not np.all(np.isfinite(np.asarray(g, dtype=float)))]
            if bad:
                yield f"gradients are nan or inf for {', '.join(map(str, bad))}", bad
        except (CodeError, TypeError, ValueError):
            pass
    if subject.update_fn is not None:
        try:
            twin = subject.step(copy.deepcopy(net), "update", subject.update_fn, big, y.copy())
            bad = [k for k, a in subject.arrays(twin).items() if not np.all(np.isfinite(a))]
            if bad:
                yield f"update leaves nan or inf in {', '.join(bad)}", bad
        except CodeError:
            pass


def _loss(ctx: Context, net, big: np.ndarray, y: np.ndarray, probs: np.ndarray, factor: float) -> bool:
    subject = ctx.subject
    if subject.loss_fn is None:
        return False
    try:
        value = as_number(subject.call("loss", subject.loss_fn, net, big, y.copy()))
    except (CodeError, TypeError, ValueError):
        return False
    if np.isfinite(value):
        return False
    zeros = int((probs == 0).sum())
    ctx.add(
        Finding(
            "loss",
            "error",
            f"with inputs x{factor:g} the reported loss is {value} while forward's "
            f"outputs are finite ({zeros} of them exactly 0): the loss takes log of 0",
            kind="log-of-zero",
            measured={"zeros": zeros},
        )
    )
    return True
