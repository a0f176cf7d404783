"""Probe ``forward``: the outputs are probabilities of the right shape, the same on a second
call, and each record's row depends on that record only.

A softmax that takes one max and one sum over the whole batch (code written for one vector,
then called on a batch) makes the batch sum to 1 instead of each row; one over the wrong axis
makes the columns sum to 1. Either way the gradient probe then calls forward record by record.
"""

import numpy as np

from mlpx.checks.tolerances import Tolerances
from mlpx.doctor.context import Context
from mlpx.doctor.report import Finding
from mlpx.doctor.subject import as_outputs
from mlpx.doctor.thresholds import thresholds


def probe_forward(ctx: Context) -> None:
    subject = ctx.subject
    limits = thresholds(ctx.dtype)
    net = subject.fresh()
    x = ctx.x
    original = x.copy()
    raw = subject.call("forward", subject.forward_fn, net, x)
    if not np.array_equal(x, original):
        ctx.add(
            Finding(
                "forward", "error", "forward(net, X) modified X in place", kind="inputs-modified-in-place"
            )
        )
        x[...] = original
    probs = as_outputs(raw, len(x))
    n, c = len(x), ctx.n_classes
    if probs.shape != (n, c):
        ctx.add(
            Finding(
                "forward",
                "error",
                f"forward(net, X) returned shape {probs.shape} for X of shape "
                f"{x.shape}: it must return (n, C) = ({n}, {c}); transpose column vectors in the adapter",
                kind="shape-mismatch",
            )
        )
        ctx.facts["forward_broken"] = True
        return
    if not np.all(np.isfinite(probs)):
        ctx.add(
            Finding(
                "forward",
                "error",
                "forward returned nan or inf on ordinary inputs",
                kind="non-finite-at-large-inputs",
            )
        )
        ctx.facts["forward_broken"] = True
        return
    again = subject.forward(net, x)
    if not np.allclose(again, probs, rtol=limits.repeat, atol=0):
        subject.random_forward = True
        if subject.seed is None:
            ctx.add(
                Finding(
                    "forward",
                    "warning",
                    "forward gives different outputs on two calls (dropout or "
                    "noise drawn from np.random?) and no seed was given: the gradient checks cannot "
                    "compare like with like; pass seed=0 so every call sees the same masks",
                )
            )
            ctx.facts["skip_gradient"] = "forward is random and no seed was given"
        else:
            ctx.add(
                Finding(
                    "forward",
                    "warning",
                    "forward gives different outputs on two calls even after "
                    "reseeding np.random and random: it draws from another generator, so gradient "
                    "checks compare different masks",
                )
            )
            ctx.facts["skip_gradient"] = "forward is random even after reseeding"
    if subject.seed is not None and not subject.random_forward:
        ctx.facts["uses_global_random"] = _draws_from_global_random(subject, net, x, probs)
    _probabilities(ctx, probs, ctx.tol)
    if not ctx.facts.get("uses_global_random"):  # masks drawn per batch differ alone and in a batch
        _independence(ctx, net, x, probs, limits)


def _draws_from_global_random(subject, net, x: np.ndarray, probs: np.ndarray) -> bool:
    """Whether forward's output changes with the seed of np.random (dropout masks)."""
    seed = subject.seed
    try:
        subject.seed = seed + 1
        other = subject.forward(net, x)
    finally:
        subject.seed = seed
    return not np.array_equal(other, probs)


def _probabilities(ctx: Context, probs: np.ndarray, tol: Tolerances) -> None:
    loss = ctx.subject.objective.loss
    rows = np.abs(probs.sum(axis=1) - 1).max()
    ctx.facts["softmax_outputs"] = bool(rows <= 1e3 * tol.probs_sum)
    low, high = probs.min(), probs.max()
    if low < -tol.probs_sum or high > 1 + tol.probs_sum:
        ctx.add(
            Finding(
                "forward",
                "error",
                f"forward's outputs range over [{low:.3g}, {high:.3g}]: "
                "probabilities lie in [0, 1] (forward must return softmax or sigmoid outputs, not logits)",
                kind="probabilities-not-normalized",
                measured={"min": low, "max": high},
            )
        )
        return
    if loss == "cross_entropy" and rows > 1e3 * tol.probs_sum and not _batch_normalised(probs, tol):
        ctx.add(
            Finding(
                "forward",
                "error",
                f"rows of forward's outputs sum to {probs.sum(axis=1).min():.3g} .. "
                f"{probs.sum(axis=1).max():.3g}, not 1: cross-entropy needs a softmax over the classes",
                kind="probabilities-not-normalized",
                measured={"max_row_sum_error": rows},
            )
        )


def _batch_normalised(probs: np.ndarray, tol: Tolerances) -> bool:
    return abs(probs.sum() - 1) <= 1e3 * tol.probs_sum or bool(
        np.abs(probs.sum(axis=0) - 1).max() <= 1e3 * tol.probs_sum
    )


def _independence(ctx: Context, net, x: np.ndarray, probs: np.ndarray, limits) -> None:
    subject = ctx.subject
    singles = np.concatenate(
        [
            np.asarray(
                subject.call("forward", subject.forward_fn, net, x[i : i + 1]), dtype=np.float64
            ).reshape(1, -1)
            for i in range(len(x))
        ]
    )
    scale = max(np.abs(singles).max(), 1e-300)
    gap = float(np.abs(singles - probs).max() / scale) if singles.shape == probs.shape else float("inf")
    if gap <= max(limits.independence, 1e2 * float(np.finfo(ctx.dtype).eps)):
        return
    subject.batch_dependent = True
    whole = abs(probs.sum() - 1) <= 1e-3
    columns = np.abs(probs.sum(axis=0) - 1).max() <= 1e-3
    if whole:
        kind, how = "softmax-wrong-for-batch", "the whole batch sums to 1, not each row"
    elif columns:
        kind, how = "softmax-wrong-axis", "each column (class) sums to 1 over the batch, not each row"
    else:
        kind, how = (
            "rows-depend-on-each-other",
            "a record's output changes with the other records of the batch",
        )
    ctx.add(
        Finding(
            "forward",
            "error",
            f"forward's output for a record differs alone and within a batch "
            f"(relative difference {gap:.3g}): {how}. Later checks call forward one record at a time.",
            kind=kind,
            measured={"difference": gap},
        )
    )
