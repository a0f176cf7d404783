"""Correct networks in settings the other modules do not reach: every one must come back clean.

Standardised (negative) inputs through ``prepare_inputs``, float32 from ``prepare_inputs``; user
``data`` of 1, 2, 3 records, of exactly one record per class, with integer labels; two classes,
26 classes, a single hidden unit; code that only accepts batches of exactly 4 (``check_batch=4``);
a learning rate that a schedule changes after every step (``lr(net)`` is the one the next step
uses); gradient clipping by global norm whose threshold is not reached; momentum inside ``update``
(its first step from a zero velocity is plain SGD); decoupled weight decay ``p *= 1 - lr * wd``
stated in the objective as the L2 penalty it is under SGD (``wd`` = coef with scale 0.5); Adam in
the code's own epoch loop; ``train_epoch`` only, with its own shuffled minibatches; column-vector
code whose ``encode_labels`` returns (C, n); Rashid's 0.01 / 0.99 targets with squared error;
``build`` drawing from ``np.random.seed`` + ``np.random.randn``; ``forward`` returning a list of
per-record rows; six tanh hidden layers; ReLU units dead at initialisation (a bias of -10);
``np.maximum(z, 0, out=z)`` in place; float32 weights fed float64 inputs; summed squared error
with scale 1 through softmax; a softmax with temperature 2; an ``update`` that returns a stepped
copy; Nielsen's quadratic cost with sigmoid outputs and eta = 3.

Each case was checked before it was added with a scratch script (not committed): central finite
differences of the stated objective against ``gradients`` and against the gradient inferred from
``update`` ((old - new) / lr(net) read before the step), max relative error per array <= 1e-7
(float32 weights: <= 1e-4), and the reported loss against the objective (equal to 1e-12).

Decoupled weight decay and the objective: under plain SGD, ``p *= 1 - lr * wd; p -= lr * g`` is
exactly a step on ``loss + 0.5 * wd * |p|^2``, so the code minimises that; the objective says what
the code means to minimise, and a correct statement of it names the penalty (``edge_decoupled_wd``).
Stating no L2 for such code would misdescribe it: the doctor is right to report its gradient as not
the stated one, which is why that variant is in ``edge_broken`` as weight decay applied to biases
the objective leaves out.
"""

import copy

import numpy as np

from tests.doctor.networks import Case, one_hot


def sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


ACT = {
    "tanh": (np.tanh, lambda z, a: 1.0 - a**2),
    "relu": (lambda z: np.maximum(z, 0.0), lambda z, a: (z > 0).astype(z.dtype)),
    "sigmoid": (sigmoid, lambda z, a: a * (1.0 - a)),
}


def softmax(z, axis=1):
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


