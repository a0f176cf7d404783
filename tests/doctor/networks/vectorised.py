"""Vectorised classes that update themselves in place: ``self.W1 -= self.lr * dW1``. Row vectors,
the whole batch at once. Some take no ``params=`` (their only arrays are ``W1, b1, ...``, which the
doctor discovers); float32 code, dropout drawing from ``np.random``, sigmoid hidden layers.
"""

import numpy as np

from tests.doctor.networks import Bug, Case


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def cross_entropy(p, Y):
    return float(-np.mean(np.sum(Y * np.log(np.clip(p, 1e-12, 1.0)), axis=1)))


class MLP:
    """20-16-8-4, ReLU, ReLU, softmax, cross-entropy."""

    def __init__(self, sizes=(20, 16, 8, 4), lr=0.1, seed=0):
        rng = np.random.default_rng(seed)
        d, h1, h2, c = sizes
        self.W1 = rng.standard_normal((d, h1)) * np.sqrt(2.0 / d)
        self.b1 = np.zeros(h1)
        self.W2 = rng.standard_normal((h1, h2)) * np.sqrt(2.0 / h1)
        self.b2 = np.zeros(h2)
        self.W3 = rng.standard_normal((h2, c)) * np.sqrt(2.0 / h2)
        self.b3 = np.zeros(c)
        self.lr = lr

    def predict_proba(self, X):
        a1 = np.maximum(X @ self.W1 + self.b1, 0)
        a2 = np.maximum(a1 @ self.W2 + self.b2, 0)
        return softmax(a2 @ self.W3 + self.b3)

    def train_step(self, X, Y):
        n = X.shape[0]
        z1 = X @ self.W1 + self.b1
        a1 = np.maximum(z1, 0)
        z2 = a1 @ self.W2 + self.b2
        a2 = np.maximum(z2, 0)
        p = softmax(a2 @ self.W3 + self.b3)
        dz3 = (p - Y) / n
        dW3 = a2.T @ dz3
        db3 = dz3.sum(axis=0)
        dz2 = (dz3 @ self.W3.T) * (z2 > 0)
        dW2 = a1.T @ dz2
        db2 = dz2.sum(axis=0)
        dz1 = (dz2 @ self.W2.T) * (z1 > 0)
        dW1 = X.T @ dz1
        db1 = dz1.sum(axis=0)
        self.W3 -= self.lr * dW3
        self.b3 -= self.lr * db3
        self.W2 -= self.lr * dW2
        self.b2 -= self.lr * db2
        self.W1 -= self.lr * dW1
        self.b1 -= self.lr * db1


class ZeroInit(MLP):
    def __init__(self, sizes=(20, 16, 8, 4), lr=0.1, seed=0):
        d, h1, h2, c = sizes
        # BUG: "start from zero and let the gradients decide"
        self.W1 = np.zeros((d, h1))
        self.b1 = np.zeros(h1)
        self.W2 = np.zeros((h1, h2))
        self.b2 = np.zeros(h2)
        self.W3 = np.zeros((h2, c))
        self.b3 = np.zeros(c)
        self.lr = lr


class ConstantInit(MLP):
    def __init__(self, sizes=(20, 16, 8, 4), lr=0.1, seed=0):
        d, h1, h2, c = sizes
        # BUG: every weight the same small number
        self.W1 = np.full((d, h1), 0.05)
        self.b1 = np.zeros(h1)
        self.W2 = np.full((h1, h2), 0.05)
        self.b2 = np.zeros(h2)
        self.W3 = np.full((h2, c), 0.05)
        self.b3 = np.zeros(c)
        self.lr = lr


class TanhMLP(MLP):
    def predict_proba(self, X):
        a1 = np.tanh(X @ self.W1 + self.b1)
        a2 = np.tanh(a1 @ self.W2 + self.b2)
        return softmax(a2 @ self.W3 + self.b3)

    def train_step(self, X, Y):
        n = X.shape[0]
        a1 = np.tanh(X @ self.W1 + self.b1)
        a2 = np.tanh(a1 @ self.W2 + self.b2)
        p = softmax(a2 @ self.W3 + self.b3)
        dz3 = (p - Y) / n
        dz2 = (dz3 @ self.W3.T) * (1 - a2**2)
        dz1 = (dz2 @ self.W2.T) * (1 - a1**2)
        self.W3 -= self.lr * a2.T @ dz3
        self.b3 -= self.lr * dz3.sum(axis=0)
        self.W2 -= self.lr * a1.T @ dz2
        self.b2 -= self.lr * dz2.sum(axis=0)
        self.W1 -= self.lr * X.T @ dz1
        self.b1 -= self.lr * dz1.sum(axis=0)


