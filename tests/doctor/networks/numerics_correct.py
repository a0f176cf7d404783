"""Correct networks at the edges of floating point: every one must come back without an error.

float32 everywhere with a learning rate of 1e-4 (an update's change is a few ulps of the weight),
float32 with large weights, many dead ReLU units (gradients exactly zero), ReLU units sitting
exactly at their kink (zero biases, records whose whole first layer is dead, real MNIST images),
networks trained in ``build`` to a loss of ~1e-3 (tiny gradients) in float64 and float32, large
but consistent feature values (gradients in the hundreds), 256 hidden units with a 1-record batch,
eight tanh layers of four units (vanishing gradients in the first layers), sigmoid outputs
saturated near 0 / 1 with bce computed stably from the logits, ``np.longdouble`` forward and
backward, float16 weights upcast to float32, a learned softmax temperature, RMS normalisation with
an epsilon inside the square root, a softmax whose denominator carries ``+ 1e-8``, user data of 1,
2, 7, 33 and 100 records, label smoothing through ``encode_labels``, and three 784-300-75-10
per-record networks on 16 real MNIST images.

Label smoothing: the contract's objectives cannot express smoothing done inside the loss and
gradient (the doctor calls them with one-hot ``Y`` and the objective is cross-entropy against that
``Y``), so that variant is not a valid case. Smoothing done by ``encode_labels`` is expressible:
cross-entropy against soft targets is the stated objective, and its gradient is still ``p - y``
(the targets sum to one); that is ``num_label_smoothing_encode_labels``.

Each case was checked before it was added with a scratch script (not committed): central finite
differences in float64 (float32 / float16 / longdouble networks: on a float64 twin with the same
weights) of the stated objective computed from ``forward``, against ``gradients`` and against the
gradient inferred from ``update``, along random directions and on every entry of small arrays;
and the reported loss against the objective. Numbers are in the comments of the cases.
"""

import numpy as np

from tests.doctor.networks import Case, one_hot


def sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def softplus(z):
    return np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))


ACT = {
    "tanh": (np.tanh, lambda z, a: 1 - a * a),
    "relu": (lambda z: np.maximum(z, 0), lambda z, a: (z > 0).astype(z.dtype)),
    "sigmoid": (sigmoid, lambda z, a: a * (1 - a)),
}