class EdgeNet:
    """A vectorised row-vector MLP (``W1, b1, ...`` of shapes (in, out), (out,)), configured by keywords.

    ``out``: "softmax" | "sigmoid"; ``temperature``: softmax(z / T); ``loss``: "ce" | "mse" | "bce";
    ``l2``: (wd, names) as decoupled decay in ``step`` (``p *= 1 - lr * wd``); ``momentum``: mu of
    ``v = mu v + g; p -= lr v``; ``clip``: global-norm threshold; ``decay``: lr = lr0 / (1 + decay t)
    after step t; ``exact_batch``: the only batch size ``gradients`` / ``step`` accept;
    ``dead``: (layer, unit) pairs whose bias starts at -10; ``inplace``: the ReLU written
    ``np.maximum(z, 0, out=z)``; ``wdtype``: the dtype of the weights (inputs are not cast);
    ``global_rng``: weights from ``np.random.seed`` + ``np.random.randn``.
    """

    def __init__(
        self,
        sizes=(20, 16, 8, 4),
        act="tanh",
        out="softmax",
        loss="ce",
        reduction="mean",
        scale=0.5,
        temperature=1.0,
        l2=None,
        lr=0.1,
        momentum=None,
        clip=None,
        decay=None,
        exact_batch=None,
        dead=(),
        inplace=False,
        wdtype=np.float64,
        global_rng=False,
        init_std=None,
        bias_init=0.01,
        seed=0,
        bugs=(),
    ):
        self.sizes, self.act, self.out, self.loss_name = tuple(sizes), act, out, loss
        self.reduction, self.scale, self.T, self.l2 = reduction, scale, temperature, l2
        self.lr0 = self.lr = lr
        self.momentum, self.clip, self.decay, self.exact_batch = momentum, clip, decay, exact_batch
        self.inplace, self.t, self.bugs = inplace, 0, set(bugs)
        self.L = len(sizes) - 1
        if global_rng:
            np.random.seed(seed)
        else:
            rng = np.random.default_rng(seed)
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
            std = np.sqrt(2.0 / a) if act == "relu" else 1.0 / np.sqrt(a)
            std = init_std if init_std is not None else std
            draw = np.random.randn(a, b) if global_rng else rng.standard_normal((a, b))
            setattr(self, f"W{i}", (draw * std).astype(wdtype))
            setattr(self, f"b{i}", np.full(b, bias_init, dtype=wdtype))
        for layer, unit in dead:
            getattr(self, f"b{layer}")[unit] = -10.0
        self.velocity = {k: np.zeros_like(v) for k, v in self.params().items()}

    def names(self):
        return [f"{k}{i}" for i in range(1, self.L + 1) for k in ("W", "b")]

    def params(self):
        return {k: getattr(self, k) for k in self.names()}

    def _forward(self, X):
        f = ACT[self.act][0]
        a, cache = X, {"a0": X}
        for i in range(1, self.L + 1):
            z = a @ getattr(self, f"W{i}") + getattr(self, f"b{i}")
            cache[f"z{i}"] = z
            if i < self.L:
                if self.act == "relu" and self.inplace:
                    np.maximum(z, 0, out=z)  # z is now the activation; z > 0 exactly where it was
                    a = z
                else:
                    a = f(z)
                cache[f"a{i}"] = a
        z = cache[f"z{self.L}"]
        p = softmax(z / self.T) if self.out == "softmax" else sigmoid(z)
        return p, cache

    def forward(self, X):
        return self._forward(X)[0]

    def report_loss(self, X, Y):
        p = self.forward(X)
        if self.loss_name == "ce":
            per = -np.sum(Y * np.log(np.clip(p, 1e-12, 1.0)), axis=1)
        elif self.loss_name == "bce":
            q = np.clip(p, 1e-12, 1 - 1e-12)
            per = -np.sum(Y * np.log(q) + (1 - Y) * np.log(1 - q), axis=1)
        else:
            per = self.scale * np.sum((p - Y) ** 2, axis=1)
        total = per.mean() if self.reduction == "mean" else per.sum()
        if self.l2 is not None:
            wd, names = self.l2
            total += 0.5 * wd * sum(float(np.sum(getattr(self, k).astype(np.float64) ** 2)) for k in names)
        return float(total)

    def _check_batch(self, X):
        if self.exact_batch is not None and len(X) != self.exact_batch:
            raise ValueError(f"this network trains on batches of exactly {self.exact_batch}, got {len(X)}")

    def gradients(self, X, Y):
        """The gradient of the data term (decoupled weight decay, when configured, is in ``step``)."""
        self._check_batch(X)
        p, c = self._forward(X)
        n = len(X)
        if self.loss_name == "ce":  # softmax outputs
            dz = (p - Y) / self.T
        elif self.loss_name == "bce":  # sigmoid outputs
            dz = p - Y
        elif self.out == "sigmoid":
            dz = 2 * self.scale * (p - Y) * p * (1 - p)
        else:
            g = 2 * self.scale * (p - Y)
            dz = p * (g - np.sum(g * p, axis=1, keepdims=True)) / self.T
        if self.reduction == "mean":
            dz = dz / n
        df = ACT[self.act][1]
        grads = {}
        for i in range(self.L, 0, -1):
            grads[f"W{i}"] = c[f"a{i - 1}"].T @ dz
            grads[f"b{i}"] = dz.sum(axis=0)
            if i > 1:
                dz = (dz @ getattr(self, f"W{i}").T) * df(c[f"z{i - 1}"], c[f"a{i - 1}"])
        return {k: grads[k].astype(getattr(self, k).dtype, copy=False) for k in self.names()}

    def step(self, X, Y):
        grads = self.gradients(X, Y)
        lr = self.lr
        if self.clip is not None:
            norm = np.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in grads.values()))
            if norm > self.clip:
                grads = {k: g * (self.clip / norm) for k, g in grads.items()}
        if self.l2 is not None:
            wd, names = self.l2
            for k in names:
                getattr(self, k)[...] *= 1.0 - lr * wd  # decoupled weight decay
        for k, g in grads.items():
            if self.momentum is not None:
                self.velocity[k] = self.momentum * self.velocity[k] + g
                g = self.velocity[k]
            getattr(self, k)[...] -= lr * g
        self.t += 1
        if self.decay is not None:
            self.lr = self.lr0 / (1.0 + self.decay * self.t)

    def stepped_copy(self, X, Y):
        new = copy.deepcopy(self)
        new.step(X, Y)
        return new


