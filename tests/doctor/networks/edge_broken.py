"""Broken networks in the settings of ``edge_correct``: one or two mistakes each.

``BrokenEdge`` is ``edge_correct.EdgeNet`` with mistakes switched on by name; the column-vector
class is subclassed the same way. Every label was checked with a scratch script (not committed):
central finite differences of the stated objective against ``gradients`` and against the gradient
inferred from ``update``; the labelled arrays have relative errors >= 2e-2, every other array
<= 1e-7.
"""

import numpy as np

from tests.doctor.networks import Bug, Case
from tests.doctor.networks.edge_correct import (
    ACT,
    COLUMN_KEYWORDS,
    ColumnNet,
    EdgeNet,
    eye_labels,
    objective_of,
    rashid_inputs,
    rashid_targets,
    user_data,
    zscore_batch,
)


def softmax_unshifted(z):
    e = np.exp(z)  # BUG (where switched on): no max subtraction
    return e / e.sum(axis=1, keepdims=True)


class BrokenEdge(EdgeNet):
    """``bugs``: "deriv1" | "last_only" | "bias_axis_top" | "transposed2" | "sigmoid_preact" |
    "not_averaged" | "no_shift" | "relu_mask_da" | "over_classes" | "ascent" | "decay_biases";
    ``gradients(..., aliasing_lr=lr)`` steps each layer in place while it backpropagates;
    ``l2grad``: (coef, names, factor) added to the gradient as factor * coef * W (the stated
    penalty is 0.5 * coef * |W|^2, so factor 1 is right)."""

    def __init__(self, l2grad=None, **kw):
        super().__init__(**kw)
        self.l2grad = l2grad

    def _forward(self, X):
        p, cache = super()._forward(X)
        if "no_shift" in self.bugs:
            p = softmax_unshifted(cache[f"z{self.L}"])
        return p, cache

    def report_loss(self, X, Y):
        total = super().report_loss(X, Y)
        if "over_classes" in self.bugs:
            total /= Y.shape[1]  # BUG: np.mean over n * C entries
        if self.l2grad is not None:
            coef, names, _ = self.l2grad
            total += 0.5 * coef * sum(float(np.sum(getattr(self, k) ** 2)) for k in names)
        return total

    def gradients(self, X, Y, aliasing_lr=None):
        self._check_batch(X)
        b = self.bugs
        n = len(X)
        if "last_only" in b:
            X, Y = X[-1:], Y[-1:]  # BUG: `grad = ...` inside the record loop: the last record
        p, c = self._forward(X)
        if self.loss_name == "ce":
            dz = (p - Y) / self.T
        else:  # sigmoid outputs, squared error
            dz = 2 * self.scale * (p - Y) * p * (1 - p)
        if self.reduction == "mean" and "not_averaged" not in b:
            dz = dz / n
        df = ACT[self.act][1]
        grads = {}
        for i in range(self.L, 0, -1):
            grads[f"W{i}"] = c[f"a{i - 1}"].T @ dz
            axis = 1 if ("bias_axis_top" in b and i == self.L) else 0
            grads[f"b{i}"] = dz.sum(axis=axis)  # BUG (bias_axis_top): per record, not per unit
            if aliasing_lr is not None:
                # BUG (aliasing): the layer is stepped in place before its weights carry the
                # error down to the layer below
                getattr(self, f"W{i}")[...] -= aliasing_lr * grads[f"W{i}"]
                getattr(self, f"b{i}")[...] -= aliasing_lr * grads[f"b{i}"]
            if i > 1:
                W = getattr(self, f"W{i}")
                da = dz @ (W if ("transposed2" in b and i == 2) else W.T)
                z, a = c[f"z{i - 1}"], c[f"a{i - 1}"]
                if "deriv1" in b and i == 2:
                    dz = da  # BUG: the first hidden layer's derivative left out
                elif "sigmoid_preact" in b:
                    dz = da * z * (1 - z)  # BUG: s'(z) written z (1 - z) on the pre-activation
                elif "relu_mask_da" in b and i == 2:
                    dz = da * (da > 0)  # BUG: the mask from the incoming gradient, not from z
                else:
                    dz = da * df(z, a)
        if self.l2grad is not None:
            coef, names, factor = self.l2grad
            for k in names:
                grads[k] = grads[k] + factor * coef * getattr(self, k)
        return {k: grads[k] for k in self.names()}

    def step(self, X, Y):
        if "decay_biases" in self.bugs:
            wd, _ = self.l2
            grads = self.gradients(X, Y)
            for k in self.names():
                getattr(self, k)[...] *= 1.0 - self.lr * wd  # BUG: biases decayed too
            for k, g in grads.items():
                getattr(self, k)[...] -= self.lr * g
            return
        if "ascent" in self.bugs:
            for k, g in self.gradients(X, Y).items():
                getattr(self, k)[...] += self.lr * g  # BUG: up the gradient
            return
        super().step(X, Y)