class NumNet:
    """A vectorised row-vector MLP ``W1, b1, ...`` (in, out), (out,), configured by keywords.

    ``dtype``: what the forward and backward compute in; ``wdtype``: what the weights are stored
    in (float16 weights are upcast to ``dtype`` in the forward); ``out``: softmax | sigmoid
    (bce from the logits); ``T``: a fixed softmax temperature; ``learn_T``: a trainable
    ``log_T`` (shape (1,)); ``rms``: RMS-normalise each hidden pre-activation with ``eps`` 1e-8
    inside the root; ``soft_eps``: softmax denominator ``+ soft_eps``; ``l2``: (coef, names) with
    scale 0.5 in loss and gradient; ``biases``: {layer: value or array} initial biases;
    ``pretrain``: (X, Y, steps) full-batch SGD steps taken in ``__init__``; ``bugs``: the broken
    twins' mistakes (numerics_broken).
    """

    def __init__(
        self,
        sizes=(20, 16, 8, 4),
        act="tanh",
        out="softmax",
        reduction="mean",
        dtype=np.float64,
        wdtype=None,
        lr=0.1,
        init_std=None,
        bias_init=0.01,
        biases=None,
        T=1.0,
        learn_T=False,
        rms=False,
        soft_eps=0.0,
        l2=None,
        pretrain=None,
        seed=0,
        bugs=(),
    ):
        self.sizes, self.act, self.out, self.reduction = tuple(sizes), act, out, reduction
        self.dtype = dtype
        self.wdtype = wdtype or dtype
        self.lr = dtype(lr)
        self.T, self.learn_T, self.rms, self.soft_eps = T, learn_T, rms, soft_eps
        self.l2, self.bugs, self.L = l2, set(bugs), len(sizes) - 1
        rng = np.random.default_rng(seed)
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
            std = (
                init_std
                if init_std is not None
                else (np.sqrt(2.0 / a) if act == "relu" else 1.0 / np.sqrt(a))
            )
            setattr(self, f"W{i}", (rng.standard_normal((a, b)) * std).astype(self.wdtype))
            setattr(self, f"b{i}", np.full(b, bias_init, dtype=self.wdtype))
        for layer, value in (biases or {}).items():
            getattr(self, f"b{layer}")[...] = value
        if learn_T:
            self.log_T = np.array([np.log(T)], dtype=self.wdtype)
        if pretrain is not None:
            X, Y, steps = pretrain
            for _ in range(steps):
                self.step(X, Y)

    def names(self):
        names = [f"{k}{i}" for i in range(1, self.L + 1) for k in ("W", "b")]
        return names + (["log_T"] if self.learn_T else [])

    def params(self):
        return {k: getattr(self, k) for k in self.names()}

    def _w(self, k):
        return getattr(self, k).astype(self.dtype, copy=False)

    def _forward(self, X):
        f = ACT[self.act][0]
        a = np.asarray(X).astype(self.dtype, copy=False)
        c = {"a0": a}
        for i in range(1, self.L + 1):
            z = a @ self._w(f"W{i}") + self._w(f"b{i}")
            c[f"z{i}"] = z
            if i < self.L:
                if self.rms:
                    r = np.sqrt(np.mean(z * z, axis=1, keepdims=True) + self.dtype(1e-8))
                    z = z / r
                    c[f"r{i}"], c[f"h{i}"] = r, z
                a = f(z)
                c[f"a{i}"] = a
        z = c[f"z{self.L}"]
        if self.out == "sigmoid":
            return sigmoid(z), c
        t = np.exp(self._w("log_T")) if self.learn_T else self.dtype(self.T)
        u = z / t
        c["t"], c["u"] = t, u
        e = np.exp(u - u.max(axis=1, keepdims=True))
        return e / (e.sum(axis=1, keepdims=True) + self.dtype(self.soft_eps)), c

    def forward(self, X):
        return self._forward(X)[0]

    def _reduce(self, per):
        return per.mean() if self.reduction == "mean" else per.sum()

    def report_loss(self, X, Y):
        p, c = self._forward(X)
        Y = np.asarray(Y, dtype=self.dtype)
        if self.out == "sigmoid":  # stable bce of the logits: softplus(z) - y z per unit
            z = c[f"z{self.L}"]
            per = np.sum(softplus(z) - Y * z, axis=1)
        else:  # log-softmax of the logits
            u = c["u"]
            m = u.max(axis=1, keepdims=True)
            logp = u - m - np.log(np.exp(u - m).sum(axis=1, keepdims=True) + self.dtype(self.soft_eps))
            per = -np.sum(Y * logp, axis=1)
        total = float(self._reduce(per))
        if self.l2 is not None:
            coef, names = self.l2
            total += 0.5 * coef * sum(float(np.sum(self._w(k).astype(np.float64) ** 2)) for k in names)
        return total

    def gradients(self, X, Y):
        p, c = self._forward(X)
        Y = np.asarray(Y, dtype=self.dtype)
        n = len(p)
        dz = p - Y
        if "softmax_scale_1.05" in self.bugs:
            dz = dz * self.dtype(1.05)
        if self.reduction == "mean":
            dz = dz / self.dtype(n)
        g = {}
        if self.out == "softmax":
            if self.learn_T:  # u = z / t, t = exp(log_T): dL/dlog_T = -sum(dL/du * u)
                sign = 1.0 if "log_T_sign" in self.bugs else -1.0
                g["log_T"] = np.array([sign * np.sum(dz * c["u"])], dtype=self.dtype)
            dz = dz / c["t"]
        df = ACT[self.act][1]
        for i in range(self.L, 0, -1):
            g[f"W{i}"] = c[f"a{i - 1}"].T @ dz
            rows = dz[1:] if ("bias_drops_first_record" in self.bugs and i == self.L) else dz
            g[f"b{i}"] = rows.sum(axis=0)
            if i > 1:
                da = dz @ self._w(f"W{i}").T
                dh = da * df(c.get(f"h{i - 1}", c[f"z{i - 1}"]), c[f"a{i - 1}"])
                if self.rms and "rms_no_mean_term" in self.bugs:
                    dh = dh / c[f"r{i - 1}"]  # as if r were a constant
                elif self.rms:
                    h, r = c[f"h{i - 1}"], c[f"r{i - 1}"]
                    dh = (dh - h * np.mean(dh * h, axis=1, keepdims=True)) / r
                dz = dh
        if self.l2 is not None and "l2_missing" not in self.bugs:
            coef, names = self.l2
            factor = 2.0 if "l2_factor_2" in self.bugs else 1.0
            for k in names:
                g[k] = g[k] + self.dtype(factor * coef) * self._w(k)
        if "sign_b2" in self.bugs:
            g["b2"] = -g["b2"]
        return {k: g[k].astype(getattr(self, k).dtype, copy=False) for k in self.names()}

    def step(self, X, Y):
        for k, gk in self.gradients(X, Y).items():
            p = getattr(self, k)
            if "decay_biases_in_step" in self.bugs and k.startswith("b"):
                p[...] -= self.lr * self.dtype(1e-3) * p  # weight decay on biases the objective omits
            p[...] -= (self.lr * gk).astype(p.dtype)


