"""Nielsen's "Neural Networks and Deep Learning", retyped: chapter 1's ``network.py`` (quadratic
cost, sigmoid everywhere, ``SGD`` shuffling with Python's ``random`` and calling
``update_mini_batch(mini_batch, eta)`` which sums ``nabla_b`` / ``nabla_w`` from ``backprop`` and
steps ``eta / len(mini_batch)``) and chapter 3's ``network2.py`` (``QuadraticCost`` /
``CrossEntropyCost`` classes with static ``fn`` and ``delta``, the cross-entropy's delta being
``(a - y)``, L2 through ``(1 - eta * (lmbda / n)) * w``). Column vectors (n, 1) throughout.

network.py's objective is 0.5 * ||a - y||^2 averaged over the mini-batch (what
``eta / len(mini_batch)`` implies); network2's is per-unit cross-entropy averaged plus
``0.5 * (lmbda / n) * sum ||w||^2`` (its ``total_cost``).
"""

import random

import numpy as np

from tests.doctor.networks import Bug, Case

SIZES = [12, 10, 4]
D_IN, N_OUT = SIZES[0], SIZES[-1]
ETA = 3.0
ETA2, LMBDA, N_TRAIN = 0.5, 5.0, 1000


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def sigmoid_prime(z):
    return sigmoid(z) * (1 - sigmoid(z))


class QuadraticCost:
    @staticmethod
    def fn(a, y):
        return 0.5 * np.linalg.norm(a - y) ** 2

    @staticmethod
    def delta(z, a, y):
        return (a - y) * sigmoid_prime(z)


class CrossEntropyCost:
    @staticmethod
    def fn(a, y):
        return np.sum(np.nan_to_num(-y * np.log(a) - (1 - y) * np.log(1 - a)))

    @staticmethod
    def delta(z, a, y):
        return a - y


class Network:
    """network.py"""

    def __init__(self, sizes, seed=1):
        np.random.seed(seed)
        self.num_layers = len(sizes)
        self.sizes = sizes
        self.biases = [np.random.randn(y, 1) for y in sizes[1:]]
        self.weights = [np.random.randn(y, x) for x, y in zip(sizes[:-1], sizes[1:])]

    def feedforward(self, a):
        for b, w in zip(self.biases, self.weights):
            a = sigmoid(np.dot(w, a) + b)
        return a

    def SGD(self, training_data, epochs, mini_batch_size, eta):
        n = len(training_data)
        for _ in range(epochs):
            random.shuffle(training_data)
            mini_batches = [training_data[k : k + mini_batch_size] for k in range(0, n, mini_batch_size)]
            for mini_batch in mini_batches:
                self.update_mini_batch(mini_batch, eta)

    def update_mini_batch(self, mini_batch, eta):
        nabla_b = [np.zeros(b.shape) for b in self.biases]
        nabla_w = [np.zeros(w.shape) for w in self.weights]
        for x, y in mini_batch:
            delta_nabla_b, delta_nabla_w = self.backprop(x, y)
            nabla_b = [nb + dnb for nb, dnb in zip(nabla_b, delta_nabla_b)]
            nabla_w = [nw + dnw for nw, dnw in zip(nabla_w, delta_nabla_w)]
        self.step(nabla_b, nabla_w, eta, len(mini_batch))

    def step(self, nabla_b, nabla_w, eta, m):
        self.weights = [w - (eta / m) * nw for w, nw in zip(self.weights, nabla_w)]
        self.biases = [b - (eta / m) * nb for b, nb in zip(self.biases, nabla_b)]

    def output_delta(self, z, a, y):
        return self.cost_derivative(a, y) * sigmoid_prime(z)

    def backprop(self, x, y):
        nabla_b = [np.zeros(b.shape) for b in self.biases]
        nabla_w = [np.zeros(w.shape) for w in self.weights]
        activation = x
        activations = [x]
        zs = []
        for b, w in zip(self.biases, self.weights):
            z = np.dot(w, activation) + b
            zs.append(z)
            activation = sigmoid(z)
            activations.append(activation)
        delta = self.output_delta(zs[-1], activations[-1], y)
        nabla_b[-1] = delta
        nabla_w[-1] = np.dot(delta, activations[-2].transpose())
        for l in range(2, self.num_layers):  # noqa: E741 (Nielsen's name)
            z = zs[-l]
            sp = sigmoid_prime(z)
            delta = np.dot(self.weights[-l + 1].transpose(), delta) * sp
            nabla_b[-l] = delta
            nabla_w[-l] = np.dot(delta, activations[-l - 1].transpose())
        return (nabla_b, nabla_w)

    def cost_derivative(self, output_activations, y):
        return output_activations - y


