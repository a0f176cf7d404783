"""float32 everywhere (``astype(np.float32)`` on every array and input), weights stored PyTorch-style
as (out, in) in row-vector code (``z = x @ W.T + b``), one class whose ``backward`` fills
``self.grads`` and whose optimizers are methods of the network itself (``adam_step``,
``momentum_step`` with ``v = mu v + g; W -= lr v``, ``sgd_step``), Keras' eps=1e-7. ReLU, ReLU,
softmax, cross-entropy; 20-16-16-4 so the middle weight is square. Second, independent collection.
"""

import numpy as np

from tests.doctor.networks import Bug, Case

F32 = np.float32
NAMES = ("W1", "b1", "W2", "b2", "W3", "b3")


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def softmax_unshifted(z):
    e = np.exp(z)  # BUG: float32 exp overflows above 88
    return e / e.sum(axis=1, keepdims=True)


class Net32:
    def __init__(self, sizes=(20, 16, 16, 4), lr=0.1, seed=0, softmax_fn=softmax):
        rng = np.random.default_rng(seed)
        d, h1, h2, c = sizes
        # kaiming-uniform, (out, in)
        self.W1 = rng.uniform(-1, 1, (h1, d)).astype(F32) * F32(np.sqrt(6.0 / d))
        self.b1 = np.zeros(h1, dtype=F32)
        self.W2 = rng.uniform(-1, 1, (h2, h1)).astype(F32) * F32(np.sqrt(6.0 / h1))
        self.b2 = np.zeros(h2, dtype=F32)
        self.W3 = rng.uniform(-1, 1, (c, h2)).astype(F32) * F32(np.sqrt(6.0 / h2))
        self.b3 = np.zeros(c, dtype=F32)
        self.lr = F32(lr)
        self.softmax = softmax_fn
        self.grads = {k: np.zeros_like(getattr(self, k)) for k in NAMES}
        self.m = {k: np.zeros_like(getattr(self, k)) for k in NAMES}
        self.v = {k: np.zeros_like(getattr(self, k)) for k in NAMES}
        self.t = 0
        self.beta1, self.beta2, self.eps = F32(0.9), F32(0.999), F32(1e-7)
        self.mu = F32(0.9)

    def __call__(self, X):
        X = X.astype(F32)
        h1 = np.maximum(X @ self.W1.T + self.b1, 0)
        h2 = np.maximum(h1 @ self.W2.T + self.b2, 0)
        return self.softmax(h2 @ self.W3.T + self.b3)

    def loss(self, X, Y):
        p = self(X)
        return float(-np.mean(np.sum(Y.astype(F32) * np.log(np.maximum(p, F32(1e-7))), axis=1)))

    def backward(self, X, Y):
        X, Y = X.astype(F32), Y.astype(F32)
        n = F32(X.shape[0])
        z1 = X @ self.W1.T + self.b1
        h1 = np.maximum(z1, 0)
        z2 = h1 @ self.W2.T + self.b2
        h2 = np.maximum(z2, 0)
        p = self.softmax(h2 @ self.W3.T + self.b3)
        g3 = (p - Y) / n
        self.grads["W3"] = g3.T @ h2  # (out, in)
        self.grads["b3"] = g3.sum(axis=0)
        g2 = (g3 @ self.W3) * (z2 > 0)
        self.grads["W2"] = g2.T @ h1
        self.grads["b2"] = g2.sum(axis=0)
        g1 = self._back_through_W2(g2) * (z1 > 0)
        self.grads["W1"] = g1.T @ X
        self.grads["b1"] = g1.sum(axis=0)
        return {k: g.copy() for k, g in self.grads.items()}

    def _back_through_W2(self, g2):
        return g2 @ self.W2

    def sgd_step(self):
        for k in NAMES:
            getattr(self, k)[...] -= self.lr * self.grads[k]

    def momentum_step(self):
        for k in NAMES:
            self.v[k] = self.mu * self.v[k] + self.grads[k]
            getattr(self, k)[...] -= self.lr * self.v[k]

    def adam_step(self):
        self.t += 1
        for k in NAMES:
            g = self.grads[k]
            self.m[k] = self.beta1 * self.m[k] + (1 - self.beta1) * g
            self.v[k] = self.beta2 * self.v[k] + (1 - self.beta2) * g * g
            m_hat = self.m[k] / (1 - self.beta1**self.t)
            v_hat = self.v[k] / (1 - self.beta2**self.t)
            getattr(self, k)[...] -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)

    def train_step(self, X, Y):
        self.backward(X, Y)
        self.sgd_step()


class AdamNoSqrt32(Net32):
    def adam_step(self):
        self.t += 1
        for k in NAMES:
            g = self.grads[k]
            self.m[k] = self.beta1 * self.m[k] + (1 - self.beta1) * g
            self.v[k] = self.beta2 * self.v[k] + (1 - self.beta2) * g * g
            m_hat = self.m[k] / (1 - self.beta1**self.t)
            v_hat = self.v[k] / (1 - self.beta2**self.t)
            getattr(self, k)[...] -= self.lr * m_hat / (v_hat + self.eps)  # BUG: no np.sqrt


