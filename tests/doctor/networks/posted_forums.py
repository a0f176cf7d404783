"""Reddit / Stack Overflow posts in their mixed naming, all MNIST-shaped (784 inputs, 10 classes,
``data`` = real MNIST images / 255):

- ``LayerListNet``: ``self.layers = [{'W': ..., 'b': ...}, ...]``, ReLU hidden layers, softmax,
  gradients written with ``np.einsum``, ``(1, n)`` biases, ``fit(X, y, epochs, lr, batch_size)``;
  optionally float32 weights;
- ``DictNet``: ``weights['hidden']`` / ``weights['output']`` and ``biases[...]``, tanh + softmax,
  L2 written as ``weight_decay`` (``0.5 * wd * sum(W ** 2)`` in the loss, weights only);
- ``ColumnNet``: column vectors, ``W`` of (n_out, n_in), ``b`` of (n, 1), per-record ``np.outer``
  accumulated over a mini-batch (Nielsen's ``update_mini_batch`` shape);
- ``ThetaNet``: ``self.theta1`` / ``self.theta2`` with the bias folded in as column 0 (Andrew Ng's
  ex4), sigmoid outputs and per-unit binary cross-entropy.
"""

import numpy as np

from tests.doctor.networks import Bug, Case
from tests.doctor.networks.posted_mnist import eye_labels, mnist_data, scale_pixels


def relu(z):
    return np.maximum(0, z)


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _ce(p, Y):
    return float(-np.mean(np.sum(Y * np.log(np.clip(p, 1e-12, 1.0)), axis=1)))


# ---------------------------------------------------------------- self.layers = [{'W', 'b'}]


class LayerListNet:
    def __init__(self, sizes=(784, 64, 32, 10), dtype=np.float64, seed=1):
        rng = np.random.RandomState(seed)
        self.layers = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            W = (rng.randn(n_in, n_out) * np.sqrt(2.0 / n_in)).astype(dtype)
            self.layers.append({"W": W, "b": np.zeros((1, n_out), dtype=dtype)})
        self.dtype = dtype

    def feedforward(self, X):
        a = X.astype(self.dtype)
        self.acts = [a]
        for i, layer in enumerate(self.layers):
            z = a @ layer["W"] + layer["b"]
            a = softmax(z) if i == len(self.layers) - 1 else relu(z)
            self.acts.append(a)
        return a

    def predict(self, X):
        return self.feedforward(X).argmax(axis=1)

    def relu_mask(self, i):
        return self.acts[i] > 0  # relu'(z) read off the activation: a > 0 exactly where z > 0

    def back_weight(self, i):
        return self.layers[i]["W"].T

    def backward(self, X, Y):
        n = X.shape[0]
        probs = self.feedforward(X)
        delta = (probs - Y.astype(self.dtype)) / n
        grads = [None] * len(self.layers)
        for i in reversed(range(len(self.layers))):
            a_prev = self.acts[i]
            grads[i] = {
                "W": np.einsum("ni,nj->ij", a_prev, delta),
                "b": np.einsum("nj->j", delta)[None, :],
            }
            if i > 0:
                delta = np.einsum("nj,jk->nk", delta, self.back_weight(i)) * self.relu_mask(i)
        return grads

    def fit(self, X, y, epochs=5, lr=0.1, batch_size=32):
        Y = np.eye(10)[y]
        for _ in range(epochs):
            idx = np.random.permutation(len(X))
            for s in range(0, len(X), batch_size):
                b = idx[s : s + batch_size]
                grads = self.backward(X[b], Y[b])
                for layer, g in zip(self.layers, grads):
                    layer["W"] -= lr * g["W"]
                    layer["b"] -= lr * g["b"]

    def loss(self, X, Y):
        return _ce(self.feedforward(X), Y)


class MaskOneLayerUp(LayerListNet):
    def relu_mask(self, i):
        return self.acts[i + 1] > 0  # BUG: the output of layer i, not of layer i - 1 (same widths)


class ForwardWeightInBackward(LayerListNet):
    def back_weight(self, i):
        if i == len(self.layers) - 1:
            return self.layers[i]["W"].T  # ".T" added where the shapes complained
        return self.layers[i]["W"]  # BUG: W, not W.T (runs because the hidden layer is square)


