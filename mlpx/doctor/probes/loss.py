"""Probe ``loss``: the loss the code reports against the stated objective on the same outputs.

The ratio tells the mistake: 1/C is a loss divided by the number of classes (``len(pred)`` of
one record), n or 1/n a sum where the objective is a mean (or the reverse).
"""

import numpy as np

from mlpx.checks.numeric import fmt
from mlpx.doctor.context import Context
from mlpx.doctor.objective import per_record
from mlpx.doctor.report import Finding
from mlpx.doctor.subject import CodeError, as_number
from mlpx.doctor.thresholds import thresholds


def probe_loss(ctx: Context) -> None:
    subject = ctx.subject
    if subject.loss_fn is None:
        ctx.facts.setdefault("skipped", {})["loss"] = "no loss= given"
        return
    limits = thresholds(ctx.dtype)
    net = subject.fresh()
    verdicts = []
    probing, _ = ctx.batch(len(ctx.x))
    for n in sorted({len(ctx.x), 1}, reverse=True):
        x, y = probing[:n], ctx.y[:n]
        try:
            reported = as_number(subject.call("loss", subject.loss_fn, net, x.copy(), y.copy()))
        except CodeError as error:
            ctx.add(Finding("loss", "error", str(error), kind="code-raised", where=error.where))
            return
        except (TypeError, ValueError) as error:
            ctx.add(Finding("loss", "error", f"loss(net, X, Y) did not return a number: {error}"))
            return
        probs = subject.forward(net, x)
        expected = ctx.math.value(net, probs, y, subject.copies(net))
        data_only = ctx.math.data_term(probs, y)
        verdicts.append((n, reported, expected, data_only, probs, y))
    for n, reported, expected, data_only, probs, y in verdicts:
        if not np.isfinite(reported):
            zeros = int((probs == 0).sum())
            ctx.add(
                Finding(
                    "loss",
                    "error",
                    f"the reported loss is {reported} on ordinary inputs"
                    + (
                        f" ({zeros} outputs are exactly 0: log of 0)"
                        if zeros
                        else " although no output is 0: the probabilities were changed in place before "
                        "the log (e.g. dscores = probs; dscores[range(n), y] -= 1)"
                    ),
                    kind="log-of-zero" if zeros else "in-place-update-aliasing",
                )
            )
            return
        if _close(reported, expected, limits.loss) or _clipped_log_matches(
            ctx, reported, expected, probs, y, limits
        ):
            continue
        if ctx.math.objective.l2 is not None and _close(reported, data_only, limits.loss):
            ctx.add(
                Finding(
                    "loss",
                    "warning",
                    "the reported loss leaves out the L2 penalty of the objective "
                    f"({fmt(reported)} against {fmt(expected)} with it)",
                )
            )
            return
        ratio = reported / expected if expected else float("inf")
        kind, why = _explain(ratio, n, ctx.n_classes, ctx.subject.objective)
        if kind == "loss-wrong-value" and _from_aliased_probabilities(
            ctx, reported, expected, probs, y, limits
        ):
            kind = "in-place-update-aliasing"
            why = (
                ": it is the loss of the output delta, not of the probabilities: they were changed in place "
                "(dscores = probs; dscores[range(n), y] -= 1) before the loss was computed"
            )
        penalty = expected - data_only
        if kind == "loss-wrong-value" and penalty and data_only:
            # the data term alone may carry the mistake (a summed loss plus the right penalty)
            data_kind, data_why = _explain(
                (reported - penalty) / data_only, n, ctx.n_classes, ctx.subject.objective
            )
            if data_kind != "loss-wrong-value":
                kind, why = data_kind, f"; without the L2 penalty, {data_why.lstrip(' =:')}"
        ctx.add(
            Finding(
                "loss",
                "error",
                f"the reported loss is {fmt(reported)} where the stated objective "
                f"({ctx.subject.objective.describe()}) is {fmt(expected)} on the same outputs "
                f"({n} records): ratio {fmt(ratio)}{why}",
                kind=kind,
                measured={"reported": reported, "expected": expected, "ratio": ratio, "records": n},
            )
        )
        return


#: the epsilons hand-written losses clip probabilities at, or add inside the log
CLIP_EPSILONS = (1e-15, 1e-12, 1e-10, 1e-9, 1e-8, 1e-7, 1e-6, 1e-5)


def _clipped_log_matches(ctx: Context, reported: float, expected: float, probs, y, limits) -> bool:
    """Whether the reported loss is the objective with a clipped log (max(p, eps) or p + eps)."""
    o = ctx.subject.objective
    if o.loss == "mse":
        return False
    penalty = expected - ctx.math.data_term(probs, y)
    for eps in CLIP_EPSILONS:
        for clipped in (np.clip(probs, eps, 1 - eps), probs + eps):
            values = per_record(o.loss, clipped, y, o.scale)
            value = float(values.mean() if o.reduction == "mean" else values.sum()) + penalty
            if _close(reported, value, limits.loss):
                return True
    return False


def _from_aliased_probabilities(ctx: Context, reported: float, expected: float, probs, y, limits) -> bool:
    """Whether the reported loss is the objective on P - Y (or (P - Y) / n): the probabilities
    turned into the output delta in place before the loss was taken of them."""
    o = ctx.subject.objective
    penalty = expected - ctx.math.data_term(probs, y)
    for delta in (np.abs(probs - y), np.abs(probs - y) / len(probs)):
        with np.errstate(all="ignore"):
            values = per_record(o.loss, delta, y, o.scale)
            value = float(values.mean() if o.reduction == "mean" else values.sum()) + penalty
        if np.isfinite(value) and _close(reported, value, limits.loss):
            return True
    return False


def _close(a: float, b: float, tol: float) -> bool:
    return abs(a - b) <= tol * max(abs(a), abs(b), 1e-12)


def _explain(ratio: float, n: int, n_classes: int, objective) -> tuple:
    def near(target: float) -> bool:
        return abs(ratio - target) <= 0.01 * abs(target)

    mean = objective.reduction == "mean"
    if near(1 / n_classes):
        return "loss-divided-by-num-classes", f" = 1/{n_classes}, one over the number of classes"
    if n > 1 and mean and near(1 / (n_classes)) or n > 1 and near(1 / (n * n_classes)) and not mean:
        return "loss-divided-by-num-classes", " (the mean over records and classes)"
    if n > 1 and mean and near(n):
        return "loss-not-averaged", f" = the batch size {n}: the loss is summed, not averaged"
    if n > 1 and not mean and near(1 / n):
        return "loss-not-averaged", f" = 1/{n}: the loss is averaged while the objective states a sum"
    if near(-1):
        return "loss-wrong-value", ": the sign is flipped"
    if objective.loss == "mse" and (near(2) or near(0.5)):
        return (
            "loss-wrong-value",
            f": the factor in front of the squares differs (objective scale {objective.scale:g})",
        )
    return "loss-wrong-value", ""
