"""Probe ``training``: the code's own loop on a task that is easy to learn (or the given data).

It must bring the cross-entropy of forward's probabilities down. When it does not, the reason
is told when it can be: the loss exploded or went nan (the learning rate, when the gradients are
right), the first steps moved the weights by more than their own size, units stayed identical.
A slow but steady descent is not a bug.
"""

import math
import time

import numpy as np

from mlpx.checks.numeric import fmt
from mlpx.doctor import stepping
from mlpx.doctor.context import Context
from mlpx.doctor.objective import per_record
from mlpx.doctor.report import Finding
from mlpx.doctor.subject import CodeError

EPOCHS = 30
BUDGET_SECONDS = 2.5
#: records of the single step whose direction tells climbing from overshooting
UPHILL_RECORDS = 8
#: the fall of cross-entropy (fraction of its start) that counts as learning
LEARNED = 0.25


def _cross_entropy(ctx: Context, net, x, y) -> tuple:
    probs = ctx.subject.forward(net, x)
    if not np.all(np.isfinite(probs)):
        return float("nan"), 0.0
    p = probs / np.clip(probs.sum(axis=1, keepdims=True), 1e-300, None)
    ce = float(per_record("cross_entropy", p, y).mean())
    return ce, float(np.mean(probs.argmax(axis=1) == y.argmax(axis=1)))


def probe_training(ctx: Context) -> None:
    subject = ctx.subject
    if not stepping.can_train(subject):
        ctx.facts.setdefault("skipped", {})["training"] = "no train_epoch, update, optimizer or gradients+lr"
        return
    x, y = ctx.train if ctx.train is not None else (ctx.x, ctx.y)
    net = subject.fresh()
    start_norms = {k: float(np.linalg.norm(v)) for k, v in subject.copies(net).items()}
    ce0, acc0 = _cross_entropy(ctx, net, x, y)
    history = [(ce0, acc0)]
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    jump = 0.0
    try:
        for number in range(EPOCHS):
            net = stepping.epoch(subject, net, x, y, number, rng)
            if number == 0:
                first = subject.copies(net)
                jump = max(
                    (float(np.linalg.norm(first[k])) / v for k, v in start_norms.items() if v > 0),
                    default=0.0,
                )
            history.append(_cross_entropy(ctx, net, x, y))
            ce, acc = history[-1]
            if not math.isfinite(ce) or acc >= 0.97 or time.perf_counter() - started > BUDGET_SECONDS:
                break
    except CodeError as error:
        ctx.add(Finding("training", "error", str(error), kind="code-raised", where=error.where))
        return
    ctx.facts["training_history"] = history
    ctx.facts["trained_net"] = net
    _judge(ctx, history, jump, lambda: _uphill(ctx, x, y))


def _uphill(ctx: Context, x, y) -> float:
    """The objective's slope at a fresh network along one step of the code's own training on
    a few records (> 0: the code climbs).

    A step of gradient descent points downhill at its start however large the learning rate:
    a positive slope tells a sign mistake from a learning rate that only overshoots."""
    subject = ctx.subject
    x, y = x[:UPHILL_RECORDS], y[:UPHILL_RECORDS]
    try:
        net = subject.fresh()
        start = subject.copies(net)
        if subject.train_epoch is not None and not (subject.update_fn or subject.optimizer):
            net = stepping.epoch(subject, net, x, y, 0, np.random.default_rng(0))
        else:
            net = stepping.step(subject, net, x, y)
        moved = subject.copies(net)
        net = subject.fresh()
    except CodeError:
        return 0.0
    arrays = subject.arrays(net)
    step = {k: moved[k] - start[k] for k in start if k in moved and moved[k].shape == start[k].shape}
    size = max((float(np.abs(v).max()) for v in step.values()), default=0.0)
    if not size or not math.isfinite(size):
        return 0.0
    eps = 1e-4 / size

    def objective(sign: float) -> float:
        for k, d in step.items():
            arrays[k][...] = start[k] + sign * eps * d
        return ctx.math.value(net, subject.forward(net, x), y, subject.copies(net))

    try:
        return (objective(1.0) - objective(-1.0)) / (2 * eps)
    finally:
        for k in step:
            arrays[k][...] = start[k]


def _judge(ctx: Context, history, jump: float, uphill) -> None:
    ce0, _ = history[0]
    ce, acc = history[-1]
    chance = 1.0 / ctx.n_classes
    checked = "gradient_ok" in ctx.facts or "optimizer_ok" in ctx.facts
    gradient_ok = ctx.facts.get("gradient_ok", True) and ctx.facts.get("optimizer_ok", True)
    summary = f"cross-entropy {fmt(ce0)} -> {fmt(ce)}, accuracy {fmt(acc)} after {len(history) - 1} epochs"
    finite = [c for c, _ in history if math.isfinite(c)]
    if math.isfinite(ce) and (ce <= (1 - LEARNED) * ce0 or acc >= min(0.9, chance + 0.5)):
        return
    if not math.isfinite(ce) or max(finite) > 3 * ce0 or jump > 10:
        slope = uphill() if gradient_ok else 0.0
        if slope > 0:
            ctx.add(
                Finding(
                    "training",
                    "error",
                    f"the code's own training diverges on an easy task ({summary}): its first epoch "
                    f"moved the arrays uphill (the objective's slope along the step is +{fmt(slope)})",
                    kind="gradient-ascent-sign-error",
                    measured={"history": [c for c, _ in history], "slope": slope},
                )
            )
        elif gradient_ok:
            why = (
                "the loss went to nan/inf"
                if not math.isfinite(ce)
                else f"the first epoch grew the weights {fmt(jump)}-fold"
                if jump > 10
                else "the loss rose far above its start"
            )
            ctx.add(
                Finding(
                    "training",
                    "error",
                    f"the code's own training diverges on an easy task ({summary}): {why}, "
                    + ("while the gradients are right" if checked else "though each step starts downhill"),
                    kind="learning-rate-too-large",
                    measured={"history": [c for c, _ in history]},
                )
            )
        else:
            ctx.add(
                Finding(
                    "training",
                    "error",
                    f"the code's own training diverges on an easy task ({summary}); "
                    "see the gradient and optimizer findings",
                    kind=None,
                )
            )
        return
    if ctx.by_symmetry():
        return
    severity = "warning" if gradient_ok else "error"
    reason = (
        ("the gradients are right" if checked else "the gradients were not checked")
        + ": the learning rate may be too small for this many steps"
        if gradient_ok
        else "see the gradient and optimizer findings"
    )
    ctx.add(
        Finding(
            "training",
            severity,
            f"the code's own training barely learns an easy task ({summary}): {reason}",
            kind="stuck-at-chance" if acc <= chance + 0.1 else None,
        )
    )