class SoftmaxNoMax(LayerListNet):
    def feedforward(self, X):
        a = X.astype(self.dtype)
        self.acts = [a]
        for i, layer in enumerate(self.layers):
            z = a @ layer["W"] + layer["b"]
            if i == len(self.layers) - 1:
                a = np.exp(z) / np.sum(np.exp(z), axis=1, keepdims=True)  # BUG: no max subtracted
            else:
                a = relu(z)
            self.acts.append(a)
        return a


def _layer_names(net):
    return {f"layers[{i}][{k}]": layer[k] for i, layer in enumerate(net.layers) for k in ("W", "b")}


def _layer_keywords(cls=LayerListNet, lr=0.1, sizes=(784, 64, 32, 10), dtype=np.float64, **extra):
    keywords = dict(
        build=lambda: cls(sizes=sizes, dtype=dtype),
        forward=lambda net, X: net.feedforward(X),
        objective="cross_entropy",
        params=_layer_names,
        gradients=lambda net, X, Y: {
            f"layers[{i}][{k}]": g[k] for i, g in enumerate(net.backward(X, Y)) for k in ("W", "b")
        },
        update=lambda net, X, Y: net.fit(X, Y.argmax(1), epochs=1, lr=lr, batch_size=len(X)),
        lr=lr,
        loss=lambda net, X, Y: net.loss(X, Y),
        train_epoch=lambda net, X, Y, epoch: net.fit(X, Y.argmax(1), epochs=1, lr=lr, batch_size=16),
        seed=0,
        prepare_inputs=scale_pixels,
        encode_labels=eye_labels,
        data=mnist_data(32, start=32, dtype=np.float32 if dtype == np.float32 else np.float64),
    )
    keywords.update(extra)
    return keywords


def _lnames(*layers):
    return tuple(f"layers[{i}][{k}]" for i in layers for k in ("W", "b"))


# ---------------------------------------------------------------- weights['hidden'], weight_decay


class DictNet:
    def __init__(self, n_hidden=48, weight_decay=1e-3, lr=0.2, seed=7):
        rng = np.random.default_rng(seed)
        self.weights = {
            "hidden": rng.uniform(-1, 1, (784, n_hidden)) * np.sqrt(6.0 / (784 + n_hidden)),
            "output": rng.uniform(-1, 1, (n_hidden, 10)) * np.sqrt(6.0 / (n_hidden + 10)),
        }
        self.biases = {
            "hidden": rng.uniform(-0.1, 0.1, (1, n_hidden)),
            "output": rng.uniform(-0.1, 0.1, (1, 10)),
        }
        self.weight_decay = weight_decay
        self.lr = lr

    def predict_proba(self, X):
        self.h = np.tanh(X @ self.weights["hidden"] + self.biases["hidden"])
        return softmax(self.h @ self.weights["output"] + self.biases["output"])

    def cost(self, X, Y):
        data_loss = _ce(self.predict_proba(X), Y)
        reg = 0.5 * self.weight_decay * sum(np.sum(W * W) for W in self.weights.values())
        return data_loss + reg

    def grads(self, X, Y):
        n = len(X)
        p = self.predict_proba(X)
        d_out = (p - Y) / n
        g = {"output": self.h.T @ d_out, "b_output": d_out.sum(axis=0, keepdims=True)}
        d_hid = (d_out @ self.weights["output"].T) * (1.0 - self.h**2)
        g["hidden"] = X.T @ d_hid
        g["b_hidden"] = d_hid.sum(axis=0, keepdims=True)
        self.regularise(g)
        return g

    def regularise(self, g):
        for k in ("hidden", "output"):
            g[k] += self.weight_decay * self.weights[k]

    def step(self, X, Y):
        g = self.grads(X, Y)
        for k in ("hidden", "output"):
            self.weights[k] -= self.lr * g[k]
            self.biases[k] -= self.lr * g["b_" + k]

    def train(self, X, y, epochs=1, batch_size=16):
        Y = np.eye(10)[y]
        for _ in range(epochs):
            order = np.random.permutation(len(X))
            for s in range(0, len(X), batch_size):
                self.step(X[order[s : s + batch_size]], Y[order[s : s + batch_size]])


