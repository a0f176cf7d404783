"""Correct but unusual networks: every one is valid code that must come back without an error.

Summed objectives with un-averaged gradients, mse with scale 1 and 0.5, bce on sigmoid outputs,
softmax through ``exp(log_softmax)``, clipped and epsilon logs, L2 with a callable coefficient or on
a subset of the weights, inverted dropout on the inputs and on hidden layers (seeded), float32 code
with float32 learning rates, updates that re-bind arrays or return a new dict, callable learning
rates, tiny and wide and deep layouts, activations outside the usual three (leaky ReLU, ELU,
softplus, the tanh GELU approximation), saturated sigmoids, very slow learning rates, momentum in
its ``v = mu v - lr g`` form, Adam with eps inside the square root, Nesterov in the code's own loop,
per-record code, real MNIST images as the probe data, noisy random labels, non-zero bias init,
transposed views as ``params``, networks without biases and with biases folded into the weights.
Each was checked against central finite differences of the stated objective (and its reported
loss against the objective) before it was added. Adversarial collection for false alarms.
"""

import numpy as np

from tests.doctor.networks import Case, one_hot

# ------------------------------------------------------------------ activations and derivatives

GELU_C = np.sqrt(2.0 / np.pi)


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _gelu(z):
    return 0.5 * z * (1.0 + np.tanh(GELU_C * (z + 0.044715 * z**3)))


def _dgelu(z):
    t = np.tanh(GELU_C * (z + 0.044715 * z**3))
    return 0.5 * (1.0 + t) + 0.5 * z * (1.0 - t**2) * GELU_C * (1.0 + 3 * 0.044715 * z**2)


ACT = {
    "relu": (lambda z: np.maximum(z, 0), lambda z: (z > 0).astype(z.dtype)),
    "tanh": (np.tanh, lambda z: 1.0 - np.tanh(z) ** 2),
    "sigmoid": (_sigmoid, lambda z: _sigmoid(z) * (1.0 - _sigmoid(z))),
    "leaky": (lambda z: np.where(z > 0, z, 0.01 * z), lambda z: np.where(z > 0, 1.0, 0.01).astype(z.dtype)),
    "elu": (
        lambda z: np.where(z > 0, z, np.expm1(np.minimum(z, 0))),
        lambda z: np.where(z > 0, 1.0, np.exp(np.minimum(z, 0))).astype(z.dtype),
    ),
    "softplus": (lambda z: np.logaddexp(0, z), _sigmoid),
    "gelu": (_gelu, _dgelu),
}


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def log_softmax(z):
    m = z.max(axis=1, keepdims=True)
    return z - m - np.log(np.sum(np.exp(z - m), axis=1, keepdims=True))


# ------------------------------------------------------------------ one configurable vectorised class