class BiasScalar(MLP):
    def train_step(self, X, Y):
        n = X.shape[0]
        z1 = X @ self.W1 + self.b1
        a1 = np.maximum(z1, 0)
        z2 = a1 @ self.W2 + self.b2
        a2 = np.maximum(z2, 0)
        p = softmax(a2 @ self.W3 + self.b3)
        dz3 = (p - Y) / n
        dW3 = a2.T @ dz3
        db3 = np.sum(dz3)  # BUG: no axis: one number for the whole bias
        dz2 = (dz3 @ self.W3.T) * (z2 > 0)
        dW2 = a1.T @ dz2
        db2 = np.sum(dz2)
        dz1 = (dz2 @ self.W2.T) * (z1 > 0)
        dW1 = X.T @ dz1
        db1 = np.sum(dz1)
        self.W3 -= self.lr * dW3
        self.b3 -= self.lr * db3
        self.W2 -= self.lr * dW2
        self.b2 -= self.lr * db2
        self.W1 -= self.lr * dW1
        self.b1 -= self.lr * db1


class NotAveraged(MLP):
    def train_step(self, X, Y):
        z1 = X @ self.W1 + self.b1
        a1 = np.maximum(z1, 0)
        z2 = a1 @ self.W2 + self.b2
        a2 = np.maximum(z2, 0)
        p = softmax(a2 @ self.W3 + self.b3)
        dz3 = p - Y  # BUG: the mean loss's gradient needs / n
        dz2 = (dz3 @ self.W3.T) * (z2 > 0)
        dz1 = (dz2 @ self.W2.T) * (z1 > 0)
        self.W3 -= self.lr * a2.T @ dz3
        self.b3 -= self.lr * dz3.sum(axis=0)
        self.W2 -= self.lr * a1.T @ dz2
        self.b2 -= self.lr * dz2.sum(axis=0)
        self.W1 -= self.lr * X.T @ dz1
        self.b1 -= self.lr * dz1.sum(axis=0)


class Ascent(MLP):
    def train_step(self, X, Y):
        n = X.shape[0]
        z1 = X @ self.W1 + self.b1
        a1 = np.maximum(z1, 0)
        z2 = a1 @ self.W2 + self.b2
        a2 = np.maximum(z2, 0)
        p = softmax(a2 @ self.W3 + self.b3)
        dz3 = (p - Y) / n
        dz2 = (dz3 @ self.W3.T) * (z2 > 0)
        dz1 = (dz2 @ self.W2.T) * (z1 > 0)
        # BUG: += moves up the gradient
        self.W3 += self.lr * a2.T @ dz3
        self.b3 += self.lr * dz3.sum(axis=0)
        self.W2 += self.lr * a1.T @ dz2
        self.b2 += self.lr * dz2.sum(axis=0)
        self.W1 += self.lr * X.T @ dz1
        self.b1 += self.lr * dz1.sum(axis=0)