class NetworkEtaNotDivided(Network):
    def step(self, nabla_b, nabla_w, eta, m):
        # BUG: "eta * nw": the sum over the mini-batch stepped as if it were the mean
        self.weights = [w - eta * nw for w, nw in zip(self.weights, nabla_w)]
        self.biases = [b - eta * nb for b, nb in zip(self.biases, nabla_b)]


class Network2(Network):
    """network2.py: default_weight_initializer, a cost class, L2."""

    def __init__(self, sizes, cost=CrossEntropyCost, seed=1):
        np.random.seed(seed)
        self.num_layers = len(sizes)
        self.sizes = sizes
        self.biases = [np.random.randn(y, 1) for y in sizes[1:]]
        self.weights = [np.random.randn(y, x) / np.sqrt(x) for x, y in zip(sizes[:-1], sizes[1:])]
        self.cost = cost

    def output_delta(self, z, a, y):
        return (self.cost).delta(z, a, y)

    def update_mini_batch(self, mini_batch, eta, lmbda, n):
        nabla_b = [np.zeros(b.shape) for b in self.biases]
        nabla_w = [np.zeros(w.shape) for w in self.weights]
        for x, y in mini_batch:
            delta_nabla_b, delta_nabla_w = self.backprop(x, y)
            nabla_b = [nb + dnb for nb, dnb in zip(nabla_b, delta_nabla_b)]
            nabla_w = [nw + dnw for nw, dnw in zip(nabla_w, delta_nabla_w)]
        self.weights = [
            (1 - eta * (lmbda / n)) * w - (eta / len(mini_batch)) * nw for w, nw in zip(self.weights, nabla_w)
        ]
        self.biases = [b - (eta / len(mini_batch)) * nb for b, nb in zip(self.biases, nabla_b)]

    def total_cost(self, data, lmbda, n):
        cost = 0.0
        for x, y in data:
            a = self.feedforward(x)
            cost += self.cost.fn(a, y) / len(data)
        cost += 0.5 * (lmbda / n) * sum(np.linalg.norm(w) ** 2 for w in self.weights)
        return cost


class Network2DecayWithoutN(Network2):
    def update_mini_batch(self, mini_batch, eta, lmbda, n):
        nabla_b = [np.zeros(b.shape) for b in self.biases]
        nabla_w = [np.zeros(w.shape) for w in self.weights]
        for x, y in mini_batch:
            delta_nabla_b, delta_nabla_w = self.backprop(x, y)
            nabla_b = [nb + dnb for nb, dnb in zip(nabla_b, delta_nabla_b)]
            nabla_w = [nw + dnw for nw, dnw in zip(nabla_w, delta_nabla_w)]
        # BUG: (1 - eta * lmbda): the "/ n" of lmbda / n dropped, decay n times too strong
        self.weights = [
            (1 - eta * lmbda) * w - (eta / len(mini_batch)) * nw for w, nw in zip(self.weights, nabla_w)
        ]
        self.biases = [b - (eta / len(mini_batch)) * nb for b, nb in zip(self.biases, nabla_b)]


