"""Posted MNIST nets that "added momentum / Adam and now it does not converge": a 784-32-10
ReLU + softmax class ``MLP`` with ``self.W1, self.b1, self.W2, self.b2`` (biases ``(1, n)``),
a correct ``backward`` storing ``self.dW1`` ... and the optimizer written into the class itself:

- momentum in the deeplearning.ai EMA form ``self.vW1 = beta * self.vW1 + (1 - beta) * self.dW1;
  self.W1 -= lr * self.vW1``;
- classical momentum ``v = mu * v - lr * dW; W += v``;
- Adam with ``self.t = 0`` in ``__init__`` and ``self.t += 1`` before the bias correction.

The doctor sees ``optimizer={"kind", "gradients", "step", "hyper"}``: ``gradients`` runs the
class's own backward, ``step`` its own update, ``hyper`` the class's own hyper-parameters.

On the EMA form: it is a valid momentum method (Andrew Ng's "gradient descent with momentum",
PyTorch's ``SGD(momentum=beta, dampening=beta)``): the velocity is ``(1 - beta)`` times the
classical one, so the steps are exactly those of classical momentum with learning rate
``lr * (1 - beta)``. A user writes the adapter with the class's own ``lr`` and ``beta``, and the
network is correct; a doctor that compares against classical momentum must accept the dampened
(EMA) convention, not flag it. A second case states the classical-equivalent learning rate.
"""

import numpy as np

from tests.doctor.networks import Bug, Case
from tests.doctor.networks.posted_mnist import eye_labels, mnist_data, scale_pixels

NAMES = ("W1", "b1", "W2", "b2")


