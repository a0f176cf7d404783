"""Broken networks with two or three bugs at once, each in a different check.

One vectorised class whose ``gradients``, reported loss, softmax and step each carry a switchable
mistake (``BrokenNet``), a per-record accumulating class, and optimizer classes over a model with a
switchable backprop mistake. The labelled arrays were checked against central finite differences of
the stated objective (the wrong ones have relative errors >= 1e-2, the others <= 1e-8).
"""

import numpy as np

from tests.doctor.networks import Bug, Case
from tests.doctor.networks.tricky_correct import ACT, Net, _objective, log_softmax


def softmax_unshifted(z):
    e = np.exp(z)  # BUG (where switched on): no max subtraction
    return e / e.sum(axis=1, keepdims=True)


class BrokenNet(Net):
    """``Net`` with mistakes switched on by name in ``bugs``."""

    def __init__(self, bugs=(), **kw):
        super().__init__(**kw)
        self.bugs = set(bugs)

    def _forward(self, X):
        p, cache = super()._forward(X)
        if "no_shift" in self.bugs:
            p = softmax_unshifted(cache[f"z{self.L}"])
            cache["p"] = p
        return p, cache

    def report_loss(self, X, Y):
        if not self.bugs & {"over_classes", "sum", "unclipped"}:
            return super().report_loss(X, Y)
        p, _ = self._forward(X)
        if "unclipped" in self.bugs:
            per = -np.sum(Y * np.log(p), axis=1)  # BUG: 0 * log(0) = nan once p underflows
            total = per.mean()
        elif "over_classes" in self.bugs:
            total = np.mean(-Y * np.log(np.clip(p, 1e-12, 1.0)))  # BUG: mean over n * C entries
        else:
            total = -np.sum(Y * np.log(np.clip(p, 1e-12, 1.0)))  # BUG: summed over the batch
        if self.l2 is not None:
            _, names, s = self.l2
            total = total + self._coef() * s * sum(np.sum(getattr(self, k) ** 2) for k in names)
        return float(total)

    def gradients(self, X, Y):
        b = self.bugs
        p, c = self._forward(X)
        n = X.shape[0]
        if "mse_jacobian" in b:
            g = p - Y
            dz = p * (g - np.sum(g * p, axis=1, keepdims=True))  # BUG: squared error's, not CE's
        else:
            dz = p - Y
        if "not_averaged" not in b:
            dz = dz / n
        df = ACT[self.act][1]
        grads = {}
        for i in range(self.L, 0, -1):
            grads[f"W{i}"] = c[f"a{i - 1}"].T @ dz
            if self.biases:
                grads[f"b{i}"] = dz.sum() if "bias_scalar" in b else dz.sum(axis=0)
            if i > 1:
                W = getattr(self, f"W{i}")
                da = dz @ (W if ("transposed" in b and i == 2) else W.T)
                if c[f"m{i - 1}"] is not None and "dropout_mask_missing" not in b:
                    da = da * c[f"m{i - 1}"]
                z = c[f"z{i - 1}"]
                if "relu_mask_grad" in b and i == 2:
                    dz = da * (da > 0)  # BUG: the mask from the gradient, not from z1
                elif "sigmoid_preact" in b:
                    dz = da * z * (1 - z)  # BUG: s'(z) written as z (1 - z)
                elif "missing_deriv_top" in b and i == self.L:
                    dz = da  # BUG: the last hidden layer's derivative left out
                else:
                    dz = da * df(z)
        if self.l2 is not None and "l2_missing" not in b:
            _, names, s = self.l2
            for k in names:
                grads[k] = grads[k] + 2 * s * self._coef() * getattr(self, k)
            if "l2_biases" in b:
                for k in self.names():
                    if k.startswith("b"):
                        grads[k] = grads[k] + 2 * s * self._coef() * getattr(self, k)
        grads = {k: grads[k] for k in self.names()}
        if "accumulate" in b:
            if not hasattr(self, "_acc"):
                self._acc = {k: np.zeros_like(getattr(self, k)) for k in self.names()}
            for k in grads:
                self._acc[k] += grads[k]  # BUG: never zeroed between steps
            return {k: v.copy() for k, v in self._acc.items()}
        return grads

    def step(self, X, Y):
        sign = -1.0 if "ascent" in self.bugs else 1.0
        for k, g in self.gradients(X, Y).items():
            getattr(self, k)[...] += sign * -self.lr * g  # BUG (ascent): p += lr * g


