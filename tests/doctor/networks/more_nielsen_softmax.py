"""Nielsen's layout (chapter 3: a softmax output layer with the log-likelihood cost): column vectors
(n, 1), ``weights[l]`` of shape (units, inputs), ``biases[l]`` of (units, 1), a per-example
``backprop(x, y)`` and ``update_mini_batch(mini_batch, eta)``; plus a per-record ``sgd_step(x, y)``
for ``check_batch=1`` and an unrolled two-hidden-layer variant. Forward for the doctor is the
code's own vectorised ``feedforward(X.T)`` (columns are examples). Second, independent collection.
"""

import numpy as np

from tests.doctor.networks import Bug, Case


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def sigmoid_prime(z):
    return sigmoid(z) * (1 - sigmoid(z))


def softmax(z):
    e = np.exp(z - np.max(z, axis=0, keepdims=True))
    return e / np.sum(e, axis=0, keepdims=True)


def softmax_one_column(z):
    e = np.exp(z - np.max(z))
    return e / np.sum(e)  # BUG: right for one column (x, 1), wrong for feedforward(X.T)


class SoftmaxNetwork:
    def __init__(self, sizes=(12, 10, 3), seed=0, output=softmax):
        rng = np.random.default_rng(seed)
        self.num_layers = len(sizes)
        self.sizes = sizes
        self.biases = [rng.standard_normal((y, 1)) for y in sizes[1:]]
        self.weights = [rng.standard_normal((y, x)) / np.sqrt(x) for x, y in zip(sizes[:-1], sizes[1:])]
        self.output = output

    def feedforward(self, a):
        for b, w in zip(self.biases[:-1], self.weights[:-1]):
            a = sigmoid(np.dot(w, a) + b)
        return self.output(np.dot(self.weights[-1], a) + self.biases[-1])

    def backprop(self, x, y):
        nabla_b = [np.zeros(b.shape) for b in self.biases]
        nabla_w = [np.zeros(w.shape) for w in self.weights]
        activation = x
        activations = [x]
        zs = []
        for b, w in zip(self.biases[:-1], self.weights[:-1]):
            z = np.dot(w, activation) + b
            zs.append(z)
            activation = sigmoid(z)
            activations.append(activation)
        z = np.dot(self.weights[-1], activation) + self.biases[-1]
        zs.append(z)
        activations.append(self.output(z))
        delta = activations[-1] - y  # log-likelihood with softmax
        nabla_b[-1] = delta
        nabla_w[-1] = np.dot(delta, activations[-2].transpose())
        for l in range(2, self.num_layers):  # noqa: E741 (Nielsen's own name)
            delta = np.dot(self.weights[-l + 1].transpose(), delta) * sigmoid_prime(zs[-l])
            nabla_b[-l] = delta
            nabla_w[-l] = np.dot(delta, activations[-l - 1].transpose())
        return (nabla_b, nabla_w)

    def update_mini_batch(self, mini_batch, eta):
        nabla_b = [np.zeros(b.shape) for b in self.biases]
        nabla_w = [np.zeros(w.shape) for w in self.weights]
        for x, y in mini_batch:
            delta_nabla_b, delta_nabla_w = self.backprop(x, y)
            nabla_b = [nb + dnb for nb, dnb in zip(nabla_b, delta_nabla_b)]
            nabla_w = [nw + dnw for nw, dnw in zip(nabla_w, delta_nabla_w)]
        self.weights = [w - (eta / len(mini_batch)) * nw for w, nw in zip(self.weights, nabla_w)]
        self.biases = [b - (eta / len(mini_batch)) * nb for b, nb in zip(self.biases, nabla_b)]

    def sgd_step(self, x, y, eta):
        """Online learning: one example, one step."""
        nabla_b, nabla_w = self.backprop(x, y)
        self.weights = [w - eta * nw for w, nw in zip(self.weights, nabla_w)]
        self.biases = [b - eta * nb for b, nb in zip(self.biases, nabla_b)]

    def log_likelihood_cost(self, data):
        return float(
            sum(-np.log(max(self.feedforward(x)[np.argmax(y), 0], 1e-300)) for x, y in data) / len(data)
        )


class LastExampleOnly(SoftmaxNetwork):
    def update_mini_batch(self, mini_batch, eta):
        for x, y in mini_batch:
            # BUG: nabla_b, nabla_w rebound to each example's gradients instead of summed
            nabla_b, nabla_w = self.backprop(x, y)
        self.weights = [w - (eta / len(mini_batch)) * nw for w, nw in zip(self.weights, nabla_w)]
        self.biases = [b - (eta / len(mini_batch)) * nb for b, nb in zip(self.biases, nabla_b)]


class BiasLastExample(SoftmaxNetwork):
    def update_mini_batch(self, mini_batch, eta):
        nabla_b = [np.zeros(b.shape) for b in self.biases]
        nabla_w = [np.zeros(w.shape) for w in self.weights]
        for x, y in mini_batch:
            delta_nabla_b, delta_nabla_w = self.backprop(x, y)
            nabla_b = delta_nabla_b  # BUG: assigned, not added (the weights below are right)
            nabla_w = [nw + dnw for nw, dnw in zip(nabla_w, delta_nabla_w)]
        self.weights = [w - (eta / len(mini_batch)) * nw for w, nw in zip(self.weights, nabla_w)]
        self.biases = [b - (eta / len(mini_batch)) * nb for b, nb in zip(self.biases, nabla_b)]


