"""Test network plugins: ``tiny`` (a correct 784-32-10 ReLU/softmax network in the style of plain
functions over a dict of arrays, trained by its own SGD ``update``), ``tiny_grads`` (the same
network giving only its gradients, stepped by mlpx's optimizer) and ``tiny_broken`` (its
backward pass uses squared error through softmax while it says it minimises cross-entropy)."""

import numpy as np

import mlpx
from mlpx.doctor import Network

SIZES = (784, 32, 10)
LR = 0.1


def build(sizes=SIZES):
    rng = np.random.default_rng(0)
    return {
        "W1": rng.normal(0, np.sqrt(2 / sizes[0]), (sizes[0], sizes[1])),
        "b1": np.zeros(sizes[1]),
        "W2": rng.normal(0, np.sqrt(2 / sizes[1]), (sizes[1], sizes[2])),
        "b2": np.zeros(sizes[2]),
    }


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _forward(net, x):
    z1 = x @ net["W1"] + net["b1"]
    a1 = np.maximum(z1, 0)
    return z1, a1, _softmax(a1 @ net["W2"] + net["b2"])


def forward(net, x):
    return _forward(net, x)[2]


def loss(net, x, y):
    return float(-np.mean(np.sum(y * np.log(np.clip(forward(net, x), 1e-12, 1)), axis=1)))


def gradients(net, x, y, broken=False):
    z1, a1, p = _forward(net, x)
    n = len(x)
    d2 = (p - y) / n
    if broken:  # the seed question's mistake: the output delta of squared error through softmax
        d2 = (p - y) * p * (1 - p) / n
    d1 = (d2 @ net["W2"].T) * (z1 > 0)
    return {"W1": x.T @ d1, "b1": d1.sum(axis=0), "W2": a1.T @ d2, "b2": d2.sum(axis=0)}


def update(net, x, y, broken=False):
    for key, g in gradients(net, x, y, broken).items():
        net[key] -= LR * g


def tiny():
    return Network(
        build=build, forward=forward, objective="cross_entropy", params=lambda net: net,
        gradients=gradients, update=update, lr=LR, loss=loss,
    )  # fmt: skip


def tiny_grads():
    return Network(build=build, forward=forward, objective="cross_entropy", params=dict, gradients=gradients)


def tiny_broken():
    return Network(
        build=build, forward=forward, objective="cross_entropy", params=lambda net: net,
        gradients=lambda net, x, y: gradients(net, x, y, broken=True),
        update=lambda net, x, y: update(net, x, y, broken=True), lr=LR, loss=loss,
    )  # fmt: skip


@mlpx.hookimpl
def register_networks(register):
    register("tiny", tiny)
    register("tiny_grads", tiny_grads)
    register("tiny_broken", tiny_broken)