class Net:
    """A vectorised MLP with attributes ``W1, b1, ...``, configured by keywords.

    ``out``: "softmax" | "logsoftmax" (``exp(log_softmax(z))``) | "sigmoid"; ``loss``: "ce" | "bce"
    | "mse"; ``reduction``: "mean" | "sum"; ``scale``: mse's factor; ``log``: how the reported loss
    guards its logarithm ("clip12", "clip15" two-sided, "eps9", "lse": from the logits);
    ``l2``: (coef, names, scale); ``keep_in`` / ``keep_h``: inverted-dropout keep probabilities of
    the inputs / of every hidden layer, masks from ``np.random.rand`` in forward and gradients alike.
    """

    def __init__(
        self,
        sizes=(20, 16, 8, 4),
        act="relu",
        out="softmax",
        loss="ce",
        reduction="mean",
        scale=0.5,
        log="clip12",
        l2=None,
        keep_in=None,
        keep_h=None,
        dtype=np.float64,
        lr=0.1,
        init_std=None,
        bias_init=0.0,
        rebind=False,
        biases=True,
        seed=0,
    ):
        rng = np.random.default_rng(seed)
        self.sizes, self.act, self.out, self.loss_name = sizes, act, out, loss
        self.reduction, self.scale, self.log, self.l2 = reduction, scale, log, l2
        self.keep_in, self.keep_h, self.dtype, self.rebind = keep_in, keep_h, dtype, rebind
        self.biases = biases
        self.lr = dtype(lr) if dtype is np.float32 else lr
        self.L = len(sizes) - 1
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
            std = init_std if init_std is not None else np.sqrt(2.0 / a)
            setattr(self, f"W{i}", (rng.standard_normal((a, b)) * std).astype(dtype))
            if biases:
                setattr(self, f"b{i}", np.full(b, bias_init, dtype=dtype))

    def names(self):
        out = []
        for i in range(1, self.L + 1):
            out.append(f"W{i}")
            if self.biases:
                out.append(f"b{i}")
        return out

    def params(self):
        return {k: getattr(self, k) for k in self.names()}

    def _mask(self, shape, keep):
        return (np.random.rand(*shape) < keep).astype(self.dtype) / self.dtype(keep)

    def _forward(self, X):
        X = X.astype(self.dtype, copy=False)
        f = ACT[self.act][0]
        cache = {"m0": None}
        a = X
        if self.keep_in is not None:
            cache["m0"] = self._mask(X.shape, self.keep_in)
            a = X * cache["m0"]
        cache["a0"] = a
        for i in range(1, self.L + 1):
            z = a @ getattr(self, f"W{i}")
            if self.biases:
                z = z + getattr(self, f"b{i}")
            cache[f"z{i}"] = z
            if i < self.L:
                a = f(z)
                cache[f"m{i}"] = None
                if self.keep_h is not None:
                    cache[f"m{i}"] = self._mask(a.shape, self.keep_h)
                    a = a * cache[f"m{i}"]
                cache[f"a{i}"] = a
        z = cache[f"z{self.L}"]
        if self.out == "softmax":
            p = softmax(z)
        elif self.out == "logsoftmax":
            cache["logp"] = log_softmax(z)
            p = np.exp(cache["logp"])
        else:
            p = _sigmoid(z)
        cache["p"] = p
        return p, cache

    def forward(self, X):
        return self._forward(X)[0]

    def _coef(self):
        coef, _, _ = self.l2
        return coef(self) if callable(coef) else coef

    def report_loss(self, X, Y):
        p, cache = self._forward(X)
        Y = Y.astype(self.dtype)
        if self.loss_name == "ce":
            if self.log == "lse" or self.out == "logsoftmax":
                logp = cache["logp"] if self.out == "logsoftmax" else log_softmax(cache[f"z{self.L}"])
            elif self.log == "clip15":
                logp = np.log(np.clip(p, 1e-15, 1 - 1e-15))
            elif self.log == "eps9":
                logp = np.log(p + 1e-9)
            else:
                logp = np.log(np.clip(p, 1e-12, 1.0))
            per = -np.sum(Y * logp, axis=1)
        elif self.loss_name == "bce":
            q = np.clip(p, 1e-7, 1 - 1e-7)
            per = -np.sum(Y * np.log(q) + (1 - Y) * np.log(1 - q), axis=1)
        else:
            per = self.scale * np.sum((p - Y) ** 2, axis=1)
        total = per.mean() if self.reduction == "mean" else per.sum()
        if self.l2 is not None:
            _, names, s = self.l2
            total = total + self._coef() * s * sum(np.sum(getattr(self, k) ** 2) for k in names)
        return float(total)

    def gradients(self, X, Y):
        p, c = self._forward(X)
        Y = Y.astype(self.dtype)
        n = X.shape[0]
        if self.loss_name in ("ce", "bce"):
            dz = p - Y
        elif self.out == "sigmoid":
            dz = 2 * self.scale * (p - Y) * p * (1 - p)
        else:
            g = 2 * self.scale * (p - Y)
            dz = p * (g - np.sum(g * p, axis=1, keepdims=True))
        if self.reduction == "mean":
            dz = dz / n
        df = ACT[self.act][1]
        grads = {}
        for i in range(self.L, 0, -1):
            grads[f"W{i}"] = c[f"a{i - 1}"].T @ dz
            if self.biases:
                grads[f"b{i}"] = dz.sum(axis=0)
            if i > 1:
                da = dz @ getattr(self, f"W{i}").T
                if c[f"m{i - 1}"] is not None:
                    da = da * c[f"m{i - 1}"]
                dz = da * df(c[f"z{i - 1}"])
        if self.l2 is not None:
            _, names, s = self.l2
            for k in names:
                grads[k] = grads[k] + 2 * s * self._coef() * getattr(self, k)
        return {k: grads[k] for k in self.names()}

    def step(self, X, Y):
        for k, g in self.gradients(X, Y).items():
            if self.rebind:
                setattr(self, k, getattr(self, k) - self.lr * g)
            else:
                getattr(self, k)[...] -= self.lr * g

    def epoch(self, X, Y, epoch, batch=16):
        for s in range(0, len(X), batch):
            self.step(X[s : s + batch], Y[s : s + batch])