class PersistentNablas(SoftmaxNetwork):
    """The nabla lists live on the object "so they are not reallocated every mini-batch"."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.nabla_b = [np.zeros(b.shape) for b in self.biases]
        self.nabla_w = [np.zeros(w.shape) for w in self.weights]

    def update_mini_batch(self, mini_batch, eta):
        for x, y in mini_batch:
            delta_nabla_b, delta_nabla_w = self.backprop(x, y)
            self.nabla_b = [nb + dnb for nb, dnb in zip(self.nabla_b, delta_nabla_b)]
            self.nabla_w = [nw + dnw for nw, dnw in zip(self.nabla_w, delta_nabla_w)]
        # BUG: never set back to zero, the next mini-batch adds to this one's sums
        self.weights = [w - (eta / len(mini_batch)) * nw for w, nw in zip(self.weights, self.nabla_w)]
        self.biases = [b - (eta / len(mini_batch)) * nb for b, nb in zip(self.biases, self.nabla_b)]


class TwoHidden:
    """12-10-10-3, unrolled: ``w1, b1, w2, b2, w3, b3`` in Nielsen's column layout, tanh hidden."""

    def __init__(self, seed=0, transposed_bug=False):
        rng = np.random.default_rng(seed)
        self.w1 = rng.standard_normal((10, 12)) / np.sqrt(12)
        self.b1 = np.zeros((10, 1))
        self.w2 = rng.standard_normal((10, 10)) / np.sqrt(10)
        self.b2 = np.zeros((10, 1))
        self.w3 = rng.standard_normal((3, 10)) / np.sqrt(10)
        self.b3 = np.zeros((3, 1))
        self.transposed_bug = transposed_bug

    def feedforward(self, a):
        a1 = np.tanh(self.w1 @ a + self.b1)
        a2 = np.tanh(self.w2 @ a1 + self.b2)
        return softmax(self.w3 @ a2 + self.b3)

    def sgd_step(self, x, y, eta):
        a1 = np.tanh(self.w1 @ x + self.b1)
        a2 = np.tanh(self.w2 @ a1 + self.b2)
        a3 = softmax(self.w3 @ a2 + self.b3)
        delta3 = a3 - y
        delta2 = (self.w3.T @ delta3) * (1 - a2**2)
        if self.transposed_bug:
            delta1 = (self.w2 @ delta2) * (1 - a1**2)  # BUG: w2 is (10, 10), so w2 @ runs
        else:
            delta1 = (self.w2.T @ delta2) * (1 - a1**2)
        self.w3 -= eta * delta3 @ a2.T
        self.b3 -= eta * delta3
        self.w2 -= eta * delta2 @ a1.T
        self.b2 -= eta * delta2
        self.w1 -= eta * delta1 @ x.T
        self.b1 -= eta * delta1


def columns(X, Y):
    return [(x.reshape(-1, 1), y.reshape(-1, 1)) for x, y in zip(X, Y)]


ETA = 0.5


def _keywords(build, per_record=False, **extra):
    if per_record:

        def update(net, X, Y):
            net.sgd_step(X.reshape(-1, 1), Y.reshape(-1, 1), ETA)
    else:

        def update(net, X, Y):
            net.update_mini_batch(columns(X, Y), ETA)

    keywords = dict(
        build=build,
        forward=lambda net, X: net.feedforward(X.T).T,
        objective="cross_entropy",
        update=update,
        lr=ETA,
        loss=lambda net, X, Y: float(
            -np.mean(np.sum(Y * np.log(np.clip(net.feedforward(X.T).T, 1e-12, 1)), axis=1))
        ),
    )
    if per_record:
        keywords["check_batch"] = 1
    keywords.update(extra)
    return keywords


def two_hidden_params(net):
    return {"w1": net.w1, "b1": net.b1, "w2": net.w2, "b2": net.b2, "w3": net.w3, "b3": net.b3}


def nielsen_loss(net, X, Y):
    return net.log_likelihood_cost(columns(X, Y))


ALL = ("weights[0]", "weights[1]", "biases[0]", "biases[1]")

CASES = [
    Case(
        "more_ns_softmax_loglik_correct",
        "nielsen-softmax",
        _keywords(lambda: SoftmaxNetwork(), loss=nielsen_loss),
    ),
    Case(
        "more_ns_online_sgd_correct",
        "nielsen-softmax",
        _keywords(lambda: SoftmaxNetwork(), per_record=True),
    ),
    Case(
        "more_ns_two_hidden_online_correct",
        "nielsen-softmax",
        _keywords(lambda: TwoHidden(), per_record=True, params=two_hidden_params),
    ),
    Case(
        "more_ns_last_example_only",
        "nielsen-softmax",
        _keywords(lambda: LastExampleOnly()),
        [Bug("gradient", "only-last-sample-used", ALL)],
    ),
    Case(
        "more_ns_bias_last_example",
        "nielsen-softmax",
        _keywords(lambda: BiasLastExample()),
        [Bug("gradient", "bias-grad-overwritten", ("biases[0]", "biases[1]"))],
    ),
    Case(
        "more_ns_nablas_never_zeroed",
        "nielsen-softmax",
        _keywords(lambda: PersistentNablas()),
        [Bug("state", "gradients-not-reset-between-steps")],
    ),
    Case(
        "more_ns_softmax_one_column",
        "nielsen-softmax",
        # training is per example (one column at a time: right); the batched feedforward(X.T) is not
        _keywords(lambda: SoftmaxNetwork(output=softmax_one_column), loss=nielsen_loss),
        [Bug("forward", "softmax-wrong-for-batch")],
    ),
    Case(
        "more_ns_two_hidden_w2_not_transposed",
        "nielsen-softmax",
        _keywords(lambda: TwoHidden(transposed_bug=True), per_record=True, params=two_hidden_params),
        [Bug("gradient", "transposed-weight-in-backward", ("w1", "b1"))],
    ),
]