class RecordNet(NumNet):
    """The same network trained one record at a time: ``update`` takes exactly one record."""

    def step(self, X, Y):
        if len(X) != 1:
            raise ValueError(f"train() takes one record, got {len(X)}")
        super().step(X, Y)


def objective(kw):
    obj = {
        "loss": "bce" if kw.get("out") == "sigmoid" else "cross_entropy",
        "reduction": kw.get("reduction", "mean"),
    }
    if kw.get("l2") is not None:
        coef, names = kw["l2"]
        obj["l2"] = {"coef": coef, "params": list(names), "scale": 0.5}
    return obj


def num(extra=None, cls=NumNet, update=True, gradients=True, **kw):
    keywords = dict(
        build=lambda: cls(**kw),
        forward=lambda net, X: net.forward(X),
        objective=objective(kw),
        params=lambda net: net.params(),
        loss=lambda net, X, Y: net.report_loss(X, Y),
    )
    if gradients:
        keywords["gradients"] = lambda net, X, Y: net.gradients(X, Y)
    if update:
        keywords["update"] = lambda net, X, Y: net.step(X, Y)
        keywords["lr"] = lambda net: float(net.lr)
    keywords.update(extra or {})
    return keywords


# ------------------------------------------------------------------ data given by the user


def mnist(n=16, start=0):
    from mlpx.datasets.mnist import load_mnist

    d = load_mnist()
    X = d["train_images"][start : start + n].reshape(n, -1).astype(np.float64) / 255.0
    return X, one_hot(d["train_labels"][start : start + n].astype(int), 10)


def gaussian(n, d=20, c=4, seed=0, scale=1.0, dtype=np.float64):
    """A learnable task: labels from a fixed random linear teacher, so training can fit it."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    teacher = np.random.default_rng(1000 + d).standard_normal((d, c))
    return (X * scale).astype(dtype), one_hot((X @ teacher).argmax(1), c)


def measurements(n=40, c=3, seed=5):
    """Physical measurements in their own units (areas ~1e3, counts ~1e2, years ~2e3): large values,
    the same for every batch; the weights are scaled to them (std 1 / (feature scale * sqrt(D)))."""
    rng = np.random.default_rng(seed)
    scales = np.array([1500.0, 300.0, 120.0, 2000.0, 50.0, 800.0, 40.0, 1000.0])
    X = scales * (1.0 + 0.3 * rng.standard_normal((n, 8)))
    score = (X / scales - 1.0) @ np.random.default_rng(77).standard_normal((8, c))
    return X, one_hot(score.argmax(1), c), scales


MEAS_X, MEAS_Y, MEAS_SCALES = measurements()


class MeasNet(NumNet):
    """First-layer weights drawn per feature at 1 / (scale sqrt(D)): logits of order one."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.W1[...] = self.W1 / MEAS_SCALES[:, None] * 0.5
        self.b1[...] = -(MEAS_SCALES @ self.W1)  # centre the pre-activations at the typical record