def _objective(net_kwargs):
    loss = {"ce": "cross_entropy", "bce": "bce", "mse": "mse"}[net_kwargs.get("loss", "ce")]
    obj = {"loss": loss, "reduction": net_kwargs.get("reduction", "mean")}
    if loss == "mse":
        obj["scale"] = net_kwargs.get("scale", 0.5)
    l2 = net_kwargs.get("l2")
    if l2 is not None:
        coef, names, s = l2
        obj["l2"] = {"coef": coef, "params": list(names), "scale": s}
    return obj


def _net(objective=None, lr_callable=True, with_update=True, with_gradients=True, epoch=False, **kw):
    keywords = dict(
        build=lambda: Net(**kw),
        forward=lambda net, X: net.forward(X),
        objective=objective if objective is not None else _objective(kw),
        params=lambda net: net.params(),
        loss=lambda net, X, Y: net.report_loss(X, Y),
    )
    if with_gradients:
        keywords["gradients"] = lambda net, X, Y: net.gradients(X, Y)
    if with_update:
        keywords["update"] = lambda net, X, Y: net.step(X, Y)
        keywords["lr"] = (lambda net: net.lr) if lr_callable else kw.get("lr", 0.1)
    if epoch:
        keywords["train_epoch"] = lambda net, X, Y, e: net.epoch(X, Y, e)
    if kw.get("keep_in") is not None or kw.get("keep_h") is not None:
        keywords["seed"] = 4321
    return keywords


# ------------------------------------------------------------------ functional: update returns a new dict


def f_init(sizes=(16, 12, 5), seed=3):
    rng = np.random.default_rng(seed)
    return {
        f"{k}{i}": (rng.normal(0, np.sqrt(1.0 / a), (a, b)) if k == "w" else np.full(b, 0.05))
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))
        for k in ("w", "b")
    }


def f_forward(p, X):
    h = np.tanh(X @ p["w0"] + p["b0"])
    return np.exp(log_softmax(h @ p["w1"] + p["b1"]))


def f_grads(p, X, Y):
    h = np.tanh(X @ p["w0"] + p["b0"])
    probs = np.exp(log_softmax(h @ p["w1"] + p["b1"]))
    d2 = (probs - Y) / len(X)
    d1 = (d2 @ p["w1"].T) * (1 - h**2)
    return {"w0": X.T @ d1, "b0": d1.sum(0), "w1": h.T @ d2, "b1": d2.sum(0)}


def f_update(p, X, Y, lr=0.3):
    g = f_grads(p, X, Y)
    return {k: v - lr * g[k] for k, v in p.items()}  # a new dict; the old arrays untouched


def f_loss(p, X, Y):
    h = np.tanh(X @ p["w0"] + p["b0"])
    return float(-np.mean(np.sum(Y * log_softmax(h @ p["w1"] + p["b1"]), axis=1)))


# ------------------------------------------------------------------ biases folded into the weights


