"""Column vectors in the style of Nielsen's "Neural Networks and Deep Learning" (network.py and
network2.py): lists ``self.weights`` / ``self.biases`` of shapes (units, inputs) and (units, 1),
``np.dot(w, a) + b``, sigmoid everywhere, ``backprop(x, y)`` per record and
``update_mini_batch(mini_batch, eta)`` rebinding the lists. No ``params=``: the doctor discovers
``weights[0]``, ``biases[0]``, ... itself.
"""

import numpy as np

from tests.doctor.networks import Bug, Case


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def sigmoid_prime(z):
    return sigmoid(z) * (1 - sigmoid(z))


class Network:
    """network.py: quadratic cost, N(0, 1) initialisation."""

    def __init__(self, sizes, seed=0):
        rng = np.random.default_rng(seed)
        self.num_layers = len(sizes)
        self.sizes = sizes
        self.biases = [rng.standard_normal((y, 1)) for y in sizes[1:]]
        self.weights = [rng.standard_normal((y, x)) for x, y in zip(sizes[:-1], sizes[1:])]

    def feedforward(self, a):
        for b, w in zip(self.biases, self.weights):
            a = sigmoid(np.dot(w, a) + b)
        return a

    def update_mini_batch(self, mini_batch, eta):
        nabla_b = [np.zeros(b.shape) for b in self.biases]
        nabla_w = [np.zeros(w.shape) for w in self.weights]
        for x, y in mini_batch:
            delta_nabla_b, delta_nabla_w = self.backprop(x, y)
            nabla_b = [nb + dnb for nb, dnb in zip(nabla_b, delta_nabla_b)]
            nabla_w = [nw + dnw for nw, dnw in zip(nabla_w, delta_nabla_w)]
        self.weights = [w - (eta / len(mini_batch)) * nw for w, nw in zip(self.weights, nabla_w)]
        self.biases = [b - (eta / len(mini_batch)) * nb for b, nb in zip(self.biases, nabla_b)]

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
        delta = self.cost_derivative(activations[-1], y) * sigmoid_prime(zs[-1])
        nabla_b[-1] = delta
        nabla_w[-1] = np.dot(delta, activations[-2].transpose())
        for l in range(2, self.num_layers):  # noqa: E741 (Nielsen's own name)
            z = zs[-l]
            sp = sigmoid_prime(z)
            delta = np.dot(self.weights[-l + 1].transpose(), delta) * sp
            nabla_b[-l] = delta
            nabla_w[-l] = np.dot(delta, activations[-l - 1].transpose())
        return (nabla_b, nabla_w)

    def cost_derivative(self, output_activations, y):
        return output_activations - y

    def quadratic_cost(self, data):
        return sum(0.5 * np.linalg.norm(self.feedforward(x) - y) ** 2 for x, y in data) / len(data)


class SignFlipped(Network):
    def cost_derivative(self, output_activations, y):
        return y - output_activations  # BUG: "error = target - output", then subtracted again


class SigmoidPrimeOnZ(Network):
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
        delta = self.cost_derivative(activations[-1], y) * sigmoid_prime(zs[-1])
        nabla_b[-1] = delta
        nabla_w[-1] = np.dot(delta, activations[-2].transpose())
        for l in range(2, self.num_layers):  # noqa: E741 (Nielsen's own name)
            z = zs[-l]
            sp = z * (1 - z)  # BUG: s'(z) = s(1 - s) written on z, not on the activation
            delta = np.dot(self.weights[-l + 1].transpose(), delta) * sp
            nabla_b[-l] = delta
            nabla_w[-l] = np.dot(delta, activations[-l - 1].transpose())
        return (nabla_b, nabla_w)


class MissingOutputDerivative(Network):
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
        # BUG: network2's cross-entropy delta kept with network.py's quadratic cost: no sigmoid_prime
        delta = self.cost_derivative(activations[-1], y)
        nabla_b[-1] = delta
        nabla_w[-1] = np.dot(delta, activations[-2].transpose())
        for l in range(2, self.num_layers):  # noqa: E741 (Nielsen's own name)
            z = zs[-l]
            sp = sigmoid_prime(z)
            delta = np.dot(self.weights[-l + 1].transpose(), delta) * sp
            nabla_b[-l] = delta
            nabla_w[-l] = np.dot(delta, activations[-l - 1].transpose())
        return (nabla_b, nabla_w)


