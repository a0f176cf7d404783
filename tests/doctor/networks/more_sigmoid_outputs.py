"""Sigmoid output units, vectorised over the batch, in-place updates: squared error on sigmoid
outputs done right ("Make Your Own Neural Network", but batched, three leaky-ReLU hidden layers)
and per-unit binary cross-entropy with one tanh hidden layer (30-20-5). Weights in a ``W`` list,
biases in a ``B`` list of (1, units) rows. Second, independent collection.
"""

import numpy as np

from tests.doctor.networks import Bug, Case


def sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # overflow-free logistic


def leaky(z):
    return np.where(z > 0, z, 0.05 * z)


def dleaky(z):
    return np.where(z > 0, 1.0, 0.05)


class SigmoidOutNet:
    def __init__(self, sizes=(20, 16, 16, 8, 4), hidden="leaky", lr=0.5, seed=0, output_delta="right"):
        rng = np.random.default_rng(seed)
        self.W = [rng.normal(0, 1, (a, b)) * np.sqrt(2.0 / (a + b)) for a, b in zip(sizes[:-1], sizes[1:])]
        self.B = [np.full((1, b), 0.01) for b in sizes[1:]]
        self.hidden = hidden
        self.lr = lr
        self.output_delta = output_delta

    def act(self, z):
        return np.tanh(z) if self.hidden == "tanh" else leaky(z)

    def dact(self, z, a):
        return 1.0 - a**2 if self.hidden == "tanh" else dleaky(z)

    def forward(self, X):
        zs, acts = [], [X]
        a = X
        for i, (W, b) in enumerate(zip(self.W, self.B)):
            z = a @ W + b
            zs.append(z)
            a = sigmoid(z) if i == len(self.W) - 1 else self.act(z)
            acts.append(a)
        return zs, acts

    def query(self, X):
        return self.forward(X)[1][-1]

    def delta_out(self, z, out, Y):
        """dL/dz at the output for the mean of 0.5 |out - y|^2."""
        if self.output_delta == "missing":
            return out - Y  # BUG: the sigmoid's derivative left out
        if self.output_delta == "on_z":
            return (out - Y) * z * (1.0 - z)  # BUG: s(1 - s) evaluated on z instead of s(z)
        return (out - Y) * out * (1.0 - out)

    def train(self, X, Y):
        n = X.shape[0]
        zs, acts = self.forward(X)
        delta = self.delta_out(zs[-1], acts[-1], Y) / n
        for i in reversed(range(len(self.W))):
            dW = acts[i].T @ delta
            dB = delta.sum(axis=0, keepdims=True)
            if i:
                delta = (delta @ self.W[i].T) * self.dact(zs[i - 1], acts[i])
            self.W[i] -= self.lr * dW
            self.B[i] -= self.lr * dB

    def mse(self, X, Y):
        return float(np.mean(0.5 * np.sum((self.query(X) - Y) ** 2, axis=1)))


class BCENet(SigmoidOutNet):
    def delta_out(self, z, out, Y):
        return out - Y  # right for binary cross-entropy on sigmoid outputs

    def bce(self, X, Y):
        p = np.clip(self.query(X), 1e-9, 1 - 1e-9)
        return float(np.mean(-np.sum(Y * np.log(p) + (1 - Y) * np.log(1 - p), axis=1)))


def params(net):
    named = {}
    for i, (W, b) in enumerate(zip(net.W, net.B)):
        named[f"W[{i}]"] = W
        named[f"B[{i}]"] = b
    return named


MSE = {"loss": "mse", "reduction": "mean", "scale": 0.5}


def _keywords(build, loss="mse"):
    return dict(
        build=build,
        forward=lambda net, X: net.query(X),
        objective=MSE if loss == "mse" else {"loss": "bce", "reduction": "mean"},
        params=params,
        update=lambda net, X, Y: net.train(X, Y),
        lr=lambda net: net.lr,
        loss=lambda net, X, Y: net.mse(X, Y) if loss == "mse" else net.bce(X, Y),
    )


ALL4 = tuple(f"{k}[{i}]" for i in range(4) for k in ("W", "B"))

CASES = [
    Case("more_sig_mse_three_hidden_correct", "sigmoid-outputs", _keywords(lambda: SigmoidOutNet())),
    Case(
        "more_sig_bce_one_hidden_correct",
        "sigmoid-outputs",
        _keywords(lambda: BCENet(sizes=(30, 20, 5), hidden="tanh"), loss="bce"),
    ),
    Case(
        "more_sig_mse_output_derivative_missing",
        "sigmoid-outputs",
        _keywords(lambda: SigmoidOutNet(output_delta="missing")),
        [Bug("gradient", "missing-activation-derivative", ALL4)],
    ),
    Case(
        "more_sig_mse_output_derivative_on_z",
        "sigmoid-outputs",
        _keywords(lambda: SigmoidOutNet(output_delta="on_z")),
        [Bug("gradient", "sigmoid-derivative-on-preactivation", ALL4)],
    ),
]