class DecayOnBiasesToo(DictNet):
    def regularise(self, g):
        for k in ("hidden", "output"):
            g[k] += self.weight_decay * self.weights[k]
            g["b_" + k] += self.weight_decay * self.biases[k]  # BUG: the biases are not in the cost


class DecayOnlyInCost(DictNet):
    def regularise(self, g):
        pass  # BUG: "weight_decay" is in cost() only


class DecayTwice(DictNet):
    def regularise(self, g):
        for k in ("hidden", "output"):
            g[k] += 2 * self.weight_decay * self.weights[k]  # BUG: d/dW of 0.5 wd W^2 is wd W


DICT_NAMES = ("weights[hidden]", "weights[output]", "biases[hidden]", "biases[output]")


def _dict_params(net):
    return {
        "weights[hidden]": net.weights["hidden"],
        "weights[output]": net.weights["output"],
        "biases[hidden]": net.biases["hidden"],
        "biases[output]": net.biases["output"],
    }


def _dict_keywords(cls=DictNet, weight_decay=1e-3, **extra):
    keywords = dict(
        build=lambda: cls(weight_decay=weight_decay),
        forward=lambda net, X: net.predict_proba(X),
        objective={
            "loss": "cross_entropy",
            "reduction": "mean",
            "l2": {"coef": lambda net: net.weight_decay, "params": list(DICT_NAMES[:2]), "scale": 0.5},
        },
        params=_dict_params,
        gradients=lambda net, X, Y: {
            "weights[hidden]": (g := net.grads(X, Y))["hidden"],
            "weights[output]": g["output"],
            "biases[hidden]": g["b_hidden"],
            "biases[output]": g["b_output"],
        },
        update=lambda net, X, Y: net.step(X, Y),
        lr=lambda net: net.lr,
        loss=lambda net, X, Y: net.cost(X, Y),
        train_epoch=lambda net, X, Y, epoch: net.train(X, Y.argmax(1)),
        seed=3,
        data=mnist_data(24, start=64),
    )
    keywords.update(extra)
    return keywords


# ---------------------------------------------------------------- column vectors, np.outer per record


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


class ColumnNet:
    """784-30-10, sigmoid hidden, softmax output; W (n_out, n_in), b (n, 1); per-record loop."""

    def __init__(self, sizes=(784, 30, 10), seed=2):
        rng = np.random.RandomState(seed)
        self.weights = [rng.randn(y, x) / np.sqrt(x) for x, y in zip(sizes[:-1], sizes[1:])]
        self.biases = [rng.randn(y, 1) * 0.1 for y in sizes[1:]]

    def feedforward_one(self, x):
        a = x.reshape(-1, 1)
        z1 = self.weights[0] @ a + self.biases[0]
        h = sigmoid(z1)
        z2 = self.weights[1] @ h + self.biases[1]
        e = np.exp(z2 - z2.max())
        return a, h, e / e.sum()

    def feedforward(self, X):
        return np.vstack([self.feedforward_one(x)[2].T for x in X])

    def backprop(self, x, y):
        a, h, p = self.feedforward_one(x)
        delta = p - y.reshape(-1, 1)
        nabla_b1_out = delta
        nabla_w_out = np.outer(delta, h)
        delta_h = (self.weights[1].T @ delta) * h * (1 - h)
        return [np.outer(delta_h, a), nabla_w_out], [delta_h, nabla_b1_out]

    def update_mini_batch(self, xs, ys, eta):
        nabla_w = [np.zeros(w.shape) for w in self.weights]
        nabla_b = [np.zeros(b.shape) for b in self.biases]
        for x, y in zip(xs, ys):
            dw, db = self.backprop(x, y)
            nabla_w = [nw + d for nw, d in zip(nabla_w, dw)]
            nabla_b = [nb + d for nb, d in zip(nabla_b, db)]
        self.weights = [w - (eta / len(xs)) * nw for w, nw in zip(self.weights, nabla_w)]
        self.biases = [b - (eta / len(xs)) * nb for b, nb in zip(self.biases, nabla_b)]

    def SGD(self, X, y, epochs=1, eta=0.5, batch_size=10):
        Y = np.eye(10)[y]
        for _ in range(epochs):
            perm = np.random.permutation(len(X))
            for s in range(0, len(X), batch_size):
                self.update_mini_batch(X[perm[s : s + batch_size]], Y[perm[s : s + batch_size]], eta)