class Network2BiasesOverwritten(Network2):
    def update_mini_batch(self, mini_batch, eta, lmbda, n):
        nabla_b = [np.zeros(b.shape) for b in self.biases]
        nabla_w = [np.zeros(w.shape) for w in self.weights]
        for x, y in mini_batch:
            delta_nabla_b, delta_nabla_w = self.backprop(x, y)
            nabla_b = delta_nabla_b  # BUG: assigned, not accumulated (the weights' line is right)
            nabla_w = [nw + dnw for nw, dnw in zip(nabla_w, delta_nabla_w)]
        self.weights = [
            (1 - eta * (lmbda / n)) * w - (eta / len(mini_batch)) * nw for w, nw in zip(self.weights, nabla_w)
        ]
        self.biases = [b - (eta / len(mini_batch)) * nb for b, nb in zip(self.biases, nabla_b)]


def vectorized_result(y, n_classes):
    e = np.zeros((n_classes, 1))
    e[y] = 1.0
    return e


def pairs(X, Y):
    """the rows the doctor passes as Nielsen's list of (x, y) column pairs"""
    return [(np.reshape(x, (-1, 1)), vectorized_result(int(np.argmax(y)), len(y))) for x, y in zip(X, Y)]


def _params(net):
    names = {f"weights[{i}]": w for i, w in enumerate(net.weights)}
    names.update({f"biases[{i}]": b for i, b in enumerate(net.biases)})
    return names


def _forward(net, X):
    return np.hstack([net.feedforward(np.reshape(x, (-1, 1))) for x in X]).T


def _network_keywords(cls):
    return dict(
        build=lambda: cls(SIZES),
        forward=_forward,
        objective={"loss": "mse", "reduction": "mean", "scale": 0.5},
        params=_params,
        update=lambda net, X, Y: net.update_mini_batch(pairs(X, Y), ETA),
        lr=ETA,
        loss=lambda net, X, Y: sum(QuadraticCost.fn(net.feedforward(x), y) for x, y in pairs(X, Y)) / len(X),
        train_epoch=lambda net, X, Y, epoch: net.SGD(pairs(X, Y), 1, 10, ETA),
        seed=0,
    )


def _network2_keywords(cls):
    return dict(
        build=lambda: cls(SIZES),
        forward=_forward,
        objective={
            "loss": "bce",
            "reduction": "mean",
            "l2": {
                "coef": LMBDA / N_TRAIN,
                "params": [f"weights[{i}]" for i in range(len(SIZES) - 1)],
                "scale": 0.5,
            },
        },
        params=_params,
        update=lambda net, X, Y: net.update_mini_batch(pairs(X, Y), ETA2, LMBDA, N_TRAIN),
        lr=ETA2,
        loss=lambda net, X, Y: net.total_cost(pairs(X, Y), LMBDA, N_TRAIN),
    )


ALL = ("weights[0]", "weights[1]", "biases[0]", "biases[1]")

CASES = [
    Case("tutorial_nielsen_network_py", "nielsen", _network_keywords(Network)),
    Case("tutorial_nielsen_network2_py", "nielsen", _network2_keywords(Network2)),
    Case(
        "tutorial_nielsen_eta_not_divided",
        "nielsen",
        _network_keywords(NetworkEtaNotDivided),
        # the step is len(mini_batch) times the mean's, in every array
        [Bug("gradient", "gradient-not-averaged", ALL)],
    ),
    Case(
        "tutorial_nielsen_decay_without_n",
        "nielsen",
        _network2_keywords(Network2DecayWithoutN),
        # the L2 part of the weights' step is n (1000) times too large; biases untouched
        [Bug("gradient", "l2-gradient-wrong-factor", ("weights[0]", "weights[1]"))],
    ),
    Case(
        "tutorial_nielsen_nabla_b_overwritten",
        "nielsen",
        _network2_keywords(Network2BiasesOverwritten),
        # the biases step with the last record's gradient only
        [Bug("gradient", "bias-grad-overwritten", ("biases[0]", "biases[1]"))],
    ),
]