class Folded:
    """Theta1 (D+1, H), Theta2 (H+1, C): a column of ones prepended to X and to the hidden layer."""

    def __init__(self, sizes=(12, 10, 4), seed=5, lr=0.5):
        rng = np.random.default_rng(seed)
        d, h, c = sizes
        self.Theta1 = rng.uniform(-0.5, 0.5, (d + 1, h))
        self.Theta2 = rng.uniform(-0.5, 0.5, (h + 1, c))
        self.lr = lr

    @staticmethod
    def _ones(A):
        return np.hstack([np.ones((A.shape[0], 1)), A])

    def predict(self, X):
        a1 = self._ones(X)
        h = _sigmoid(a1 @ self.Theta1)
        return softmax(self._ones(h) @ self.Theta2)

    def grads(self, X, Y):
        a1 = self._ones(X)
        h = _sigmoid(a1 @ self.Theta1)
        a2 = self._ones(h)
        p = softmax(a2 @ self.Theta2)
        d3 = (p - Y) / len(X)
        d2 = (d3 @ self.Theta2[1:].T) * h * (1 - h)
        return {"Theta1": a1.T @ d2, "Theta2": a2.T @ d3}

    def cost(self, X, Y):
        p = self.predict(X)
        return float(-np.sum(Y * np.log(np.maximum(p, 1e-300))) / len(X))

    def fit_step(self, X, Y):
        g = self.grads(X, Y)
        self.Theta1 -= self.lr * g["Theta1"]
        self.Theta2 -= self.lr * g["Theta2"]


# ------------------------------------------------------------------ (out, in) weights, params as .T views


class OutIn:
    """Weights stored (out, in) like torch; ``params`` hands the doctor their ``.T`` views (in, out)."""

    def __init__(self, sizes=(20, 16, 4), seed=6, lr=0.2):
        rng = np.random.default_rng(seed)
        self.weight1 = rng.normal(0, 0.3, (sizes[1], sizes[0]))
        self.bias1 = rng.normal(0, 0.1, sizes[1])
        self.weight2 = rng.normal(0, 0.3, (sizes[2], sizes[1]))
        self.bias2 = rng.normal(0, 0.1, sizes[2])
        self.lr = lr

    def views(self):
        return {"W1": self.weight1.T, "b1": self.bias1, "W2": self.weight2.T, "b2": self.bias2}

    def __call__(self, X):
        h = ACT["elu"][0](X @ self.weight1.T + self.bias1)
        return softmax(h @ self.weight2.T + self.bias2)

    def grads_in_out(self, X, Y):
        z = X @ self.weight1.T + self.bias1
        h = ACT["elu"][0](z)
        d2 = (softmax(h @ self.weight2.T + self.bias2) - Y) / len(X)
        d1 = (d2 @ self.weight2) * ACT["elu"][1](z)
        return {"W1": X.T @ d1, "b1": d1.sum(0), "W2": h.T @ d2, "b2": d2.sum(0)}

    def step(self, X, Y):
        g = self.grads_in_out(X, Y)
        self.weight1 -= self.lr * g["W1"].T
        self.bias1 -= self.lr * g["b1"]
        self.weight2 -= self.lr * g["W2"].T
        self.bias2 -= self.lr * g["b2"]

    def nll(self, X, Y):
        return float(-np.mean(np.log(np.clip(np.sum(self(X) * Y, axis=1), 1e-12, None))))


# ------------------------------------------------------------------ per-record, column vectors


class RecordCols:
    """Column vectors, one record per ``train`` call (online SGD), leaky-ReLU hidden layers."""

    def __init__(self, sizes=(10, 8, 8, 3), seed=8, lr=0.05):
        rng = np.random.default_rng(seed)
        self.weights = [rng.normal(0, np.sqrt(2.0 / a), (b, a)) for a, b in zip(sizes[:-1], sizes[1:])]
        self.biases = [np.full((b, 1), 0.01) for b in sizes[1:]]
        self.lr = lr

    def feed(self, x):
        a = x.reshape(-1, 1)
        for i, (W, b) in enumerate(zip(self.weights, self.biases)):
            z = W @ a + b
            a = ACT["leaky"][0](z) if i < len(self.weights) - 1 else z
        e = np.exp(a - a.max())
        return (e / e.sum()).ravel()

    def run(self, X):
        return np.array([self.feed(x) for x in X])

    def train(self, x, y):
        a = x.reshape(-1, 1)
        acts, zs = [a], []
        for i, (W, b) in enumerate(zip(self.weights, self.biases)):
            z = W @ a + b
            zs.append(z)
            a = ACT["leaky"][0](z) if i < len(self.weights) - 1 else z
            acts.append(a)
        e = np.exp(a - a.max())
        delta = e / e.sum() - y.reshape(-1, 1)
        for i in range(len(self.weights) - 1, -1, -1):
            gW, gb = delta @ acts[i].T, delta
            if i > 0:
                delta = (self.weights[i].T @ delta) * ACT["leaky"][1](zs[i - 1])
            self.weights[i] -= self.lr * gW
            self.biases[i] -= self.lr * gb

    def epoch(self, X, Y, epoch):
        for x, y in zip(X, Y):
            self.train(x, y)


