"""Probe ``data``: the code's preprocessing scales pixels, and its label encoding puts one 1 at
each record's class."""

import numpy as np

from mlpx.doctor.context import Context, prototype_pixels
from mlpx.doctor.report import Finding
from mlpx.doctor.subject import CodeError

#: inputs larger than this (in absolute value) are unscaled pixels
MAX_INPUT = 20.0


def probe_data(ctx: Context) -> None:
    subject = ctx.subject
    if ctx.user_data:
        top = float(np.max(np.abs(ctx.x)))
        if top > MAX_INPUT and not _looks_like_pixels(ctx.x):
            ctx.add(
                Finding(
                    "data",
                    "warning",
                    f"the inputs given in data= reach {top:g}: large inputs slow "
                    "training and saturate units; standardising them usually helps",
                )
            )
        elif top > MAX_INPUT:
            ctx.add(
                Finding(
                    "data",
                    "error",
                    f"the inputs given in data= reach {top:g}: pixels are not scaled",
                    kind="inputs-not-normalized",
                    measured={"max_input": top},
                )
            )
    if subject.prepare_inputs is not None:
        pixels = (
            ctx.pixels
            if ctx.pixels is not None
            else prototype_pixels(
                np.arange(ctx.n_classes), ctx.n_features, ctx.n_classes, np.random.default_rng(0)
            )
        )
        try:
            x = np.asarray(
                subject.call("prepare_inputs", subject.prepare_inputs, pixels.copy()), dtype=np.float64
            )
        except CodeError as error:
            ctx.add(Finding("data", "error", str(error), kind="code-raised", where=error.where))
            return
        top = float(np.max(np.abs(x)))
        if top > MAX_INPUT:
            ctx.add(
                Finding(
                    "data",
                    "error",
                    f"prepare_inputs maps pixels 0..255 to values up to {top:g}: inputs are not scaled",
                    kind="inputs-not-normalized",
                    measured={"max_input": top},
                )
            )
        elif not np.all(np.isfinite(x)):
            ctx.add(Finding("data", "error", "prepare_inputs returns nan or inf"))
    if subject.encode_labels is not None:
        _labels(ctx)


def _looks_like_pixels(x: np.ndarray) -> bool:
    """Unscaled image pixels: whole numbers in 0..255."""
    x = np.asarray(x, dtype=np.float64)
    return bool(x.min() >= 0 and x.max() <= 255 and np.mean(x == np.round(x)) > 0.9)


def _labels(ctx: Context) -> None:
    subject = ctx.subject
    c = ctx.n_classes
    labels = np.array([*range(c), *range(c)][: max(c + 2, 3)], dtype=np.int64) % c
    try:
        y = subject.call("encode_labels", subject.encode_labels, labels.copy(), c)
    except CodeError as error:
        ctx.add(Finding("data", "error", str(error), kind="code-raised", where=error.where))
        return
    y = np.asarray(y, dtype=np.float64)
    n = len(labels)
    if y.ndim == 3:
        y = y.reshape(y.shape[0], -1)
    if y.shape == (c, n) and n != c:
        y = y.T
    if y.shape != (n, c):
        ctx.add(
            Finding(
                "data",
                "error",
                f"encode_labels({n} labels, {c}) returned shape {y.shape}, not ({n}, {c})",
                kind="wrong-one-hot-encoding",
            )
        )
        return
    wrong = np.flatnonzero(y.argmax(axis=1) != labels)
    top = y.max(axis=1, keepdims=True)
    several = np.flatnonzero((np.isclose(y, top)).sum(axis=1) > 1)
    if len(wrong) or len(several):
        bad = int(wrong[0]) if len(wrong) else int(several[0])
        ctx.add(
            Finding(
                "data",
                "error",
                f"encode_labels puts label {labels[bad]}'s largest target at "
                f"{np.flatnonzero(np.isclose(y[bad], y[bad].max())).tolist()}: "
                f"{len(set(wrong) | set(several))} of {n} records get the wrong class",
                kind="wrong-one-hot-encoding",
            )
        )