class TransposedW2(Net32):
    def _back_through_W2(self, g2):
        return g2 @ self.W2.T  # BUG: W2 is stored (out, in): the input side needs g2 @ W2


class StepAsYouGo(Net32):
    """Steps each layer right after its gradient, keeping "the old W" in a local name."""

    def train_step(self, X, Y):
        X, Y = X.astype(F32), Y.astype(F32)
        n = F32(X.shape[0])
        W2, W3 = self.W2, self.W3  # BUG: names for the same arrays, not copies
        z1 = X @ self.W1.T + self.b1
        h1 = np.maximum(z1, 0)
        z2 = h1 @ W2.T + self.b2
        h2 = np.maximum(z2, 0)
        p = softmax(h2 @ W3.T + self.b3)
        g3 = (p - Y) / n
        g2 = (g3 @ W3) * (z2 > 0)  # W3 is still the forward pass's here
        self.W3 -= self.lr * (g3.T @ h2)
        self.b3 -= self.lr * g3.sum(axis=0)
        self.W2 -= self.lr * (g2.T @ h1)  # W2 moves in place ...
        self.b2 -= self.lr * g2.sum(axis=0)
        g1 = (g2 @ W2) * (z1 > 0)  # ... so this goes back through the stepped W2
        self.W1 -= self.lr * (g1.T @ X)
        self.b1 -= self.lr * g1.sum(axis=0)


def params32(net):
    return {k: getattr(net, k) for k in NAMES}


def _update_keywords(build, **extra):
    keywords = dict(
        build=build,
        forward=lambda net, X: net(X),
        objective="cross_entropy",
        params=params32,
        gradients=lambda net, X, Y: net.backward(X, Y),
        update=lambda net, X, Y: net.train_step(X, Y),
        lr=lambda net: float(net.lr),
        loss=lambda net, X, Y: net.loss(X, Y),
        prepare_inputs=lambda pixels: pixels.astype(np.float32) / np.float32(255.0),
    )
    keywords.update(extra)
    return keywords


def _optimizer_keywords(build, kind, **extra):
    steps = {"adam": lambda net: net.adam_step(), "momentum": lambda net: net.momentum_step()}

    def hyper(net):
        if kind == "adam":
            return {
                "lr": float(net.lr),
                "beta1": float(net.beta1),
                "beta2": float(net.beta2),
                "eps": float(net.eps),
            }
        return {"lr": float(net.lr), "momentum": float(net.mu)}

    keywords = dict(
        build=build,
        forward=lambda net, X: net(X),
        objective="cross_entropy",
        params=params32,
        gradients=lambda net, X, Y: net.backward(X, Y),
        loss=lambda net, X, Y: net.loss(X, Y),
        optimizer={
            "kind": kind,
            "gradients": lambda net, X, Y: net.backward(X, Y),
            "step": steps[kind],
            "hyper": hyper,
        },
    )
    keywords.update(extra)
    return keywords


CASES = [
    Case("more_f32_sgd_correct", "float32-transposed", _update_keywords(lambda: Net32())),
    Case("more_f32_adam_correct", "float32-transposed", _optimizer_keywords(lambda: Net32(lr=0.01), "adam")),
    Case(
        "more_f32_momentum_correct",
        "float32-transposed",
        _optimizer_keywords(lambda: Net32(lr=0.05), "momentum"),
    ),
    Case(
        "more_f32_adam_no_sqrt_raw_pixels",
        "float32-transposed",
        _optimizer_keywords(
            lambda: AdamNoSqrt32(lr=0.001),
            "adam",
            prepare_inputs=lambda pixels: pixels.astype(np.float32),  # BUG: never / 255
        ),
        [Bug("optimizer", "adam-missing-sqrt", NAMES), Bug("data", "inputs-not-normalized")],
    ),
    Case(
        "more_f32_w2_transposed_in_backward",
        "float32-transposed",
        _update_keywords(lambda: TransposedW2()),
        [Bug("gradient", "transposed-weight-in-backward", ("W1", "b1"))],
    ),
    Case(
        "more_f32_step_as_you_go_aliased",
        "float32-transposed",
        # no gradients=: only the update is wrong (backward() is right)
        {k: v for k, v in _update_keywords(lambda: StepAsYouGo()).items() if k != "gradients"},
        [Bug("gradient", "in-place-update-aliasing", ("W1", "b1"))],
    ),
    Case(
        "more_f32_softmax_unshifted",
        "float32-transposed",
        _update_keywords(lambda: Net32(softmax_fn=softmax_unshifted)),
        [Bug("stress", "softmax-overflow-no-max-subtraction")],
    ),
]