def smoothed_labels(labels, n_classes, eps=0.1):
    """Label smoothing as preprocessing: (1 - eps) one-hot + eps / C; each row sums to one."""
    return (1.0 - eps) * np.eye(n_classes)[np.asarray(labels, dtype=int)] + eps / n_classes


def scaled(pixels):
    return np.asarray(pixels, dtype=np.float64) / 255.0


# ------------------------------------------------------------------ 784-300-75-10, per record


class RowLoopNet:
    """A class with a per-record loop (like the seed question's, corrected): ReLU hidden layers,
    softmax output, ``backprop`` accumulates np.outer per record and averages, ``train`` steps."""

    def __init__(self, sizes=(784, 300, 75, 10), lr=0.05, seed=1):
        rng = np.random.default_rng(seed)
        self.weights = [rng.standard_normal((a, b)) * np.sqrt(2.0 / a) for a, b in zip(sizes[:-1], sizes[1:])]
        self.biases = [np.zeros(b) for b in sizes[1:]]
        self.lr = lr

    def record(self, x):
        acts, zs, a = [x], [], x
        for i, (W, b) in enumerate(zip(self.weights, self.biases)):
            z = a @ W + b
            zs.append(z)
            if i < len(self.weights) - 1:
                a = np.maximum(z, 0.0)
            else:
                e = np.exp(z - z.max())
                a = e / e.sum()
            acts.append(a)
        return acts, zs

    def run(self, X):
        return np.array([self.record(x)[0][-1] for x in X])

    def backprop(self, X, Y):
        gw = [np.zeros_like(W) for W in self.weights]
        gb = [np.zeros_like(b) for b in self.biases]
        for x, y in zip(X, Y):
            acts, zs = self.record(x)
            delta = acts[-1] - y
            for i in range(len(self.weights) - 1, -1, -1):
                gw[i] += np.outer(acts[i], delta)
                gb[i] += delta
                if i > 0:
                    delta = (self.weights[i] @ delta) * (zs[i - 1] > 0)
        n = len(X)
        return [g / n for g in gw], [g / n for g in gb]

    def train(self, X, Y):
        gw, gb = self.backprop(X, Y)
        for i in range(len(self.weights)):
            self.weights[i] -= self.lr * gw[i]
            self.biases[i] -= self.lr * gb[i]

    def loss(self, X, Y):
        return float(
            np.mean([-np.log(max(self.record(x)[0][-1][int(np.argmax(y))], 1e-12)) for x, y in zip(X, Y)])
        )


def rowloop_params(net):
    named = {f"weights[{i}]": W for i, W in enumerate(net.weights)}
    named.update({f"biases[{i}]": b for i, b in enumerate(net.biases)})
    return named


def rowloop_grads(net, X, Y):
    gw, gb = net.backprop(X, Y)
    named = {f"weights[{i}]": g for i, g in enumerate(gw)}
    named.update({f"biases[{i}]": g for i, g in enumerate(gb)})
    return named


class RashidColumns:
    """Rashid's style: ``wih`` (hidden, inputs), column vectors, one record per ``train`` call;
    sigmoid hidden layers and a softmax output trained on cross-entropy."""

    def __init__(self, inodes=784, h1=300, h2=75, onodes=10, lr=0.1, seed=2):
        rng = np.random.default_rng(seed)
        self.wih = rng.normal(0.0, inodes**-0.5, (h1, inodes))
        self.whh = rng.normal(0.0, h1**-0.5, (h2, h1))
        self.who = rng.normal(0.0, h2**-0.5, (onodes, h2))
        self.lr = lr

    def query_columns(self, inputs):
        h1 = sigmoid(self.wih @ inputs)
        h2 = sigmoid(self.whh @ h1)
        z = self.who @ h2
        e = np.exp(z - z.max(axis=0, keepdims=True))
        return h1, h2, e / e.sum(axis=0, keepdims=True)

    def query(self, inputs_list):
        return self.query_columns(np.array(inputs_list, ndmin=2).T)[2].T

    def train(self, inputs_list, targets_list):
        inputs = np.array(inputs_list, ndmin=2).T
        targets = np.array(targets_list, ndmin=2).T
        h1, h2, out = self.query_columns(inputs)
        output_errors = targets - out  # cross-entropy through softmax: -(p - y)
        h2_errors = self.who.T @ output_errors
        h1_errors = self.whh.T @ (h2_errors * h2 * (1.0 - h2))
        self.who += self.lr * output_errors @ h2.T
        self.whh += self.lr * (h2_errors * h2 * (1.0 - h2)) @ h1.T
        self.wih += self.lr * (h1_errors * h1 * (1.0 - h1)) @ inputs.T

    def epoch(self, X, Y):
        for x, y in zip(X, Y):
            self.train(x, y)