def objective_of(kw):
    loss = {"ce": "cross_entropy", "bce": "bce", "mse": "mse"}[kw.get("loss", "ce")]
    obj = {"loss": loss, "reduction": kw.get("reduction", "mean")}
    if loss == "mse":
        obj["scale"] = kw.get("scale", 0.5)
    if kw.get("l2") is not None:
        wd, names = kw["l2"]
        obj["l2"] = {"coef": wd, "params": list(names), "scale": 0.5}
    return obj


def edge(extra=None, update=True, gradients=True, lr_attr=True, **kw):
    keywords = dict(
        build=lambda: EdgeNet(**kw),
        forward=lambda net, X: net.forward(X),
        objective=objective_of(kw),
        params=lambda net: net.params(),
        loss=lambda net, X, Y: net.report_loss(X, Y),
    )
    if gradients:
        keywords["gradients"] = lambda net, X, Y: net.gradients(X, Y)
    if update:
        keywords["update"] = lambda net, X, Y: net.step(X, Y)
        keywords["lr"] = (lambda net: net.lr) if lr_attr else kw.get("lr", 0.1)
    keywords.update(extra or {})
    return keywords


# ------------------------------------------------------------------ preprocessing and user data


def zscore_batch(pixels):
    """Standardised per feature over the batch given (negative values); constant pixels stay 0."""
    x = np.asarray(pixels, dtype=np.float64) / 255.0
    return (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-8)


def mnist_standardised(pixels):
    """torchvision's Normalize((0.1307,), (0.3081,)) after ToTensor: values in [-0.42, 2.82]."""
    return (np.asarray(pixels, dtype=np.float64) / 255.0 - 0.1307) / 0.3081


def to_float32(pixels):
    return (np.asarray(pixels) / 255.0).astype(np.float32)


def minus_one_to_one(pixels):
    return np.asarray(pixels, dtype=np.float64) / 127.5 - 1.0


def int_one_hot(labels, n_classes):
    """One-hot as integers (np.eye(..., dtype=int)): the right targets in another dtype."""
    return np.eye(n_classes, dtype=np.int64)[np.asarray(labels, dtype=int)]


def eye_labels(labels, n_classes):
    return np.eye(n_classes)[np.asarray(labels, dtype=int)]


def user_data(n, d, c, seed, labels=None):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = rng.integers(0, c, n) if labels is None else np.asarray(labels)
    return X, one_hot(y, c)


# ------------------------------------------------------------------ code that trains in its own loop


def shuffled_epoch(net, X, Y, epoch, batch=8):
    """Own minibatching: a permutation from the global generator, SGD on each slice."""
    order = np.random.permutation(len(X))
    for s in range(0, len(X), batch):
        idx = order[s : s + batch]
        for k, g in net.gradients(X[idx], Y[idx]).items():
            getattr(net, k)[...] -= net.lr * g


def adam_epoch(net, X, Y, epoch, batch=16, lr=0.01, b1=0.9, b2=0.999, eps=1e-8):
    """Adam in the code's own loop: its moments live on the net."""
    if not hasattr(net, "adam_m"):
        net.adam_m = {k: np.zeros_like(p) for k, p in net.params().items()}
        net.adam_v = {k: np.zeros_like(p) for k, p in net.params().items()}
        net.adam_t = 0
    for s in range(0, len(X), batch):
        g = net.gradients(X[s : s + batch], Y[s : s + batch])
        net.adam_t += 1
        for k, p in net.params().items():
            net.adam_m[k] = b1 * net.adam_m[k] + (1 - b1) * g[k]
            net.adam_v[k] = b2 * net.adam_v[k] + (1 - b2) * g[k] ** 2
            m_hat = net.adam_m[k] / (1 - b1**net.adam_t)
            v_hat = net.adam_v[k] / (1 - b2**net.adam_t)
            p -= lr * m_hat / (np.sqrt(v_hat) + eps)


# ------------------------------------------------------------------ column vectors, (C, n) targets


