"""An optimizer class with ``step()``, PyTorch-like, over a model holding a dict of parameters and
the gradients of its last backward pass. The doctor gets ``optimizer={"kind", "gradients",
"step", "hyper"}``; the model's backprop is correct in every case here, only the steps differ.
"""

import numpy as np

from tests.doctor.networks import Bug, Case


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class Model:
    """20-16-8-4, ReLU, softmax, cross-entropy; ``params`` and ``grads`` dicts."""

    def __init__(self, optimizer, sizes=(20, 16, 8, 4), seed=0):
        rng = np.random.default_rng(seed)
        self.params = {}
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
            self.params[f"W{i}"] = rng.normal(0.0, np.sqrt(2.0 / a), (a, b))
            self.params[f"b{i}"] = np.zeros(b)
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.optimizer = optimizer(self.params, self.grads)

    def predict_proba(self, X):
        P = self.params
        a1 = np.maximum(X @ P["W1"] + P["b1"], 0)
        a2 = np.maximum(a1 @ P["W2"] + P["b2"], 0)
        return softmax(a2 @ P["W3"] + P["b3"])

    def backward(self, X, Y):
        P, G = self.params, self.grads
        n = X.shape[0]
        z1 = X @ P["W1"] + P["b1"]
        a1 = np.maximum(z1, 0)
        z2 = a1 @ P["W2"] + P["b2"]
        a2 = np.maximum(z2, 0)
        p = softmax(a2 @ P["W3"] + P["b3"])
        dz3 = (p - Y) / n
        G["W3"][...] = a2.T @ dz3
        G["b3"][...] = dz3.sum(axis=0)
        dz2 = (dz3 @ P["W3"].T) * (z2 > 0)
        G["W2"][...] = a1.T @ dz2
        G["b2"][...] = dz2.sum(axis=0)
        dz1 = (dz2 @ P["W2"].T) * (z1 > 0)
        G["W1"][...] = X.T @ dz1
        G["b1"][...] = dz1.sum(axis=0)
        return {k: g.copy() for k, g in G.items()}

    def loss(self, X, Y):
        p = np.clip(self.predict_proba(X), 1e-12, 1.0)
        return float(-np.mean(np.sum(Y * np.log(p), axis=1)))


class SGD:
    def __init__(self, params, grads, lr=0.1):
        self.params, self.grads, self.lr = params, grads, lr

    def step(self):
        for k, p in self.params.items():
            p -= self.lr * self.grads[k]

    def hyper(self):
        return {"lr": self.lr}


class SGDAscent(SGD):
    def step(self):
        for k, p in self.params.items():
            p += self.lr * self.grads[k]  # BUG: up the gradient


class Momentum:
    def __init__(self, params, grads, lr=0.05, momentum=0.9):
        self.params, self.grads, self.lr, self.mu = params, grads, lr, momentum
        self.velocity = {k: np.zeros_like(p) for k, p in params.items()}

    def step(self):
        for k, p in self.params.items():
            self.velocity[k] = self.mu * self.velocity[k] - self.lr * self.grads[k]
            p += self.velocity[k]

    def hyper(self):
        return {"lr": self.lr, "momentum": self.mu}


class MomentumLocalVelocity(Momentum):
    def step(self):
        for k, p in self.params.items():
            v = self.velocity.get(k, np.zeros_like(p))
            v = self.mu * v - self.lr * self.grads[k]  # BUG: never written back to self.velocity
            p += v


class HeavyBall(Momentum):
    """Momentum written as "keep going the way the weights last moved"."""

    def __init__(self, params, grads, lr=0.05, momentum=0.9):
        super().__init__(params, grads, lr, momentum)
        self.previous = {k: p.copy() for k, p in params.items()}

    def step(self):
        for k, p in self.params.items():
            step = -self.lr * self.grads[k] + self.mu * (p - self.previous[k])
            self.previous[k] = p.copy()
            p += step


class HeavyBallAliased(HeavyBall):
    def step(self):
        for k, p in self.params.items():
            step = -self.lr * self.grads[k] + self.mu * (p - self.previous[k])
            self.previous[k] = p  # BUG: the same array, so p - previous is 0 from then on
            p += step