class ColumnLastRecordOnly(ColumnNet):
    def update_mini_batch(self, xs, ys, eta):
        for x, y in zip(xs, ys):
            nabla_w, nabla_b = self.backprop(x, y)  # BUG: "=" each record, not accumulated
        self.weights = [w - (eta / len(xs)) * nw for w, nw in zip(self.weights, nabla_w)]
        self.biases = [b - (eta / len(xs)) * nb for b, nb in zip(self.biases, nabla_b)]


def _column_params(net):
    return {
        "weights[0]": net.weights[0],
        "weights[1]": net.weights[1],
        "biases[0]": net.biases[0],
        "biases[1]": net.biases[1],
    }


COLUMN_NAMES = ("weights[0]", "weights[1]", "biases[0]", "biases[1]")


def _column_keywords(cls=ColumnNet, eta=0.5, **extra):
    keywords = dict(
        build=lambda: cls(),
        forward=lambda net, X: net.feedforward(X),
        objective="cross_entropy",
        params=_column_params,
        update=lambda net, X, Y: net.update_mini_batch(X, Y, eta),
        lr=eta,
        loss=lambda net, X, Y: _ce(net.feedforward(X), Y),
        train_epoch=lambda net, X, Y, epoch: net.SGD(X, Y.argmax(1), epochs=1, eta=eta),
        seed=5,
        data=mnist_data(16, start=96),
    )
    keywords.update(extra)
    return keywords


class BatchColumnNet:
    """Examples in columns (X.T of (784, m)), tanh hidden, softmax over axis 0, b (n, 1),
    db = np.sum(dZ, axis=1, keepdims=True) / m - the axis people ask about, right here."""

    def __init__(self, n_h=24, learning_rate=0.3, seed=6):
        rng = np.random.RandomState(seed)
        self.params = {
            "W1": rng.randn(n_h, 784) * 0.01,
            "b1": np.zeros((n_h, 1)),
            "W2": rng.randn(10, n_h) * np.sqrt(1.0 / n_h),
            "b2": np.zeros((10, 1)),
        }
        self.learning_rate = learning_rate

    def forward_prop(self, X_cols):
        P = self.params
        Z1 = P["W1"] @ X_cols + P["b1"]
        A1 = np.tanh(Z1)
        Z2 = P["W2"] @ A1 + P["b2"]
        E = np.exp(Z2 - Z2.max(axis=0, keepdims=True))
        return A1, E / E.sum(axis=0, keepdims=True)

    def predict_proba(self, X):
        return self.forward_prop(X.T)[1].T

    def backward_prop(self, X, Y):
        m = X.shape[0]
        X_cols, Y_cols = X.T, Y.T
        A1, A2 = self.forward_prop(X_cols)
        dZ2 = A2 - Y_cols
        dW2 = (1 / m) * dZ2 @ A1.T
        db2 = (1 / m) * np.sum(dZ2, axis=1, keepdims=True)
        dZ1 = (self.params["W2"].T @ dZ2) * (1 - np.power(A1, 2))
        dW1 = (1 / m) * dZ1 @ X_cols.T
        db1 = (1 / m) * np.sum(dZ1, axis=1, keepdims=True)
        return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}

    def update_parameters(self, grads):
        for k in self.params:
            self.params[k] = self.params[k] - self.learning_rate * grads[k]