class ColumnNet:
    """Nielsen-style weights (out, in), biases (out, 1), activations as columns (D, n)."""

    def __init__(self, sizes=(16, 12, 5), seed=31, lr=0.3):
        rng = np.random.default_rng(seed)
        self.sizes = sizes
        self.weights = [rng.standard_normal((b, a)) / np.sqrt(a) for a, b in zip(sizes[:-1], sizes[1:])]
        self.biases = [rng.standard_normal((b, 1)) * 0.1 for b in sizes[1:]]
        self.lr = lr

    def feed(self, A):
        acts, a = [A], A
        for i, (W, b) in enumerate(zip(self.weights, self.biases)):
            z = W @ a + b
            a = sigmoid(z) if i < len(self.weights) - 1 else softmax(z, axis=0)
            acts.append(a)
        return acts

    def run(self, X):
        return self.feed(np.asarray(X).T)[-1].T

    def backprop(self, X, Yc):
        """``Yc``: targets as columns (C, n), the code's own encoding."""
        acts = self.feed(X.T)
        n = X.shape[0]
        delta = (acts[-1] - Yc) / n
        gw, gb = [None] * len(self.weights), [None] * len(self.biases)
        for i in range(len(self.weights) - 1, -1, -1):
            gw[i] = delta @ acts[i].T
            gb[i] = delta.sum(axis=1, keepdims=True)
            if i > 0:
                delta = (self.weights[i].T @ delta) * acts[i] * (1 - acts[i])
        return gw, gb

    def cost(self, X, Yc):
        P = self.run(X).T
        return float(-np.sum(Yc * np.log(np.clip(P, 1e-12, 1.0))) / X.shape[0])


def column_params(net):
    named = {f"weights[{i}]": W for i, W in enumerate(net.weights)}
    named.update({f"biases[{i}]": b for i, b in enumerate(net.biases)})
    return named


def column_grads(net, X, Y):
    gw, gb = net.backprop(X, Y.T)
    named = {f"weights[{i}]": g for i, g in enumerate(gw)}
    named.update({f"biases[{i}]": g for i, g in enumerate(gb)})
    return named


def column_step(net, X, Y):
    gw, gb = net.backprop(X, Y.T)
    for i in range(len(net.weights)):
        net.weights[i] -= net.lr * gw[i]
        net.biases[i] -= net.lr * gb[i]


def column_labels(labels, n_classes):
    """One target column per record: (C, n)."""
    Yc = np.zeros((n_classes, len(labels)))
    Yc[np.asarray(labels, dtype=int), np.arange(len(labels))] = 1.0
    return Yc


COLUMN_KEYWORDS = dict(
    build=lambda: ColumnNet(),
    forward=lambda net, X: net.run(X),
    objective="cross_entropy",
    params=column_params,
    gradients=column_grads,
    update=column_step,
    lr=lambda net: net.lr,
    loss=lambda net, X, Y: net.cost(X, Y.T),
    encode_labels=column_labels,
    prepare_inputs=lambda pixels: np.asarray(pixels, dtype=np.float64) / 255.0,
)


# ------------------------------------------------------------------ Rashid: 0.01 / 0.99 everywhere


def rashid_inputs(pixels):
    return np.asarray(pixels, dtype=np.float64) / 255.0 * 0.99 + 0.01


def rashid_targets(labels, n_classes):
    T = np.zeros((len(labels), n_classes)) + 0.01
    T[np.arange(len(labels)), np.asarray(labels, dtype=int)] = 0.99
    return T


SIG_MSE = dict(act="sigmoid", out="sigmoid", loss="mse")