def broken(bugs, extra=None, update=True, gradients=True, l2grad=None, **kw):
    objective = objective_of(kw)
    if l2grad is not None:
        coef, names, _ = l2grad
        objective["l2"] = {"coef": coef, "params": list(names), "scale": 0.5}
    keywords = dict(
        build=lambda: BrokenEdge(bugs=bugs, l2grad=l2grad, **kw),
        forward=lambda net, X: net.forward(X),
        objective=objective,
        params=lambda net: net.params(),
        loss=lambda net, X, Y: net.report_loss(X, Y),
    )
    if gradients:
        keywords["gradients"] = lambda net, X, Y: net.gradients(X, Y)
    if update:
        keywords["update"] = lambda net, X, Y: net.step(X, Y)
        keywords["lr"] = lambda net: net.lr
    keywords.update(extra or {})
    return keywords


def raw_pixels(pixels):
    return np.asarray(pixels, dtype=np.float64)  # BUG: never scaled


def ascent_epoch(net, X, Y, epoch, batch=8):
    order = np.random.permutation(len(X))
    for s in range(0, len(X), batch):
        idx = order[s : s + batch]
        for k, g in net.gradients(X[idx], Y[idx]).items():
            getattr(net, k)[...] += net.lr * g  # BUG: p += lr * g


def aliasing_update(net, X, Y):
    net.gradients(X, Y, aliasing_lr=net.lr)


# ------------------------------------------------------------------ column vectors: scalar biases


class ColumnScalarBias(ColumnNet):
    def backprop(self, X, Yc):
        acts = self.feed(X.T)
        n = X.shape[0]
        delta = (acts[-1] - Yc) / n
        gw, gb = [None] * len(self.weights), [None] * len(self.biases)
        for i in range(len(self.weights) - 1, -1, -1):
            gw[i] = delta @ acts[i].T
            gb[i] = np.sum(delta)  # BUG: one scalar for every unit and record
            if i > 0:
                delta = (self.weights[i].T @ delta) * acts[i] * (1 - acts[i])
        return gw, gb


def rolled_column_labels(labels, n_classes):
    Yc = np.zeros((n_classes, len(labels)))
    Yc[(np.asarray(labels, dtype=int) + 1) % n_classes, np.arange(len(labels))] = 1.0  # BUG: shifted
    return Yc


ALL = ("W1", "b1", "W2", "b2", "W3", "b3")
FIRST = ("W1", "b1")
WEIGHTS = ("W1", "W2", "W3")