def softmax(z):
    e = np.exp(z - np.max(z, axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


class MLP:
    def __init__(self, n_in=784, n_hidden=32, n_out=10, lr=0.1, seed=0, dtype=np.float64):
        rng = np.random.default_rng(seed)
        self.W1 = (rng.standard_normal((n_in, n_hidden)) * np.sqrt(2.0 / n_in)).astype(dtype)
        self.b1 = np.zeros((1, n_hidden), dtype=dtype)
        self.W2 = (rng.standard_normal((n_hidden, n_out)) * np.sqrt(2.0 / n_hidden)).astype(dtype)
        self.b2 = np.zeros((1, n_out), dtype=dtype)
        self.lr = lr
        self.dtype = dtype
        self.init_optimizer()

    def init_optimizer(self):
        pass

    def feedforward(self, X):
        X = X.astype(self.dtype)
        self.X = X
        self.z1 = X @ self.W1 + self.b1
        self.a1 = np.maximum(self.z1, 0)
        self.probs = softmax(self.a1 @ self.W2 + self.b2)
        return self.probs

    def predict(self, X):
        return np.argmax(self.feedforward(X), axis=1)

    def backward(self, X, Y):
        m = X.shape[0]
        probs = self.feedforward(X)
        dz2 = (probs - Y.astype(self.dtype)) / m
        self.dW2 = self.a1.T @ dz2
        self.db2 = np.sum(dz2, axis=0, keepdims=True)
        dz1 = (dz2 @ self.W2.T) * (self.z1 > 0)
        self.dW1 = self.X.T @ dz1
        self.db1 = np.sum(dz1, axis=0, keepdims=True)
        return {"W1": self.dW1, "b1": self.db1, "W2": self.dW2, "b2": self.db2}

    def update(self):
        for k in NAMES:
            setattr(self, k, getattr(self, k) - self.lr * getattr(self, "d" + k))

    def hyper(self):
        return {"lr": self.lr}

    def loss(self, X, Y):
        p = self.feedforward(X)
        return float(-np.mean(np.sum(Y * np.log(p + 1e-9), axis=1)))

    def train(self, X, y, epochs=1, batch_size=16):
        Y = np.eye(10)[y]
        for _ in range(epochs):
            perm = np.random.permutation(len(X))
            for s in range(0, len(X), batch_size):
                batch = perm[s : s + batch_size]
                self.backward(X[batch], Y[batch])
                self.update()


class EMAMomentum(MLP):
    def __init__(self, beta=0.9, lr=0.5, **kwargs):
        self.beta = beta
        super().__init__(lr=lr, **kwargs)

    def init_optimizer(self):
        for k in NAMES:
            setattr(self, "v" + k, np.zeros_like(getattr(self, k)))

    def update(self):
        for k in NAMES:
            v = self.beta * getattr(self, "v" + k) + (1 - self.beta) * getattr(self, "d" + k)
            setattr(self, "v" + k, v)
            setattr(self, k, getattr(self, k) - self.lr * v)

    def hyper(self):
        return {"lr": self.lr, "momentum": self.beta}


class EMAMomentumClassicalLR(EMAMomentum):
    def hyper(self):
        return {"lr": self.lr * (1 - self.beta), "momentum": self.beta}


class EMAMomentumNotStored(EMAMomentum):
    def update(self):
        for k in NAMES:
            v = np.zeros_like(getattr(self, k))  # "initialise the velocity"... on every step
            v = self.beta * v + (1 - self.beta) * getattr(self, "d" + k)  # BUG: never kept
            setattr(self, k, getattr(self, k) - self.lr * v)


class ClassicalMomentum(MLP):
    def __init__(self, mu=0.9, lr=0.05, **kwargs):
        self.mu = mu
        super().__init__(lr=lr, **kwargs)

    def init_optimizer(self):
        self.velocity = {k: np.zeros_like(getattr(self, k)) for k in NAMES}

    def update(self):
        for k in NAMES:
            self.velocity[k] = self.mu * self.velocity[k] - self.lr * getattr(self, "d" + k)
            getattr(self, k)[...] += self.velocity[k]

    def hyper(self):
        return {"lr": self.lr, "momentum": self.mu}


class MomentumThroughLocalName(ClassicalMomentum):
    def update(self):
        for k in NAMES:
            v = self.velocity[k]  # the same array: the in-place ops below are stored
            v *= self.mu
            v -= self.lr * getattr(self, "d" + k)
            getattr(self, k)[...] += v


class MomentumVelocityIsWeights(MomentumThroughLocalName):
    def init_optimizer(self):
        # BUG: "a velocity of the weights' shape": it is the weight array itself
        self.velocity = {k: getattr(self, k) for k in NAMES}


class Adam(MLP):
    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, **kwargs):
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        super().__init__(lr=lr, **kwargs)

    def init_optimizer(self):
        self.t = 0
        self.m = {k: np.zeros_like(getattr(self, k)) for k in NAMES}
        self.v = {k: np.zeros_like(getattr(self, k)) for k in NAMES}

    def denominator(self, v_hat):
        return np.sqrt(v_hat) + self.eps

    def update(self):
        self.t += 1
        for k in NAMES:
            g = getattr(self, "d" + k)
            self.m[k] = self.beta1 * self.m[k] + (1 - self.beta1) * g
            self.v[k] = self.beta2 * self.v[k] + (1 - self.beta2) * np.square(g)
            m_hat = self.m[k] / (1 - self.beta1**self.t)
            v_hat = self.v[k] / (1 - self.beta2**self.t)
            setattr(self, k, getattr(self, k) - self.lr * m_hat / self.denominator(v_hat))

    def hyper(self):
        return {"lr": self.lr, "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps}


class AdamWeightDecay(Adam):
    """Adam with ``weight_decay`` added to the gradients (coupled L2, torch.optim.Adam's)."""

    def __init__(self, weight_decay=1e-3, **kwargs):
        self.weight_decay = weight_decay
        super().__init__(**kwargs)

    def backward(self, X, Y):
        grads = super().backward(X, Y)
        self.dW1 = self.dW1 + self.weight_decay * self.W1
        self.dW2 = self.dW2 + self.weight_decay * self.W2
        grads.update(W1=self.dW1, W2=self.dW2)
        return grads

    def loss(self, X, Y):
        reg = 0.5 * self.weight_decay * (np.sum(self.W1**2) + np.sum(self.W2**2))
        return super().loss(X, Y) + reg


class AdamNoSqrt(Adam):
    def denominator(self, v_hat):
        return v_hat + self.eps  # BUG: sqrt forgotten


class AdamSharedMoments(Adam):
    def init_optimizer(self):
        self.t = 0
        # BUG: one dict for both moments: the v[k] line reads the m[k] just written and
        # replaces it, so m_hat and v_hat are both built from that one mixed array
        self.m = self.v = {k: np.zeros_like(getattr(self, k)) for k in NAMES}


def _params(net):
    return {k: getattr(net, k) for k in NAMES}


def _keywords(build, kind, dtype=np.float64, **extra):
    keywords = dict(
        build=build,
        forward=lambda net, X: net.feedforward(X),
        objective="cross_entropy",
        params=_params,
        loss=lambda net, X, Y: net.loss(X, Y),
        optimizer={
            "kind": kind,
            "gradients": lambda net, X, Y: net.backward(X, Y),
            "step": lambda net: net.update(),
            "hyper": lambda net: net.hyper(),
        },
        train_epoch=lambda net, X, Y, epoch: net.train(X, Y.argmax(axis=1)),
        prepare_inputs=scale_pixels,
        encode_labels=eye_labels,
        seed=1,
        data=mnist_data(32, start=160, dtype=dtype),
    )
    keywords.update(extra)
    return keywords


def _sgd_keywords(**extra):
    # the plain class adapted the other way: update = backward then update
    def step(net, X, Y):
        net.backward(X, Y)
        net.update()

    return dict(
        build=lambda: MLP(lr=0.2),
        forward=lambda net, X: net.feedforward(X),
        objective="cross_entropy",
        params=_params,
        gradients=lambda net, X, Y: net.backward(X, Y),
        update=step,
        lr=lambda net: net.lr,
        loss=lambda net, X, Y: net.loss(X, Y),
        train_epoch=lambda net, X, Y, epoch: net.train(X, Y.argmax(axis=1)),
        seed=1,
        data=mnist_data(32, start=160),
        **extra,
    )


CASES = [
    Case("posted_optim_plain_sgd_update", "posted-optimizer", _sgd_keywords()),
    Case("posted_optim_sgd_kind", "posted-optimizer", _keywords(lambda: MLP(lr=0.2), "sgd")),
    Case(
        "posted_optim_ema_momentum",
        "posted-optimizer",
        # v = beta v + (1 - beta) dW; W -= lr v; hyper = the class's own lr and beta (see module doc)
        _keywords(lambda: EMAMomentum(beta=0.9, lr=0.5), "momentum"),
    ),
    Case(
        "posted_optim_ema_momentum_classical_lr",
        "posted-optimizer",
        _keywords(lambda: EMAMomentumClassicalLR(beta=0.9, lr=0.5), "momentum"),
    ),
    Case(
        "posted_optim_classical_momentum_inplace",
        "posted-optimizer",
        _keywords(lambda: ClassicalMomentum(mu=0.9, lr=0.05), "momentum"),
    ),
    Case(
        "posted_optim_momentum_local_name_inplace",
        "posted-optimizer",
        _keywords(lambda: MomentumThroughLocalName(mu=0.9, lr=0.05), "momentum"),
    ),
    Case(
        "posted_optim_adam_t_incremented_first",
        "posted-optimizer",
        _keywords(lambda: Adam(lr=1e-3), "adam"),
    ),
    Case(
        "posted_optim_adam_weight_decay",
        "posted-optimizer",
        _keywords(
            lambda: AdamWeightDecay(weight_decay=1e-2, lr=2e-3),
            "adam",
            objective={
                "loss": "cross_entropy",
                "reduction": "mean",
                "l2": {"coef": 1e-2, "params": ["W1", "W2"], "scale": 0.5},
            },
        ),
    ),
    Case(
        "posted_optim_adam_float32",
        "posted-optimizer",
        _keywords(lambda: Adam(lr=3e-3, dtype=np.float32), "adam", dtype=np.float32),
    ),
    Case(
        "posted_optim_ema_momentum_not_stored",
        "posted-optimizer",
        _keywords(lambda: EMAMomentumNotStored(beta=0.9, lr=0.5), "momentum"),
        [Bug("optimizer", "momentum-velocity-not-stored", NAMES)],
    ),
    Case(
        "posted_optim_velocity_is_weights",
        "posted-optimizer",
        _keywords(lambda: MomentumVelocityIsWeights(mu=0.9, lr=0.05), "momentum"),
        [Bug("optimizer", "in-place-update-aliasing", NAMES)],
    ),
    Case(
        "posted_optim_adam_no_sqrt",
        "posted-optimizer",
        _keywords(lambda: AdamNoSqrt(lr=1e-3), "adam"),
        [Bug("optimizer", "adam-missing-sqrt", NAMES)],
    ),
    Case(
        "posted_optim_adam_shared_moments",
        "posted-optimizer",
        _keywords(lambda: AdamSharedMoments(lr=1e-3), "adam"),
        [Bug("optimizer", "in-place-update-aliasing", NAMES)],
    ),
]