class Network2(Network):
    """network2.py: cross-entropy cost, weights / sqrt(n_in), L2 weight decay."""

    def __init__(self, sizes, seed=0):
        rng = np.random.default_rng(seed)
        self.num_layers = len(sizes)
        self.sizes = sizes
        self.biases = [rng.standard_normal((y, 1)) for y in sizes[1:]]
        self.weights = [rng.standard_normal((y, x)) / np.sqrt(x) for x, y in zip(sizes[:-1], sizes[1:])]

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
        delta = activations[-1] - y  # CrossEntropyCost.delta
        nabla_b[-1] = delta
        nabla_w[-1] = np.dot(delta, activations[-2].transpose())
        for l in range(2, self.num_layers):  # noqa: E741 (Nielsen's own name)
            z = zs[-l]
            sp = sigmoid_prime(z)
            delta = np.dot(self.weights[-l + 1].transpose(), delta) * sp
            nabla_b[-l] = delta
            nabla_w[-l] = np.dot(delta, activations[-l - 1].transpose())
        return (nabla_b, nabla_w)

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
            cost += np.sum(np.nan_to_num(-y * np.log(a) - (1 - y) * np.log(1 - a))) / len(data)
        cost += 0.5 * (lmbda / n) * sum(np.linalg.norm(w) ** 2 for w in self.weights)
        return cost


class Network2DecayedBiases(Network2):
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
        # BUG: weight decay copied onto the biases too (the cost only regularises the weights)
        self.biases = [
            (1 - eta * (lmbda / n)) * b - (eta / len(mini_batch)) * nb for b, nb in zip(self.biases, nabla_b)
        ]


def columns(X, Y):
    """The doctor's rows as Nielsen's list of (x, y) column-vector pairs."""
    return [(x.reshape(-1, 1), y.reshape(-1, 1)) for x, y in zip(X, Y)]


ETA = 3.0
LMBDA, N_TRAIN = 5.0, 100  # network2's lmbda and len(training_data)
SIZES = [12, 10, 3]

QUADRATIC = {"loss": "mse", "reduction": "mean", "scale": 0.5}
CROSS_ENTROPY_L2 = {
    "loss": "bce",
    "reduction": "mean",
    "l2": {"coef": LMBDA / N_TRAIN, "params": ["weights[0]", "weights[1]"], "scale": 0.5},
}


def _network_keywords(cls, **extra):
    keywords = dict(
        build=lambda: cls(SIZES),
        forward=lambda net, X: np.hstack([net.feedforward(x.reshape(-1, 1)) for x in X]).T,
        objective=QUADRATIC,
        update=lambda net, X, Y: net.update_mini_batch(columns(X, Y), ETA),
        lr=ETA,
        loss=lambda net, X, Y: net.quadratic_cost(columns(X, Y)),
    )
    keywords.update(extra)
    return keywords


def _network2_keywords(cls):
    return dict(
        build=lambda: cls(SIZES),
        forward=lambda net, X: net.feedforward(X.T).T,  # b (units, 1) broadcasts over the columns
        objective=CROSS_ENTROPY_L2,
        update=lambda net, X, Y: net.update_mini_batch(columns(X, Y), ETA, LMBDA, N_TRAIN),
        lr=ETA,
        loss=lambda net, X, Y: net.total_cost(columns(X, Y), LMBDA, N_TRAIN),
    )


ALL = ("weights[0]", "weights[1]", "biases[0]", "biases[1]")

CASES = [
    Case("nielsen_network_quadratic", "nielsen", _network_keywords(Network)),
    Case("nielsen_network2_cross_entropy_l2", "nielsen", _network2_keywords(Network2)),
    Case(
        "nielsen_sign_flipped",
        "nielsen",
        _network_keywords(SignFlipped),
        # cost_derivative's sign flipped: every array's step climbs the cost
        [Bug("gradient", "gradient-ascent-sign-error", ALL)],
    ),
    Case(
        "nielsen_sigmoid_prime_on_z",
        "nielsen",
        _network_keywords(SigmoidPrimeOnZ),
        # only the hidden layer's delta uses z(1 - z); the output layer's arrays are right
        [Bug("gradient", "sigmoid-derivative-on-preactivation", ("weights[0]", "biases[0]"))],
    ),
    Case(
        "nielsen_missing_output_derivative",
        "nielsen",
        _network_keywords(MissingOutputDerivative),
        # the output delta lacks sigmoid'(z) for the stated quadratic cost: wrong in every array
        [Bug("gradient", "missing-activation-derivative", ALL)],
    ),
    Case(
        "nielsen_l2_on_biases",
        "nielsen",
        _network2_keywords(Network2DecayedBiases),
        # biases are N(0, 1), so the extra decay lmbda/n * b shows at once; weights are right
        [Bug("gradient", "l2-applied-to-biases", ("biases[0]", "biases[1]"))],
    ),
]