def rashid_loss(net, X, Y):
    P = net.query(X)
    return float(-np.mean(np.log(np.clip(P[np.arange(len(Y)), Y.argmax(1)], 1e-12, 1.0))))


def f32_init(sizes=(784, 300, 75, 10), seed=3):
    rng = np.random.default_rng(seed)
    p = {}
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        p[f"W{i}"] = (rng.standard_normal((a, b)) / np.sqrt(a)).astype(np.float32)
        p[f"b{i}"] = np.zeros(b, dtype=np.float32)
    return p


def f32_record(p, x):
    h1 = np.tanh(x @ p["W1"] + p["b1"])
    h2 = np.tanh(h1 @ p["W2"] + p["b2"])
    z = h2 @ p["W3"] + p["b3"]
    e = np.exp(z - z.max())
    return h1, h2, e / e.sum()


def f32_forward(p, X):
    return np.stack([f32_record(p, x)[2] for x in np.asarray(X, dtype=np.float32)])


def f32_grads(p, X, Y):
    """Plain functions over a dict of float32 arrays; a loop over records, averaged."""
    g = {k: np.zeros_like(v) for k, v in p.items()}
    X, Y = np.asarray(X, dtype=np.float32), np.asarray(Y, dtype=np.float32)
    for x, y in zip(X, Y):
        h1, h2, out = f32_record(p, x)
        d3 = out - y
        d2 = (p["W3"] @ d3) * (1 - h2 * h2)
        d1 = (p["W2"] @ d2) * (1 - h1 * h1)
        for k, v in (("W3", np.outer(h2, d3)), ("b3", d3), ("W2", np.outer(h1, d2)), ("b2", d2)):
            g[k] += v
        g["W1"] += np.outer(x, d1)
        g["b1"] += d1
    n = np.float32(len(X))
    return {k: v / n for k, v in g.items()}


F32_LR = np.float32(1e-3)


def f32_update(p, X, Y, lr=F32_LR):
    for k, gk in f32_grads(p, X, Y).items():
        p[k] -= lr * gk


def f32_loss(p, X, Y):
    P = f32_forward(p, X).astype(np.float64)
    return float(-np.mean(np.sum(Y * np.log(np.clip(P, 1e-12, 1.0)), axis=1)))


MNIST16 = mnist(16)
MNIST32 = mnist(32, start=100)
F32 = dict(dtype=np.float32)
TINY_LR = dict(dtype=np.float32, lr=1e-4)

# converged networks: 400 / 600 full-batch SGD steps in build on the data they are then examined on
CONV_DATA = gaussian(24, d=10, c=3, seed=21)
CONV32_DATA = gaussian(24, d=10, c=3, seed=22, dtype=np.float32)