class RecordEinsumNet:
    """Pure SGD, one record at a time: x of (784,), ReLU, softmax, np.einsum('i,j->ij')."""

    def __init__(self, seed=8):
        rng = np.random.default_rng(seed)
        self.W_in = rng.normal(0, np.sqrt(2 / 784), (784, 32))
        self.bias_in = np.zeros(32)
        self.W_out = rng.normal(0, np.sqrt(1 / 32), (32, 10))
        self.bias_out = np.zeros(10)

    def predict_proba(self, X):
        return softmax(relu(X @ self.W_in + self.bias_in) @ self.W_out + self.bias_out)

    def sgd_step(self, x, y, lr):
        z = x @ self.W_in + self.bias_in
        h = relu(z)
        logits = h @ self.W_out + self.bias_out
        p = np.exp(logits - logits.max())
        p /= p.sum()
        d_out = p - y
        d_h = (self.W_out @ d_out) * (z > 0)
        self.W_out -= lr * np.einsum("i,j->ij", h, d_out)
        self.bias_out -= lr * d_out
        self.W_in -= lr * np.einsum("i,j->ij", x, d_h)
        self.bias_in -= lr * d_h

    def train(self, X, y, epochs=1, lr=0.01, batch_size=1):
        for _ in range(epochs):
            for i in np.random.permutation(len(X)):
                self.sgd_step(X[i], np.eye(10)[y[i]], lr)


# ---------------------------------------------------------------- theta with the bias folded in


class ThetaNet:
    """Ng's ex4 in NumPy: a1 = [1, x], theta1 (h, 785), theta2 (10, h + 1), sigmoid everywhere,
    J = -1/m sum(y log h + (1 - y) log(1 - h))."""

    def __init__(self, hidden=25, lr=1.0, seed=4):
        rng = np.random.RandomState(seed)
        eps1, eps2 = np.sqrt(6) / np.sqrt(785 + hidden), np.sqrt(6) / np.sqrt(hidden + 11)
        self.theta1 = rng.rand(hidden, 785) * 2 * eps1 - eps1
        self.theta2 = rng.rand(10, hidden + 1) * 2 * eps2 - eps2
        self.lr = lr

    def forward(self, X):
        m = X.shape[0]
        self.a1 = np.hstack([np.ones((m, 1)), X])
        self.a2 = np.hstack([np.ones((m, 1)), sigmoid(self.a1 @ self.theta1.T)])
        self.h = sigmoid(self.a2 @ self.theta2.T)
        return self.h

    def cost(self, X, Y):
        h = np.clip(self.forward(X), 1e-10, 1 - 1e-10)
        return float(-np.sum(Y * np.log(h) + (1 - Y) * np.log(1 - h)) / X.shape[0])

    def gradient(self, X, Y):
        m = X.shape[0]
        h = self.forward(X)
        d3 = h - Y
        d2 = (d3 @ self.theta2)[:, 1:] * self.a2[:, 1:] * (1 - self.a2[:, 1:])
        return {"theta1": self.scale(d2.T @ self.a1, m), "theta2": self.scale(d3.T @ self.a2, m)}

    def scale(self, big_delta, m):
        return big_delta / m

    def gradient_descent_step(self, X, Y):
        g = self.gradient(X, Y)
        self.theta1 = self.theta1 - self.lr * g["theta1"]
        self.theta2 = self.theta2 - self.lr * g["theta2"]


class ThetaNotDividedByM(ThetaNet):
    def scale(self, big_delta, m):
        return big_delta  # BUG: Delta never divided by m


def _theta_keywords(cls=ThetaNet, **extra):
    keywords = dict(
        build=lambda: cls(),
        forward=lambda net, X: net.forward(X),
        objective={"loss": "bce", "reduction": "mean"},
        params=lambda net: {"theta1": net.theta1, "theta2": net.theta2},
        gradients=lambda net, X, Y: net.gradient(X, Y),
        update=lambda net, X, Y: net.gradient_descent_step(X, Y),
        lr=lambda net: net.lr,
        loss=lambda net, X, Y: net.cost(X, Y),
        data=mnist_data(32, start=128),
    )
    keywords.update(extra)
    return keywords