def _keywords(bugs, epoch=False, **kw):
    keywords = dict(
        build=lambda: BrokenNet(bugs=bugs, **kw),
        forward=lambda net, X: net.forward(X),
        objective=_objective(kw),
        params=lambda net: net.params(),
        gradients=lambda net, X, Y: net.gradients(X, Y),
        update=lambda net, X, Y: net.step(X, Y),
        lr=lambda net: net.lr,
        loss=lambda net, X, Y: net.report_loss(X, Y),
    )
    if epoch:
        keywords["train_epoch"] = lambda net, X, Y, e: net.epoch(X, Y, e)
    if kw.get("keep_h") is not None:
        keywords["seed"] = 99
    return keywords


def raw_pixels(pixels):
    return np.asarray(pixels, dtype=np.float64)  # BUG: never / 255


def scaled(pixels):
    return np.asarray(pixels, dtype=np.float64) / 255.0


def one_based_one_hot(labels, n_classes):
    return np.eye(n_classes)[np.asarray(labels) - 1]  # BUG: labels taken as 1..C: 0 becomes C


def one_hot_ok(labels, n_classes):
    return np.eye(n_classes)[np.asarray(labels)]


# ------------------------------------------------------------------ per-record mini-batch, bias overwritten


class RecordBatch:
    """Row vectors, a per-record loop accumulating nablas, one mean step per ``train`` call."""

    def __init__(self, sizes=(12, 10, 8, 3), lr=0.2, seed=21):
        rng = np.random.default_rng(seed)
        self.weights = [rng.normal(0, np.sqrt(2.0 / a), (a, b)) for a, b in zip(sizes[:-1], sizes[1:])]
        self.biases = [rng.normal(0, 0.1, b) for b in sizes[1:]]
        self.lr = lr

    def run(self, X):
        a = X
        for i, (W, b) in enumerate(zip(self.weights, self.biases)):
            z = a @ W + b
            a = np.tanh(z) if i < len(self.weights) - 1 else z
        return np.exp(log_softmax(a))

    def train(self, X, Y):
        nw = [np.zeros_like(W) for W in self.weights]
        nb = [np.zeros_like(b) for b in self.biases]
        for x, y in zip(X, Y):
            acts = [x]
            a = x
            for i, (W, b) in enumerate(zip(self.weights, self.biases)):
                z = a @ W + b
                a = np.tanh(z) if i < len(self.weights) - 1 else z
                acts.append(a)
            e = np.exp(a - a.max())
            delta = e / e.sum() - y
            for i in range(len(self.weights) - 1, -1, -1):
                nw[i] += np.outer(acts[i], delta)
                nb[i] = delta  # BUG: overwritten by every record, not accumulated
                if i > 0:
                    delta = (delta @ self.weights[i].T) * (1 - acts[i] ** 2)
        for i in range(len(self.weights)):
            self.weights[i] -= self.lr * nw[i] / len(X)
            self.biases[i] -= self.lr * nb[i] / len(X)

    def total_cost(self, X, Y):
        return float(-np.sum(Y * np.log(np.clip(self.run(X), 1e-12, 1.0))))  # BUG: summed, not averaged


def record_params(net):
    named = {f"weights[{i}]": W for i, W in enumerate(net.weights)}
    named.update({f"biases[{i}]": b for i, b in enumerate(net.biases)})
    return named


# ------------------------------------------------------------------ optimizers over a switchable backprop


class Model:
    def __init__(self, opt, bugs=(), seed=23):
        self.net = BrokenNet(bugs=bugs, sizes=(20, 16, 8, 4), seed=seed)
        self.params = self.net.params()
        self.opt = opt(self.params)

    def backward(self, X, Y):
        self.grads = self.net.gradients(X, Y)
        return {k: g.copy() for k, g in self.grads.items()}