CASES = [
    Case(
        "edge_bk_zscore_missing_first_derivative",
        "vectorised",
        broken({"deriv1"}, {"prepare_inputs": zscore_batch, "encode_labels": eye_labels}),
        [Bug("gradient", "missing-activation-derivative", FIRST)],
    ),
    Case(
        "edge_bk_two_records_only_last",
        "vectorised",
        broken({"last_only"}, {"data": user_data(2, 20, 4, 12)}, act="relu"),
        [Bug("gradient", "only-last-sample-used", ALL)],
    ),
    Case(
        "edge_bk_exact4_bias_wrong_axis",
        "vectorised",
        # batches of exactly 4 and 4 classes: dz.sum(axis=1) has the bias's shape (and is 0:
        # every row of p - y sums to zero)
        broken({"bias_axis_top"}, {"check_batch": 4}, exact_batch=4, act="relu"),
        [Bug("gradient", "bias-grad-wrong-axis", ("b3",))],
    ),
    Case(
        "edge_bk_momentum_l2_factor_two",
        "vectorised",
        broken(set(), momentum=0.9, lr=0.05, l2grad=(0.05, WEIGHTS, 2.0)),
        [Bug("gradient", "l2-gradient-wrong-factor", WEIGHTS)],
    ),
    Case(
        "edge_bk_clip_transposed_square",
        "vectorised",
        broken({"transposed2"}, sizes=(20, 16, 16, 4), clip=100.0, act="relu"),
        [Bug("gradient", "transposed-weight-in-backward", FIRST)],
    ),
    Case(
        "edge_bk_train_epoch_only_ascent_raw_pixels",
        "vectorised",
        broken(
            set(),
            {
                "train_epoch": lambda net, X, Y, e: ascent_epoch(net, X, Y, e),
                "prepare_inputs": raw_pixels,
                "encode_labels": eye_labels,
            },
            update=False,
            gradients=False,
            lr=0.3,
        ),
        [Bug("training", "gradient-ascent-sign-error"), Bug("data", "inputs-not-normalized")],
    ),
    Case(
        "edge_bk_columns_scalar_bias_rolled_targets",
        "column-vectors",
        COLUMN_KEYWORDS | {"build": lambda: ColumnScalarBias(), "encode_labels": rolled_column_labels},
        [
            Bug("gradient", "bias-grad-collapsed-to-scalar", ("biases[0]", "biases[1]")),
            Bug("data", "wrong-one-hot-encoding"),
        ],
    ),
    Case(
        "edge_bk_rashid_sigmoid_preactivation",
        "rashid",
        broken(
            {"sigmoid_preact"},
            {"prepare_inputs": rashid_inputs, "encode_labels": rashid_targets},
            sizes=(20, 16, 4),
            lr=0.5,
            act="sigmoid",
            out="sigmoid",
            loss="mse",
        ),
        [Bug("gradient", "sigmoid-derivative-on-preactivation", FIRST)],
    ),
    Case(
        "edge_bk_float32_no_shift_not_averaged",
        "float32",
        broken({"no_shift", "not_averaged"}, wdtype=np.float32, act="relu", lr=0.01),
        [
            Bug("gradient", "gradient-not-averaged", ALL),
            Bug("stress", "softmax-overflow-no-max-subtraction"),
        ],
    ),
    Case(
        "edge_bk_update_steps_before_backprop",
        "vectorised",
        # gradients() is right; update() steps each layer in place before the error goes through it
        broken(set(), {"update": aliasing_update}, lr=0.5, init_std=0.2),
        [Bug("gradient", "in-place-update-aliasing", ("W1", "b1", "W2", "b2"))],
    ),
    Case(
        "edge_bk_dead_units_relu_mask_from_gradient",
        "vectorised",
        broken({"relu_mask_da"}, act="relu", dead=((1, 3), (2, 5))),
        [Bug("gradient", "relu-derivative-wrong-tensor", FIRST)],
    ),
    Case(
        "edge_bk_26_classes_loss_over_classes",
        "vectorised",
        broken({"over_classes"}, sizes=(30, 32, 26), act="relu", lr=0.2),
        [Bug("loss", "loss-divided-by-num-classes")],
    ),
    Case(
        "edge_bk_decoupled_wd_on_biases",
        "vectorised",
        # the objective's L2 covers the weights; the step decays the biases too (update only)
        broken({"decay_biases"}, l2=(0.05, WEIGHTS), bias_init=0.5, act="relu", gradients=False),
        [Bug("gradient", "l2-applied-to-biases", ("b1", "b2", "b3"))],
    ),
]