class Adam:
    def __init__(self, params, grads, lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8):
        self.params, self.grads = params, grads
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.m = {k: np.zeros_like(p) for k, p in params.items()}
        self.v = {k: np.zeros_like(p) for k, p in params.items()}
        self.t = 0

    def step(self):
        self.t += 1
        for k, p in self.params.items():
            g = self.grads[k]
            self.m[k] = self.beta1 * self.m[k] + (1 - self.beta1) * g
            self.v[k] = self.beta2 * self.v[k] + (1 - self.beta2) * g**2
            m_hat = self.m[k] / (1 - self.beta1**self.t)
            v_hat = self.v[k] / (1 - self.beta2**self.t)
            p -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)

    def hyper(self):
        return {"lr": self.lr, "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps}


class AdamNoSqrt(Adam):
    def step(self):
        self.t += 1
        for k, p in self.params.items():
            g = self.grads[k]
            self.m[k] = self.beta1 * self.m[k] + (1 - self.beta1) * g
            self.v[k] = self.beta2 * self.v[k] + (1 - self.beta2) * g**2
            m_hat = self.m[k] / (1 - self.beta1**self.t)
            v_hat = self.v[k] / (1 - self.beta2**self.t)
            p -= self.lr * m_hat / (v_hat + self.eps)  # BUG: v_hat, not its square root


class AdamSharedMoments(Adam):
    def __init__(self, params, grads, lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8):
        super().__init__(params, grads, lr, beta1, beta2, eps)
        self.m = self.v = {k: np.zeros_like(p) for k, p in params.items()}  # BUG: one dict for both


KIND = {SGD: "sgd", Momentum: "momentum", Adam: "adam"}


def _keywords(optimizer_cls):
    kind = next(name for base, name in KIND.items() if issubclass(optimizer_cls, base))

    def step(net):
        net.optimizer.step()

    return dict(
        build=lambda: Model(optimizer_cls),
        forward=lambda net, X: net.predict_proba(X),
        objective="cross_entropy",
        params=lambda net: net.params,
        gradients=lambda net, X, Y: net.backward(X, Y),
        loss=lambda net, X, Y: net.loss(X, Y),
        optimizer={
            "kind": kind,
            "gradients": lambda net, X, Y: net.backward(X, Y),
            "step": step,
            "hyper": lambda net: net.optimizer.hyper(),
        },
    )


ALL = ("W1", "b1", "W2", "b2", "W3", "b3")

CASES = [
    Case("optimizer_sgd_correct", "optimizer", _keywords(SGD)),
    Case("optimizer_momentum_correct", "optimizer", _keywords(Momentum)),
    Case("optimizer_heavy_ball_correct", "optimizer", _keywords(HeavyBall)),
    Case("optimizer_adam_correct", "optimizer", _keywords(Adam)),
    Case(
        "optimizer_sgd_ascent",
        "optimizer",
        _keywords(SGDAscent),
        # the gradients are right, the step adds them
        [Bug("optimizer", "gradient-ascent-sign-error", ALL)],
    ),
    Case(
        "optimizer_momentum_local_velocity",
        "optimizer",
        _keywords(MomentumLocalVelocity),
        # every step is plain SGD's: the first matches momentum, the second on do not
        [Bug("optimizer", "momentum-velocity-not-stored", ALL)],
    ),
    Case(
        "optimizer_heavy_ball_aliased",
        "optimizer",
        _keywords(HeavyBallAliased),
        # previous[k] is p itself after the first step: momentum silently becomes SGD
        [Bug("optimizer", "in-place-update-aliasing", ALL)],
    ),
    Case(
        "optimizer_adam_no_sqrt",
        "optimizer",
        _keywords(AdamNoSqrt),
        [Bug("optimizer", "adam-missing-sqrt", ALL)],
    ),
    Case(
        "optimizer_adam_shared_moments",
        "optimizer",
        _keywords(AdamSharedMoments),
        # self.m is self.v: v's update overwrites m's, then m_hat reads v (an aliasing bug)
        [Bug("optimizer", "in-place-update-aliasing", ALL)],
    ),
]