CASES = [
    Case(
        "num_f32_lr_1e-4",
        "float32",
        # float32 throughout, lr 1e-4: a step changes a weight by ~1e-6 of ~0.2, a few float32
        # ulps. The exact step (old - new) / lr against the float64 twin's gradient: rel 3e-3 per
        # array at worst (rounding of the subtraction), gradients() itself 2e-7
        num(sizes=(20, 16, 8, 4), act="tanh", **TINY_LR),
    ),
    Case("num_f32_lr_1e-4_update_only_relu", "float32", num(gradients=False, act="relu", **TINY_LR)),
    Case(
        "num_f32_lr_1e-4_mean_100_records",
        "float32",
        num({"data": gaussian(100, seed=3, dtype=np.float32)}, act="sigmoid", **TINY_LR),
    ),
    Case(
        "num_f32_large_weights",
        "float32",
        # N(0, 2^2) weights (up to 7.5) in float32 with tanh: hidden units saturated (mean |a| 0.92),
        # logits up to 16, probabilities down to 2e-9; gradient against the float64 twin 1e-7
        num(init_std=2.0, act="tanh", lr=1e-3, **F32),
    ),
    Case(
        "num_dead_relu_half_the_units",
        "vectorised",
        # negative biases on half the units of both hidden layers: their columns of W and entries
        # of b get exactly 0.0 gradients, and so do the rows of W2 / W3 they feed
        num(
            act="relu",
            biases={1: np.r_[np.full(8, -6.0), np.zeros(8)], 2: np.r_[np.full(4, -6.0), np.zeros(4)]},
        ),
    ),
    Case(
        "num_dead_relu_f32_update_only",
        "float32",
        num(gradients=False, act="relu", biases={1: -5.0 * (np.arange(16) % 3 == 0)}, lr=0.05, **F32),
    ),
    Case(
        "num_relu_kinks_mnist_zero_bias",
        "vectorised",
        # 784-4-8-10 ReLU, zero biases, 32 real MNIST images: records whose four first-layer units
        # are all <= 0 give z2 = b2 = 0 exactly for every unit of layer 2 (checked: 3 of 32 records,
        # 24 entries of z2 exactly 0.0), so b2 sits on the kink; relu'(0) = 0 is a valid
        # subgradient. Central differences over all 32 records average the two one-sided slopes
        # there (b2 rel 0.2); on the 29 records off the kink they match the code's gradient to 2e-10
        num({"data": MNIST32}, sizes=(784, 4, 8, 10), act="relu", bias_init=0.0, seed=8, lr=0.05),
    ),
    Case(
        "num_converged_loss_1e-3",
        "vectorised",
        # 600 steps of lr 0.5 on its own data in build: reported loss 1.3e-3, gradient norm 1e-3;
        # central differences agree to 3e-8
        num({"data": CONV_DATA}, sizes=(10, 32, 3), lr=0.5, pretrain=(*CONV_DATA, 600)),
    ),
    Case(
        "num_converged_f32",
        "float32",
        # the same in float32: loss 1.6e-3; float64 twin of the trained weights: rel 4e-6
        num({"data": CONV32_DATA}, sizes=(10, 32, 3), lr=0.5, pretrain=(*CONV32_DATA, 600), **F32),
    ),
    Case(
        "num_large_measurements",
        "vectorised",
        # raw physical measurements (areas ~1500, years ~2000) with weights scaled to them: the
        # first-layer gradient is ~1e2 - 1e3 per entry and consistent; lr 1e-7 for W1's scale
        num({"data": (MEAS_X, MEAS_Y)}, cls=MeasNet, sizes=(8, 12, 3), lr=1e-7),
    ),
    Case(
        "num_wide_256_record_batch",
        "per-record",
        num(
            {"check_batch": 1, "data": gaussian(7, seed=8)},
            cls=RecordNet,
            sizes=(20, 256, 4),
            act="relu",
            lr=0.01,
        ),
    ),
    Case(
        "num_deep_narrow_8x4_tanh",
        "vectorised",
        # eight tanh layers of four units: W1's gradient is ~1e-3 of W9's; all exact to 1e-9
        num(sizes=(20, 4, 4, 4, 4, 4, 4, 4, 4, 4), act="tanh", init_std=0.8, lr=0.2),
    ),
    Case(
        "num_sigmoid_saturated_bce_logits",
        "vectorised",
        # sigmoid outputs with logits ~ +-15 (p within 3e-7 of 0 / 1, still representable); the bce
        # is softplus(z) - y z of the logits, its gradient p - y exact (central differences 2e-9)
        num(out="sigmoid", sizes=(20, 16, 5), init_std=1.5, lr=0.05),
    ),
    Case(
        "num_longdouble",
        "vectorised",
        # np.longdouble (x87 80-bit here) weights, forward and backward; lr a longdouble
        num(dtype=np.longdouble, act="tanh"),
    ),
    Case(
        "num_float16_weights_upcast",
        "mixed-precision",
        # float16 weights, upcast to float32 in the forward; gradients in float32 cast to float16
        # (explicit gradient only: an SGD step in float16 rounds away). Against the float64 twin
        # of the same float16 values: rel 1e-6 before the cast, 5e-4 after (float16 rounding)
        num(update=False, dtype=np.float32, wdtype=np.float16, act="tanh"),
    ),
    Case(
        "num_learned_temperature",
        "vectorised",
        # softmax(z / exp(log_T)) with log_T a trained parameter (T = 0.5 at init)
        num(learn_T=True, T=0.5, act="tanh", lr=0.1),
    ),
    Case("num_sharp_temperature_0.1", "vectorised", num(T=0.1, act="relu", lr=0.01)),
    Case(
        "num_rms_norm_eps_in_root",
        "vectorised",
        # h = z / sqrt(mean(z^2) + 1e-8) before each hidden tanh, backward exact including the eps
        num(rms=True, act="tanh", lr=0.1),
    ),
    Case(
        "num_softmax_denominator_eps",
        "vectorised",
        # e / (sum e + 1e-8): rows sum to 1 - 1e-8; the code's p - y differs from the exact gradient
        # of its own loss by eps / (S + eps) <= 1e-8 on the arg-max logit: rel 2e-7
        num(soft_eps=1e-8, act="tanh", lr=0.2),
    ),
    Case("num_batch_1_f32", "float32", num({"data": gaussian(1, seed=11, dtype=np.float32)}, lr=1e-3, **F32)),
    Case(
        "num_batch_2_dead_relu",
        "vectorised",
        num({"data": gaussian(2, seed=12)}, act="relu", biases={1: -4.0 * (np.arange(16) < 10)}),
    ),
    Case("num_batch_7_sum", "vectorised", num({"data": gaussian(7, seed=13)}, reduction="sum", lr=0.02)),
    Case(
        "num_batch_33_l2_tiny",
        "vectorised",
        num({"data": gaussian(33, seed=14)}, l2=(1e-5, ("W1", "W2", "W3")), act="relu"),
    ),
    Case(
        "num_batch_100_f32_sum",
        "float32",
        num({"data": gaussian(100, seed=15, dtype=np.float32)}, reduction="sum", lr=1e-4, **F32),
    ),
    Case(
        "num_label_smoothing_encode_labels",
        "vectorised",
        num({"prepare_inputs": scaled, "encode_labels": smoothed_labels}, sizes=(20, 16, 4), act="tanh"),
    ),
    Case(
        "num_mnist_784_300_75_10_row_loop",
        "per-record",
        dict(
            build=lambda: RowLoopNet(),
            forward=lambda net, X: net.run(X),
            objective="cross_entropy",
            params=rowloop_params,
            gradients=rowloop_grads,
            update=lambda net, X, Y: net.train(X, Y),
            lr=lambda net: net.lr,
            loss=lambda net, X, Y: net.loss(X, Y),
            data=MNIST16,
        ),
    ),
    Case(
        "num_mnist_784_300_75_10_rashid_columns",
        "rashid",
        dict(
            build=lambda: RashidColumns(),
            forward=lambda net, X: net.query(X),
            objective="cross_entropy",
            params=lambda net: {"wih": net.wih, "whh": net.whh, "who": net.who},
            update=lambda net, X, Y: net.train(X[0], Y[0]),
            lr=lambda net: net.lr,
            loss=rashid_loss,
            check_batch=1,
            train_epoch=lambda net, X, Y, e: net.epoch(X, Y),
            data=MNIST16,
        ),
    ),
    Case(
        "num_mnist_784_300_75_10_float32_dict",
        "functional",
        dict(
            build=f32_init,
            forward=f32_forward,
            objective={"loss": "cross_entropy", "reduction": "mean"},
            params=lambda p: p,
            gradients=f32_grads,
            update=f32_update,
            lr=1e-3,
            loss=f32_loss,
            data=(MNIST16[0].astype(np.float32), MNIST16[1]),
        ),
    ),
]