class AdamNoSqrt:
    def __init__(self, params, lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8):
        self.params, self.lr, self.b1, self.b2, self.eps = params, lr, beta1, beta2, eps
        self.m = {k: np.zeros_like(p) for k, p in params.items()}
        self.v = {k: np.zeros_like(p) for k, p in params.items()}
        self.t = 0

    def step(self, grads):
        self.t += 1
        for k, p in self.params.items():
            self.m[k] = self.b1 * self.m[k] + (1 - self.b1) * grads[k]
            self.v[k] = self.b2 * self.v[k] + (1 - self.b2) * grads[k] ** 2
            m_hat = self.m[k] / (1 - self.b1**self.t)
            v_hat = self.v[k] / (1 - self.b2**self.t)
            p -= self.lr * m_hat / (v_hat + self.eps)  # BUG: v_hat, not sqrt(v_hat)

    def hyper(self):
        return {"lr": self.lr, "beta1": self.b1, "beta2": self.b2, "eps": self.eps}


class MomentumLocal:
    def __init__(self, params, lr=0.05, mu=0.9):
        self.params, self.lr, self.mu = params, lr, mu

    def step(self, grads):
        for k, p in self.params.items():
            v = np.zeros_like(p)  # BUG: the velocity is a local, reset every step
            v = self.mu * v - self.lr * grads[k]
            p += v

    def hyper(self):
        return {"lr": self.lr, "momentum": self.mu}


def _opt_keywords(opt, kind, bugs=()):
    return dict(
        build=lambda: Model(opt, bugs),
        forward=lambda m, X: m.net.forward(X),
        objective="cross_entropy",
        params=lambda m: m.params,
        gradients=lambda m, X, Y: m.backward(X, Y),
        loss=lambda m, X, Y: m.net.report_loss(X, Y),
        optimizer={
            "kind": kind,
            "gradients": lambda m, X, Y: m.backward(X, Y),
            "step": lambda m: m.opt.step(m.grads),
            "hyper": lambda m: m.opt.hyper(),
        },
    )


ALL = ("W1", "b1", "W2", "b2", "W3", "b3")
BIASES = ("b1", "b2", "b3")
WEIGHTS = ("W1", "W2", "W3")
FIRST = ("W1", "b1")
LOWER = ("W1", "b1", "W2", "b2")
L2 = (0.05, WEIGHTS, 0.5)