CASES = [
    Case("posted_layers_list_einsum_relu", "posted-forums", _layer_keywords()),
    Case(
        "posted_layers_list_float32",
        "posted-forums",
        _layer_keywords(dtype=np.float32, lr=0.05, sizes=(784, 32, 32, 10)),
    ),
    Case(
        "posted_layers_list_one_hidden_lr1e-3",
        "posted-forums",
        _layer_keywords(lr=1e-3, sizes=(784, 40, 10)),
    ),
    Case(
        "posted_layers_list_mask_one_layer_up",
        "posted-forums",
        _layer_keywords(MaskOneLayerUp, sizes=(784, 10, 10, 10), lr=0.3),
        # 784-10-10-10: the delta into layers[1] is gated by the softmax output (always > 0, so no
        # gate at all) and the delta into layers[0] by layers[1]'s output: layers[2] right
        [Bug("gradient", "off-by-one-layer-activation", _lnames(0, 1))],
    ),
    Case(
        "posted_layers_list_forward_weight_in_backward",
        "posted-forums",
        _layer_keywords(ForwardWeightInBackward, sizes=(784, 32, 32, 10)),
        # the square layers[1]["W"] (32, 32) is used untransposed to carry the delta down to
        # layer 0: only layers[0]'s gradient is wrong
        [Bug("gradient", "transposed-weight-in-backward", _lnames(0))],
    ),
    Case(
        "posted_layers_list_softmax_without_max",
        "posted-forums",
        # ReLU layers are positively homogeneous: logits grow with the inputs and exp overflows
        _layer_keywords(SoftmaxNoMax),
        [Bug("stress", "softmax-overflow-no-max-subtraction")],
    ),
    Case("posted_dict_tanh_weight_decay", "posted-forums", _dict_keywords()),
    Case("posted_dict_tanh_no_decay", "posted-forums", _dict_keywords(weight_decay=0.0)),
    Case(
        "posted_dict_decay_on_biases",
        "posted-forums",
        _dict_keywords(DecayOnBiasesToo, weight_decay=0.05),
        [Bug("gradient", "l2-applied-to-biases", DICT_NAMES[2:])],
    ),
    Case(
        "posted_dict_decay_only_in_cost",
        "posted-forums",
        _dict_keywords(DecayOnlyInCost, weight_decay=0.05),
        [Bug("gradient", "l2-missing-from-gradient", DICT_NAMES[:2])],
    ),
    Case(
        "posted_dict_decay_twice",
        "posted-forums",
        _dict_keywords(DecayTwice, weight_decay=0.05),
        [Bug("gradient", "l2-gradient-wrong-factor", DICT_NAMES[:2])],
    ),
    Case("posted_columns_outer_per_record", "posted-forums", _column_keywords()),
    Case(
        "posted_columns_last_record_only",
        "posted-forums",
        _column_keywords(ColumnLastRecordOnly),
        [Bug("gradient", "only-last-sample-used", COLUMN_NAMES)],
    ),
    Case("posted_theta_folded_bias_bce", "posted-forums", _theta_keywords()),
    Case(
        "posted_columns_batched_tanh_axis1",
        "posted-forums",
        dict(
            build=lambda: BatchColumnNet(),
            forward=lambda net, X: net.predict_proba(X),
            objective="cross_entropy",
            params=lambda net: net.params,
            gradients=lambda net, X, Y: net.backward_prop(X, Y),
            update=lambda net, X, Y: net.update_parameters(net.backward_prop(X, Y)),
            lr=lambda net: net.learning_rate,
            loss=lambda net, X, Y: _ce(net.predict_proba(X), Y),
            data=mnist_data(32, start=192),
        ),
    ),
    Case(
        "posted_record_einsum_pure_sgd",
        "posted-forums",
        dict(
            build=lambda: RecordEinsumNet(),
            forward=lambda net, X: net.predict_proba(X),
            objective="cross_entropy",
            params=lambda net: {
                "W_in": net.W_in,
                "bias_in": net.bias_in,
                "W_out": net.W_out,
                "bias_out": net.bias_out,
            },
            update=lambda net, X, Y: net.sgd_step(X[0], Y[0], 0.01),
            lr=0.01,
            check_batch=1,
            loss=lambda net, X, Y: _ce(net.predict_proba(X), Y),
            train_epoch=lambda net, X, Y, epoch: net.train(X, Y.argmax(1), epochs=1, lr=0.01),
            seed=9,
            data=mnist_data(16, start=224),
        ),
    ),
    Case(
        "posted_theta_not_divided_by_m",
        "posted-forums",
        _theta_keywords(ThetaNotDividedByM),
        [Bug("gradient", "gradient-not-averaged", ("theta1", "theta2"))],
    ),
]