def record_params(net):
    named = {f"weights[{i}]": W for i, W in enumerate(net.weights)}
    named.update({f"biases[{i}]": b for i, b in enumerate(net.biases)})
    return named


def record_loss(net, X, Y):
    return float(-np.mean(np.log(np.clip(np.sum(net.run(X) * Y, axis=1), 1e-12, None))))


# ------------------------------------------------------------------ optimizers


class OptModel:
    """20-16-8-4 GELU; ``params`` / ``grads`` dicts; the optimizer classes below step them."""

    def __init__(self, opt, seed=9, sizes=(20, 16, 8, 4)):
        self.net = Net(sizes=sizes, act="gelu", seed=seed)
        self.params = self.net.params()
        self.opt = opt(self.params)

    def backward(self, X, Y):
        self.grads = self.net.gradients(X, Y)
        return {k: g.copy() for k, g in self.grads.items()}


class VelocityMomentum:
    """``v = mu * v - lr * g; p += v`` (cs231n's form)."""

    def __init__(self, params, lr=0.05, mu=0.9):
        self.params, self.lr, self.mu = params, lr, mu
        self.v = {k: np.zeros_like(p) for k, p in params.items()}

    def step(self, grads):
        for k, p in self.params.items():
            self.v[k] = self.mu * self.v[k] - self.lr * grads[k]
            p += self.v[k]

    def hyper(self):
        return {"lr": self.lr, "momentum": self.mu}


class AdamEpsInside:
    """Adam with the epsilon inside the square root (``sqrt(v_hat + eps)``), eps = 1e-8."""

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
            p -= self.lr * m_hat / np.sqrt(v_hat + self.eps)

    def hyper(self):
        return {"lr": self.lr, "beta1": self.b1, "beta2": self.b2, "eps": self.eps}


def _opt_keywords(opt, kind):
    return dict(
        build=lambda: OptModel(opt),
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


def nesterov_epoch(net, X, Y, epoch, lr=0.05, mu=0.9, batch=16):
    """The code's own loop: Nesterov momentum (gradient at the look-ahead point)."""
    if not hasattr(net, "velocity"):
        net.velocity = {k: np.zeros_like(p) for k, p in net.params().items()}
    for s in range(0, len(X), batch):
        params = net.params()
        for k, p in params.items():
            p += mu * net.velocity[k]
        g = net.gradients(X[s : s + batch], Y[s : s + batch])
        for k, p in params.items():
            p -= mu * net.velocity[k]
            net.velocity[k] = mu * net.velocity[k] - lr * g[k]
            p += net.velocity[k]


# ------------------------------------------------------------------ data given by the user


def mnist_data(n=32):
    from mlpx.datasets.mnist import load_mnist

    d = load_mnist()
    X = d["train_images"][:n].reshape(n, -1).astype(np.float64) / 255.0
    return X, one_hot(d["train_labels"][:n].astype(int), 10)


def noisy_data(n=48, d=12, c=4, seed=11):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)), one_hot(rng.integers(0, c, n), c)


def _scaled(pixels):
    return np.asarray(pixels, dtype=np.float64) / 255.0


def _eye(labels, n_classes):
    return np.eye(n_classes)[labels]


W3 = ("W1", "W2", "W3")