CASES = [
    Case(
        "tricky_bk_summed_grad_loss_over_classes_raw_pixels",
        "vectorised",
        _keywords({"not_averaged", "over_classes"}) | {"prepare_inputs": raw_pixels},
        [
            Bug("gradient", "gradient-not-averaged", ALL),
            Bug("loss", "loss-divided-by-num-classes"),
            Bug("data", "inputs-not-normalized"),
        ],
    ),
    Case(
        "tricky_bk_transposed_overflow_one_based_labels",
        "vectorised",
        _keywords({"transposed", "no_shift"}, sizes=(20, 16, 16, 4))
        | {"prepare_inputs": scaled, "encode_labels": one_based_one_hot},
        [
            Bug("gradient", "transposed-weight-in-backward", FIRST),
            Bug("stress", "softmax-overflow-no-max-subtraction"),
            Bug("data", "wrong-one-hot-encoding"),
        ],
    ),
    Case(
        "tricky_bk_l2_on_biases_loss_summed",
        "vectorised",
        _keywords({"l2_biases", "sum"}, l2=L2, bias_init=0.2, act="tanh"),
        [Bug("gradient", "l2-applied-to-biases", BIASES), Bug("loss", "loss-not-averaged")],
    ),
    Case(
        "tricky_bk_adam_no_sqrt_relu_mask_on_gradient",
        "optimizer",
        _opt_keywords(AdamNoSqrt, "adam", {"relu_mask_grad"}),
        # the backprop's first-layer mask is (da1 > 0): W1, b1 wrong; every Adam step lacks the sqrt
        [
            Bug("gradient", "relu-derivative-wrong-tensor", FIRST),
            Bug("optimizer", "adam-missing-sqrt", ALL),
        ],
    ),
    Case(
        "tricky_bk_momentum_local_velocity_log_of_zero",
        "optimizer",
        _opt_keywords(MomentumLocal, "momentum", {"unclipped"}),
        [
            Bug("optimizer", "momentum-velocity-not-stored", ALL),
            Bug("loss", "log-of-zero"),
        ],
    ),
    Case(
        "tricky_bk_record_bias_overwritten_cost_summed",
        "per-record",
        dict(
            build=lambda: RecordBatch(),
            forward=lambda net, X: net.run(X),
            objective="cross_entropy",
            params=record_params,
            update=lambda net, X, Y: net.train(X, Y),
            lr=0.2,
            loss=lambda net, X, Y: net.total_cost(X, Y),
        ),
        [
            Bug("gradient", "bias-grad-overwritten", ("biases[0]", "biases[1]", "biases[2]")),
            Bug("loss", "loss-not-averaged"),
        ],
    ),
    Case(
        "tricky_bk_sigmoid_preactivation_one_based_labels",
        "vectorised",
        _keywords({"sigmoid_preact"}, act="sigmoid", lr=0.5)
        | {"prepare_inputs": scaled, "encode_labels": one_based_one_hot},
        [
            Bug("gradient", "sigmoid-derivative-on-preactivation", LOWER),
            Bug("data", "wrong-one-hot-encoding"),
        ],
    ),
    Case(
        "tricky_bk_dropout_mask_missing_overflow_loss_over_classes",
        "dropout",
        _keywords({"dropout_mask_missing", "no_shift", "over_classes"}, sizes=(20, 16, 4), keep_h=0.8),
        [
            Bug("gradient", "dropout-mask-missing-in-backward", FIRST),
            Bug("stress", "softmax-overflow-no-max-subtraction"),
            Bug("loss", "loss-divided-by-num-classes"),
        ],
    ),
    Case(
        "tricky_bk_l2_missing_log_of_zero_raw_pixels",
        "vectorised",
        _keywords({"l2_missing", "unclipped"}, l2=L2, act="elu") | {"prepare_inputs": raw_pixels},
        [
            Bug("gradient", "l2-missing-from-gradient", WEIGHTS),
            Bug("loss", "log-of-zero"),
            Bug("data", "inputs-not-normalized"),
        ],
    ),
    Case(
        "tricky_bk_zero_init_loss_over_classes_one_based_labels",
        "vectorised",
        _keywords({"over_classes"}, act="tanh", init_std=0.0)
        | {"prepare_inputs": scaled, "encode_labels": one_based_one_hot},
        [
            Bug("symmetry", "zero-init-symmetry"),
            Bug("loss", "loss-divided-by-num-classes"),
            Bug("data", "wrong-one-hot-encoding"),
        ],
    ),
    Case(
        "tricky_bk_update_ascent_overflow",
        "vectorised",
        # gradients() is right; the update adds lr * g
        _keywords({"ascent", "no_shift"}, act="leaky"),
        [
            Bug("gradient", "gradient-ascent-sign-error", ALL),
            Bug("stress", "softmax-overflow-no-max-subtraction"),
        ],
    ),
    Case(
        "tricky_bk_mse_jacobian_with_ce_raw_pixels",
        "vectorised",
        _keywords({"mse_jacobian"}) | {"prepare_inputs": raw_pixels},
        [
            Bug("gradient", "mse-gradient-through-softmax-with-ce-loss", ALL),
            Bug("data", "inputs-not-normalized"),
        ],
    ),
    Case(
        "tricky_bk_missing_tanh_derivative_accumulating",
        "vectorised",
        _keywords({"missing_deriv_top", "accumulate"}, act="tanh"),
        # dz2 = da2 (no 1 - a2^2): W1, b1, W2, b2 wrong on a fresh net; and the buffers are never
        # zeroed, so a second call returns the first call's gradient plus its own
        [
            Bug("gradient", "missing-activation-derivative", LOWER),
            Bug("state", "gradients-not-reset-between-steps"),
        ],
    ),
    Case(
        "tricky_bk_float32_bias_scalar_loss_over_classes",
        "float32",
        _keywords({"bias_scalar", "over_classes"}, dtype=np.float32),
        [
            Bug("gradient", "bias-grad-collapsed-to-scalar", BIASES),
            Bug("loss", "loss-divided-by-num-classes"),
        ],
    ),
    Case(
        "tricky_bk_lr_50_loss_summed",
        "vectorised",
        # the gradients are right; lr 50 in the code's own loop diverges; the loss is a batch sum
        _keywords({"sum"}, lr=50.0, epoch=True),
        [Bug("training", "learning-rate-too-large"), Bug("loss", "loss-not-averaged")],
    ),
]