class Accumulating(MLP):
    """Gradient buffers allocated once, "for speed", and added into on every step."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.dW1 = np.zeros_like(self.W1)
        self.db1 = np.zeros_like(self.b1)
        self.dW2 = np.zeros_like(self.W2)
        self.db2 = np.zeros_like(self.b2)
        self.dW3 = np.zeros_like(self.W3)
        self.db3 = np.zeros_like(self.b3)

    def train_step(self, X, Y):
        n = X.shape[0]
        z1 = X @ self.W1 + self.b1
        a1 = np.maximum(z1, 0)
        z2 = a1 @ self.W2 + self.b2
        a2 = np.maximum(z2, 0)
        p = softmax(a2 @ self.W3 + self.b3)
        dz3 = (p - Y) / n
        self.dW3 += a2.T @ dz3  # BUG: never set back to zero
        self.db3 += dz3.sum(axis=0)
        dz2 = (dz3 @ self.W3.T) * (z2 > 0)
        self.dW2 += a1.T @ dz2
        self.db2 += dz2.sum(axis=0)
        dz1 = (dz2 @ self.W2.T) * (z1 > 0)
        self.dW1 += X.T @ dz1
        self.db1 += dz1.sum(axis=0)
        self.W3 -= self.lr * self.dW3
        self.b3 -= self.lr * self.db3
        self.W2 -= self.lr * self.dW2
        self.b2 -= self.lr * self.db2
        self.W1 -= self.lr * self.dW1
        self.b1 -= self.lr * self.db1


class MseThroughSoftmax(MLP):
    def train_step(self, X, Y):
        n = X.shape[0]
        z1 = X @ self.W1 + self.b1
        a1 = np.maximum(z1, 0)
        z2 = a1 @ self.W2 + self.b2
        a2 = np.maximum(z2, 0)
        p = softmax(a2 @ self.W3 + self.b3)
        # BUG: "dL/dp times the softmax Jacobian" with dL/dp = p - y: squared error's gradient,
        # while the loss is cross-entropy (whose dL/dz is just p - y)
        err = p - Y
        dz3 = p * (err - np.sum(err * p, axis=1, keepdims=True)) / n
        dz2 = (dz3 @ self.W3.T) * (z2 > 0)
        dz1 = (dz2 @ self.W2.T) * (z1 > 0)
        self.W3 -= self.lr * a2.T @ dz3
        self.b3 -= self.lr * dz3.sum(axis=0)
        self.W2 -= self.lr * a1.T @ dz2
        self.b2 -= self.lr * dz2.sum(axis=0)
        self.W1 -= self.lr * X.T @ dz1
        self.b1 -= self.lr * dz1.sum(axis=0)


class SoftmaxNoShiftBiasScalar(BiasScalar):
    def predict_proba(self, X):
        a1 = np.maximum(X @ self.W1 + self.b1, 0)
        a2 = np.maximum(a1 @ self.W2 + self.b2, 0)
        e = np.exp(a2 @ self.W3 + self.b3)  # BUG: no max subtraction
        return e / e.sum(axis=1, keepdims=True)


# ------------------------------------------------------------------ float32


class MLP32:
    """float32 throughout, as people write it to halve memory."""

    def __init__(self, sizes=(20, 16, 8, 4), lr=0.1, seed=0):
        rng = np.random.default_rng(seed)
        d, h1, h2, c = sizes
        self.W1 = (rng.standard_normal((d, h1)) * np.sqrt(2.0 / d)).astype(np.float32)
        self.b1 = np.zeros(h1, dtype=np.float32)
        self.W2 = (rng.standard_normal((h1, h2)) * np.sqrt(2.0 / h1)).astype(np.float32)
        self.b2 = np.zeros(h2, dtype=np.float32)
        self.W3 = (rng.standard_normal((h2, c)) * np.sqrt(2.0 / h2)).astype(np.float32)
        self.b3 = np.zeros(c, dtype=np.float32)
        self.lr = np.float32(lr)

    def predict_proba(self, X):
        X = X.astype(np.float32)
        a1 = np.maximum(X @ self.W1 + self.b1, 0)
        a2 = np.maximum(a1 @ self.W2 + self.b2, 0)
        return softmax(a2 @ self.W3 + self.b3)

    def train_step(self, X, Y):
        X = X.astype(np.float32)
        Y = Y.astype(np.float32)
        n = np.float32(X.shape[0])
        z1 = X @ self.W1 + self.b1
        a1 = np.maximum(z1, 0)
        z2 = a1 @ self.W2 + self.b2
        a2 = np.maximum(z2, 0)
        p = softmax(a2 @ self.W3 + self.b3)
        dz3 = (p - Y) / n
        dz2 = (dz3 @ self.W3.T) * (z2 > 0)
        dz1 = (dz2 @ self.W2.T) * (z1 > 0)
        self.W3 -= self.lr * (a2.T @ dz3)
        self.b3 -= self.lr * dz3.sum(axis=0)
        self.W2 -= self.lr * (a1.T @ dz2)
        self.b2 -= self.lr * dz2.sum(axis=0)
        self.W1 -= self.lr * (X.T @ dz1)
        self.b1 -= self.lr * dz1.sum(axis=0)


class MLP32ReluOnGrad(MLP32):
    def train_step(self, X, Y):
        X = X.astype(np.float32)
        Y = Y.astype(np.float32)
        n = np.float32(X.shape[0])
        z1 = X @ self.W1 + self.b1
        a1 = np.maximum(z1, 0)
        z2 = a1 @ self.W2 + self.b2
        a2 = np.maximum(z2, 0)
        p = softmax(a2 @ self.W3 + self.b3)
        dz3 = (p - Y) / n
        dz2 = (dz3 @ self.W3.T) * (z2 > 0)
        da1 = dz2 @ self.W2.T
        dz1 = da1 * (da1 > 0)  # BUG: the mask taken from the gradient, not from z1
        self.W3 -= self.lr * (a2.T @ dz3)
        self.b3 -= self.lr * dz3.sum(axis=0)
        self.W2 -= self.lr * (a1.T @ dz2)
        self.b2 -= self.lr * dz2.sum(axis=0)
        self.W1 -= self.lr * (X.T @ dz1)
        self.b1 -= self.lr * dz1.sum(axis=0)


def one_hot_every_column(labels, n_classes):
    Y = np.zeros((len(labels), n_classes), dtype=np.float32)
    Y[:, labels] = 1.0  # BUG: sets every listed class in every row
    return Y


# ------------------------------------------------------------------ dropout


class DropoutMLP:
    """20-16-4 with inverted dropout on the hidden layer, masks from np.random."""

    def __init__(self, sizes=(20, 16, 4), lr=0.1, keep_prob=0.8, seed=0):
        rng = np.random.default_rng(seed)
        d, h, c = sizes
        self.W1 = rng.standard_normal((d, h)) * np.sqrt(2.0 / d)
        self.b1 = np.zeros(h)
        self.W2 = rng.standard_normal((h, c)) * np.sqrt(2.0 / h)
        self.b2 = np.zeros(c)
        self.lr = lr
        self.keep_prob = keep_prob
        self.training = True

    def forward(self, X):
        z1 = X @ self.W1 + self.b1
        a1 = np.maximum(z1, 0)
        if self.training:
            mask = (np.random.rand(*a1.shape) < self.keep_prob) / self.keep_prob
            a1 = a1 * mask
        return softmax(a1 @ self.W2 + self.b2)

    def gradients(self, X, Y):
        n = X.shape[0]
        z1 = X @ self.W1 + self.b1
        a1 = np.maximum(z1, 0)
        mask = (np.random.rand(*a1.shape) < self.keep_prob) / self.keep_prob
        a1d = a1 * mask
        p = softmax(a1d @ self.W2 + self.b2)
        dz2 = (p - Y) / n
        da1 = (dz2 @ self.W2.T) * mask
        dz1 = da1 * (z1 > 0)
        return {"W1": X.T @ dz1, "b1": dz1.sum(axis=0), "W2": a1d.T @ dz2, "b2": dz2.sum(axis=0)}

    def train_step(self, X, Y):
        for name, g in self.gradients(X, Y).items():
            getattr(self, name)[...] -= self.lr * g


class DropoutMaskForgotten(DropoutMLP):
    def gradients(self, X, Y):
        n = X.shape[0]
        z1 = X @ self.W1 + self.b1
        a1 = np.maximum(z1, 0)
        mask = (np.random.rand(*a1.shape) < self.keep_prob) / self.keep_prob
        a1d = a1 * mask
        p = softmax(a1d @ self.W2 + self.b2)
        dz2 = (p - Y) / n
        da1 = dz2 @ self.W2.T  # BUG: the dropout mask is not applied on the way back
        dz1 = da1 * (z1 > 0)
        return {"W1": X.T @ dz1, "b1": dz1.sum(axis=0), "W2": a1d.T @ dz2, "b2": dz2.sum(axis=0)}


# ------------------------------------------------------------------ sigmoid hidden layers


class SigmoidMLP:
    """30-20-10 with sigmoid hidden units and N(0, 1) weights: saturated, slow to start."""

    def __init__(self, sizes=(30, 20, 10), lr=0.5, seed=0):
        rng = np.random.default_rng(seed)
        d, h, c = sizes
        self.W1 = rng.standard_normal((d, h))
        self.b1 = np.zeros(h)
        self.W2 = rng.standard_normal((h, c))
        self.b2 = np.zeros(c)
        self.lr = lr

    def predict_proba(self, X):
        a1 = 1.0 / (1.0 + np.exp(-(X @ self.W1 + self.b1)))
        return softmax(a1 @ self.W2 + self.b2)

    def train_step(self, X, Y):
        n = X.shape[0]
        a1 = 1.0 / (1.0 + np.exp(-(X @ self.W1 + self.b1)))
        p = softmax(a1 @ self.W2 + self.b2)
        dz2 = (p - Y) / n
        dz1 = (dz2 @ self.W2.T) * a1 * (1.0 - a1)
        self.W2 -= self.lr * a1.T @ dz2
        self.b2 -= self.lr * dz2.sum(axis=0)
        self.W1 -= self.lr * X.T @ dz1
        self.b1 -= self.lr * dz1.sum(axis=0)


# ------------------------------------------------------------------ lists of layers


class DeepMLP:
    """Any depth: ``self.weights`` / ``self.biases`` lists, a loop over the layers going back."""

    def __init__(self, sizes=(20, 16, 16, 4), lr=0.1, seed=0):
        rng = np.random.default_rng(seed)
        self.weights = [rng.standard_normal((a, b)) * np.sqrt(2.0 / a) for a, b in zip(sizes[:-1], sizes[1:])]
        self.biases = [np.zeros(b) for b in sizes[1:]]
        self.lr = lr

    def predict_proba(self, X):
        a = X
        for W, b in zip(self.weights[:-1], self.biases[:-1]):
            a = np.maximum(a @ W + b, 0)
        return softmax(a @ self.weights[-1] + self.biases[-1])

    def mask_index(self, i):
        return i

    def train_step(self, X, Y):
        n = X.shape[0]
        activations, zs = [X], []
        a = X
        for W, b in zip(self.weights[:-1], self.biases[:-1]):
            z = a @ W + b
            zs.append(z)
            a = np.maximum(z, 0)
            activations.append(a)
        p = softmax(a @ self.weights[-1] + self.biases[-1])
        delta = (p - Y) / n
        grads_W = [None] * len(self.weights)
        grads_b = [None] * len(self.biases)
        grads_W[-1] = activations[-1].T @ delta
        grads_b[-1] = delta.sum(axis=0)
        for i in reversed(range(len(self.weights) - 1)):
            delta = (delta @ self.weights[i + 1].T) * (zs[self.mask_index(i)] > 0)
            grads_W[i] = activations[i].T @ delta
            grads_b[i] = delta.sum(axis=0)
        for W, b, gW, gb in zip(self.weights, self.biases, grads_W, grads_b):
            W -= self.lr * gW
            b -= self.lr * gb


class DeepMLPOffByOne(DeepMLP):
    def mask_index(self, i):
        return i - 1  # BUG: the layer below's pre-activation (zs[-1] for the first: it wraps)


# ------------------------------------------------------------------ adapters


def _keywords(build, loss=cross_entropy, **extra):
    keywords = dict(
        build=build,
        forward=lambda net, X: net.predict_proba(X),
        objective="cross_entropy",
        update=lambda net, X, Y: net.train_step(X, Y),
        lr=lambda net: float(net.lr),
        loss=lambda net, X, Y: loss(net.predict_proba(X), Y),
    )
    keywords.update(extra)
    return keywords


def _dropout_keywords(cls):
    return dict(
        build=lambda: cls(),
        forward=lambda net, X: net.forward(X),  # training mode: the same masks as the gradients
        objective="cross_entropy",
        gradients=lambda net, X, Y: net.gradients(X, Y),
        update=lambda net, X, Y: net.train_step(X, Y),
        lr=0.1,
        loss=lambda net, X, Y: cross_entropy(net.forward(X), Y),
        seed=1234,
    )


def mlp_params(net):
    return {"W1": net.W1, "b1": net.b1, "W2": net.W2, "b2": net.b2, "W3": net.W3, "b3": net.b3}


ALL = ("W1", "b1", "W2", "b2", "W3", "b3")
BIASES = ("b1", "b2", "b3")

CASES = [
    Case("vectorised_correct", "vectorised", _keywords(lambda: MLP(), params=mlp_params)),
    Case("vectorised_float32_correct", "float32", _keywords(lambda: MLP32())),
    Case("vectorised_dropout_fixed_seed_correct", "dropout", _dropout_keywords(DropoutMLP)),
    Case("vectorised_tanh_correct", "vectorised", _keywords(lambda: TanhMLP(lr=0.5), params=mlp_params)),
    Case("vectorised_sigmoid_plateau_correct", "vectorised", _keywords(lambda: SigmoidMLP())),
    Case("vectorised_deep_list_correct", "vectorised", _keywords(lambda: DeepMLP())),
    Case(
        "vectorised_zero_init",
        "vectorised",
        _keywords(lambda: ZeroInit()),
        # the gradients are right; every hidden unit of a layer is the same unit, forever
        [Bug("symmetry", "zero-init-symmetry")],
    ),
    Case(
        "vectorised_constant_init",
        "vectorised",
        _keywords(lambda: ConstantInit(), params=mlp_params),
        # not zero, but every unit of a layer identical: the same symmetry (the vocabulary's kind)
        [Bug("symmetry", "zero-init-symmetry")],
    ),
    Case(
        "vectorised_learning_rate_50",
        "vectorised",
        _keywords(lambda: MLP(lr=50.0), params=mlp_params),
        # correct code (same as vectorised_correct), lr 50: checked on blobs and on quadrants, the loss
        # jumps from ~1 to ~20 in one step and accuracy stays at chance; lr 0.5 learns both
        [Bug("training", "learning-rate-too-large")],
    ),
    Case(
        "vectorised_bias_sum_no_axis",
        "vectorised",
        _keywords(lambda: BiasScalar(), params=mlp_params),
        [Bug("gradient", "bias-grad-collapsed-to-scalar", BIASES)],
    ),
    Case(
        "vectorised_not_averaged",
        "vectorised",
        _keywords(lambda: NotAveraged()),
        [Bug("gradient", "gradient-not-averaged", ALL)],
    ),
    Case(
        "vectorised_gradient_ascent",
        "vectorised",
        _keywords(lambda: Ascent(), params=mlp_params),
        [Bug("gradient", "gradient-ascent-sign-error", ALL)],
    ),
    Case(
        "vectorised_gradient_buffers_accumulate",
        "vectorised",
        _keywords(lambda: Accumulating(), params=mlp_params),
        # a fresh net's first step is right; the second adds the first step's gradient again
        [Bug("state", "gradients-not-reset-between-steps")],
    ),
    Case(
        "vectorised_mse_jacobian_with_ce",
        "vectorised",
        _keywords(lambda: MseThroughSoftmax(), params=mlp_params),
        [Bug("gradient", "mse-gradient-through-softmax-with-ce-loss", ALL)],
    ),
    Case(
        "vectorised_dropout_mask_missing",
        "dropout",
        _dropout_keywords(DropoutMaskForgotten),
        # W2 and b2 see the dropped activations correctly; W1 and b1 miss the mask
        [Bug("gradient", "dropout-mask-missing-in-backward", ("W1", "b1"))],
    ),
    Case(
        "vectorised_deep_list_off_by_one",
        "vectorised",
        _keywords(lambda: DeepMLPOffByOne()),
        # both hidden deltas take the other hidden layer's ReLU mask (16 = 16 units, so it runs);
        # weights[2] / biases[2] (the output layer) are right. No params=: discovered list entries
        [
            Bug(
                "gradient",
                "off-by-one-layer-activation",
                ("weights[0]", "biases[0]", "weights[1]", "biases[1]"),
            )
        ],
    ),
    Case(
        "vectorised_overflow_bias_scalar_raw_pixels",
        "vectorised",
        _keywords(
            lambda: SoftmaxNoShiftBiasScalar(),
            params=mlp_params,
            prepare_inputs=lambda pixels: pixels.astype(np.float64),  # BUG: never / 255
        ),
        # three bugs: overflow at large inputs, scalar bias gradients, unscaled pixels
        [
            Bug("stress", "softmax-overflow-no-max-subtraction"),
            Bug("gradient", "bias-grad-collapsed-to-scalar", BIASES),
            Bug("data", "inputs-not-normalized"),
        ],
    ),
    Case(
        "vectorised_float32_relu_on_grad_bad_one_hot",
        "float32",
        _keywords(
            lambda: MLP32ReluOnGrad(),
            prepare_inputs=lambda pixels: pixels.astype(np.float32) / 255.0,
            encode_labels=one_hot_every_column,
        ),
        # two bugs: the first layer's ReLU mask from its gradient (W1, b1 only), and Y[:, labels] = 1
        [
            Bug("gradient", "relu-derivative-wrong-tensor", ("W1", "b1")),
            Bug("data", "wrong-one-hot-encoding"),
        ],
    ),
]