CASES = [
    Case(
        "edge_zscore_batch_inputs",
        "vectorised",
        edge({"prepare_inputs": zscore_batch, "encode_labels": eye_labels}),
    ),
    Case(
        "edge_mnist_normalize_constants",
        "vectorised",
        edge({"prepare_inputs": mnist_standardised, "encode_labels": eye_labels}, act="relu", lr=0.05),
    ),
    Case("edge_data_one_record", "vectorised", edge({"data": user_data(1, 20, 4, 1)})),
    Case("edge_data_two_records", "vectorised", edge({"data": user_data(2, 20, 4, 2)}, act="relu")),
    Case("edge_data_three_records", "vectorised", edge({"data": user_data(3, 20, 4, 3)}, act="sigmoid")),
    Case(
        "edge_data_one_record_per_class",
        "vectorised",
        edge({"data": user_data(4, 20, 4, 4, labels=[2, 0, 3, 1])}),
    ),
    Case(
        "edge_data_integer_labels",
        "vectorised",
        # data's Y given as integer labels (n,): the code itself only ever sees one-hot Y
        edge({"data": (user_data(24, 20, 4, 5)[0], np.random.default_rng(5).integers(0, 4, 24))}),
    ),
    Case("edge_two_classes_softmax", "vectorised", edge(sizes=(12, 8, 2), lr=0.3)),
    Case("edge_26_classes", "vectorised", edge(sizes=(30, 32, 26), act="relu", lr=0.2)),
    Case("edge_one_hidden_unit", "vectorised", edge(sizes=(10, 1, 3), lr=0.5)),
    Case(
        "edge_check_batch_exactly_4",
        "vectorised",
        edge({"check_batch": 4}, exact_batch=4, act="relu"),
    ),
    Case("edge_lr_schedule_every_step", "vectorised", edge(decay=0.5, lr=0.4)),
    Case("edge_clip_norm_not_reached", "vectorised", edge(clip=100.0, act="relu")),
    Case("edge_momentum_inside_update", "vectorised", edge(momentum=0.9, lr=0.05)),
    Case(
        "edge_decoupled_wd",
        "vectorised",
        # update only: ``gradients`` returns the data term, the decay is in the step
        edge(l2=(0.01, ("W1", "W2", "W3")), act="relu", lr=0.1, gradients=False),
    ),
    Case(
        "edge_adam_own_epoch_loop",
        "vectorised",
        edge({"train_epoch": lambda net, X, Y, e: adam_epoch(net, X, Y, e)}, update=False),
    ),
    Case(
        "edge_train_epoch_only_shuffled",
        "vectorised",
        edge(
            {"train_epoch": lambda net, X, Y, e: shuffled_epoch(net, X, Y, e)},
            update=False,
            gradients=False,
            lr=0.3,
        ),
    ),
    Case("edge_columns_targets_c_by_n", "column-vectors", COLUMN_KEYWORDS),
    Case(
        "edge_rashid_targets_mse",
        "rashid",
        edge(
            {"prepare_inputs": rashid_inputs, "encode_labels": rashid_targets},
            sizes=(20, 16, 4),
            lr=0.5,
            **SIG_MSE,
        ),
    ),
    Case(
        "edge_prepare_inputs_float32",
        "vectorised",
        edge({"prepare_inputs": to_float32, "encode_labels": eye_labels}, act="relu"),
    ),
    Case("edge_global_randn_build", "vectorised", edge(global_rng=True, seed=7, init_std=0.3)),
    Case(
        "edge_forward_list_of_rows",
        "vectorised",
        edge({"forward": lambda net, X: [row for row in net.forward(X)]}),
    ),
    Case("edge_deep_six_tanh", "vectorised", edge(sizes=(20, 16, 16, 16, 16, 16, 16, 4), lr=0.1)),
    Case(
        "edge_relu_dead_units",
        "vectorised",
        # one unit of each hidden layer with bias -10: never active, its weights get exactly 0
        edge(act="relu", dead=((1, 3), (2, 5))),
    ),
    Case("edge_relu_in_place_out_z", "vectorised", edge(act="relu", inplace=True)),
    Case(
        "edge_float32_weights_float64_inputs",
        "float32",
        edge(wdtype=np.float32, act="relu", lr=0.1),
    ),
    Case(
        "edge_mse_sum_scale1_softmax",
        "vectorised",
        edge(loss="mse", scale=1.0, reduction="sum", lr=0.05),
    ),
    Case("edge_softmax_temperature_2", "vectorised", edge(temperature=2.0, lr=0.3)),
    Case(
        "edge_update_returns_stepped_copy",
        "vectorised",
        edge({"update": lambda net, X, Y: net.stepped_copy(X, Y)}, act="relu"),
    ),
    Case(
        "edge_per_record_check_batch_1_three_records",
        "per-record",
        edge({"check_batch": 1, "data": user_data(3, 20, 4, 8)}, exact_batch=1, act="relu", lr=0.05),
    ),
    Case(
        "edge_inputs_minus_one_to_one_int_targets",
        "vectorised",
        edge({"prepare_inputs": minus_one_to_one, "encode_labels": int_one_hot}, act="tanh"),
    ),
    Case(
        "edge_data_float32_x_int_one_hot",
        "vectorised",
        # user data as float32 inputs and an integer one-hot Y; the network is float64
        edge(
            {
                "data": (
                    user_data(16, 20, 4, 9)[0].astype(np.float32),
                    user_data(16, 20, 4, 9)[1].astype(np.int64),
                )
            },
            act="sigmoid",
            lr=0.5,
        ),
    ),
    Case("edge_nielsen_quadratic_eta3", "nielsen", edge(sizes=(20, 30, 4), lr=3.0, **SIG_MSE)),
]