CASES = [
    Case("tricky_sum_reduction", "vectorised", _net(reduction="sum", lr=0.01)),
    Case("tricky_mse_scale1_softmax", "vectorised", _net(loss="mse", scale=1.0, lr=0.5)),
    Case(
        "tricky_mse_default_half_sigmoid",
        "vectorised",
        # objective given as the bare string: mse's default scale 0.5
        _net(objective="mse", loss="mse", out="sigmoid", act="tanh", lr=0.5),
    ),
    Case(
        "tricky_mse_sum_sigmoid",
        "vectorised",
        _net(loss="mse", out="sigmoid", reduction="sum", scale=1.0, lr=0.05),
    ),
    Case(
        "tricky_bce_sigmoid_multilabel",
        "vectorised",
        _net(loss="bce", out="sigmoid", sizes=(20, 24, 6), lr=0.5),
    ),
    Case("tricky_exp_log_softmax", "vectorised", _net(out="logsoftmax", act="softplus")),
    Case("tricky_clip_1e15_two_sided", "vectorised", _net(log="clip15")),
    Case("tricky_log_p_plus_eps", "vectorised", _net(log="eps9", lr_callable=False)),
    Case("tricky_logsumexp_loss", "vectorised", _net(log="lse", act="leaky")),
    Case(
        "tricky_l2_callable_coef_half",
        "vectorised",
        _net(l2=(lambda net: 0.02 * (1 + 0 * net.L), W3, 0.5), bias_init=0.1),
    ),
    Case("tricky_l2_scale1_subset", "vectorised", _net(l2=(0.03, ("W1", "W2"), 1.0), act="tanh")),
    Case("tricky_dropout_hidden_two_layers", "dropout", _net(keep_h=0.7)),
    Case("tricky_dropout_inputs_and_hidden", "dropout", _net(keep_in=0.8, keep_h=0.9, act="tanh")),
    Case("tricky_float32_lr32", "float32", _net(dtype=np.float32, lr=0.1, act="elu")),
    Case(
        "tricky_float32_lr32_float_lr_keyword",
        "float32",
        _net(dtype=np.float32, lr=0.05, sizes=(30, 20, 20, 5), lr_callable=False, rebind=True),
    ),
    Case("tricky_rebind_update", "vectorised", _net(rebind=True, act="gelu", lr=0.2)),
    Case("tricky_tiny_3_2_2", "vectorised", _net(sizes=(3, 2, 2), act="tanh", lr=0.5, bias_init=0.1)),
    Case("tricky_wide_64_64_10", "vectorised", _net(sizes=(64, 64, 10), epoch=True)),
    Case(
        "tricky_four_hidden_leaky", "vectorised", _net(sizes=(20, 16, 16, 12, 8, 4), act="leaky", epoch=True)
    ),
    Case("tricky_one_hidden_softplus", "vectorised", _net(sizes=(20, 10, 3), act="softplus", lr=0.5)),
    Case(
        "tricky_sigmoid_saturated_init",
        "vectorised",
        # N(0, 4^2) weights: every sigmoid saturated, a plateau; slow but the gradient is right
        _net(sizes=(20, 16, 4), act="sigmoid", init_std=4.0, epoch=True),
    ),
    Case("tricky_slow_lr_1e-3", "vectorised", _net(lr=1e-3, epoch=True)),
    Case("tricky_nonzero_bias_init", "vectorised", _net(bias_init=0.5, act="elu")),
    Case("tricky_no_biases", "vectorised", _net(biases=False, act="tanh", lr=0.3)),
    Case(
        "tricky_nesterov_own_loop",
        "vectorised",
        _net(with_update=False, act="tanh")
        | {"train_epoch": lambda net, X, Y, e: nesterov_epoch(net, X, Y, e)},
    ),
    Case(
        "tricky_functional_new_dict",
        "functional",
        dict(
            build=f_init,
            forward=f_forward,
            objective={"loss": "cross_entropy", "reduction": "mean"},
            params=lambda p: p,
            gradients=f_grads,
            update=f_update,
            lr=0.3,
            loss=f_loss,
        ),
    ),
    Case(
        "tricky_folded_bias",
        "flat",
        dict(
            build=lambda: Folded(),
            forward=lambda net, X: net.predict(X),
            objective="cross_entropy",
            params=lambda net: {"Theta1": net.Theta1, "Theta2": net.Theta2},
            gradients=lambda net, X, Y: net.grads(X, Y),
            update=lambda net, X, Y: net.fit_step(X, Y),
            lr=lambda net: net.lr,
            loss=lambda net, X, Y: net.cost(X, Y),
        ),
    ),
    Case(
        "tricky_transposed_views",
        "torch-like",
        dict(
            build=lambda: OutIn(),
            forward=lambda net, X: net(X),
            objective="cross_entropy",
            params=lambda net: net.views(),
            gradients=lambda net, X, Y: net.grads_in_out(X, Y),
            update=lambda net, X, Y: net.step(X, Y),
            lr=0.2,
            loss=lambda net, X, Y: net.nll(X, Y),
        ),
    ),
    Case(
        "tricky_per_record_columns",
        "per-record",
        dict(
            build=lambda: RecordCols(),
            forward=lambda net, X: net.run(X),
            objective="cross_entropy",
            params=record_params,
            update=lambda net, X, Y: net.train(X[0], Y[0]),
            lr=0.05,
            loss=record_loss,
            check_batch=1,
            train_epoch=lambda net, X, Y, e: net.epoch(X, Y, e),
        ),
    ),
    Case("tricky_momentum_velocity_form", "optimizer", _opt_keywords(VelocityMomentum, "momentum")),
    Case(
        "tricky_adam_eps_inside_sqrt",
        "optimizer",
        # sqrt(v_hat + eps) with eps = 1e-8 (a common variant): differs from sqrt(v_hat) + eps
        # only where |g| is of order 1e-4 or less
        _opt_keywords(AdamEpsInside, "adam"),
    ),
    Case(
        "tricky_mnist_784_32_10_user_data",
        "vectorised",
        _net(sizes=(784, 32, 10), lr=0.1, epoch=True)
        | {"data": mnist_data(), "prepare_inputs": _scaled, "encode_labels": _eye},
    ),
    Case(
        "tricky_mnist_randn_init_clipped_log",
        "vectorised",
        # np.random.randn weights (std 1) on real MNIST: p_true down to 1e-112, so the clip at 1e-12
        # is active (reported 24.0, exact objective 83.5); the gradient is exact (checked against
        # finite differences of log-softmax of the logits). Clipped logs are not a bug
        _net(sizes=(784, 64, 10), init_std=1.0) | {"data": mnist_data()},
    ),
    Case(
        "tricky_mnist_log_p_plus_eps",
        "vectorised",
        # log(p + 1e-9) with std-0.3 weights on real MNIST: reported 7.75 against the exact 7.82
        # (the epsilon matters where p_true ~ 1e-10); gradient exact
        _net(sizes=(784, 64, 10), init_std=0.3, log="eps9") | {"data": mnist_data()},
    ),
    Case(
        "tricky_mnist_randn_sigmoid_bce",
        "vectorised",
        # ReLU hidden, sigmoid outputs, bce clipped at 1e-7 (Keras' epsilon), randn weights on
        # MNIST: some outputs are exactly 0.0 or 1.0 in float64; the gradient p - y is the exact
        # gradient of the bce of the logits (softplus form), checked by finite differences
        _net(sizes=(784, 64, 10), init_std=1.0, loss="bce", out="sigmoid") | {"data": mnist_data()},
    ),
    Case(
        "tricky_large_init_logsumexp",
        "vectorised",
        # N(0, 5^2) weights: logits in the hundreds, some forward probabilities exactly 0; the loss is
        # log-sum-exp of the logits and the gradient is exact for it (finite differences of the
        # logits' log-softmax); arguable only in that forward's outputs underflow
        _net(init_std=5.0, log="lse"),
    ),
    Case(
        "tricky_noisy_labels_overfit",
        "vectorised",
        # random labels given as data: a 12-64-4 net memorises them; not a bug
        _net(sizes=(12, 64, 4), lr=0.3, epoch=True) | {"data": noisy_data()},
    ),
]
