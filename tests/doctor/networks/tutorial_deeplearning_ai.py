"""deeplearning.ai course 1, week 4 ("Building your Deep Neural Network: Step by Step") as
students finish it: ``parameters["W" + str(l)]`` of shape (n_l, n_{l-1}), ``b`` of (n_l, 1),
examples in columns ``X`` (n_x, m), ``L_model_forward`` returning ``AL`` and the ``caches`` list of
``((A_prev, W, b), Z)``, ``L_model_backward`` filling ``grads["dW" + str(l)]``,
``update_parameters``. The course's output is one sigmoid unit with binary cross-entropy; to give
(n, C) outputs a reader either keeps sigmoid + bce on C units (``compute_cost`` unchanged: it sums
over units and averages over m) or swaps in a softmax output with categorical cross-entropy
(``dZL = AL - Y``).
"""

import numpy as np

from tests.doctor.networks import Bug, Case

LAYERS_DIMS = [20, 16, 8, 4]
D_IN, N_OUT = LAYERS_DIMS[0], LAYERS_DIMS[-1]
LEARNING_RATE = 0.3


def initialize_parameters_deep(layer_dims, seed=3):
    rng = np.random.RandomState(seed)
    parameters = {}
    for l in range(1, len(layer_dims)):  # noqa: E741 (the course's name)
        parameters["W" + str(l)] = rng.randn(layer_dims[l], layer_dims[l - 1]) / np.sqrt(layer_dims[l - 1])
        parameters["b" + str(l)] = np.zeros((layer_dims[l], 1))
    return parameters


def sigmoid(Z):
    return 1 / (1 + np.exp(-Z)), Z


def relu(Z):
    return np.maximum(0, Z), Z


def softmax(Z):
    e = np.exp(Z - np.max(Z, axis=0, keepdims=True))
    return e / np.sum(e, axis=0, keepdims=True), Z


def relu_backward(dA, cache):
    Z = cache
    dZ = np.array(dA, copy=True)
    dZ[Z <= 0] = 0
    return dZ


def sigmoid_backward(dA, cache):
    Z = cache
    s = 1 / (1 + np.exp(-Z))
    return dA * s * (1 - s)


def sigmoid_backward_on_z(dA, cache):
    Z = cache
    return dA * Z * (1 - Z)  # BUG: s * (1 - s) written with the cached Z in place of s


def linear_forward(A, W, b):
    return W.dot(A) + b, (A, W, b)


def linear_activation_forward(A_prev, W, b, activation):
    Z, linear_cache = linear_forward(A_prev, W, b)
    A, activation_cache = {"sigmoid": sigmoid, "relu": relu, "softmax": softmax}[activation](Z)
    return A, (linear_cache, activation_cache)


def L_model_forward(X, parameters, output="sigmoid"):
    caches = []
    A = X
    L = len(parameters) // 2
    for l in range(1, L):  # noqa: E741
        A_prev = A
        A, cache = linear_activation_forward(
            A_prev, parameters["W" + str(l)], parameters["b" + str(l)], "relu"
        )
        caches.append(cache)
    AL, cache = linear_activation_forward(A, parameters["W" + str(L)], parameters["b" + str(L)], output)
    caches.append(cache)
    return AL, caches


def compute_cost_published(AL, Y):
    m = Y.shape[1]
    cost = (-1.0 / m) * np.sum(Y * np.log(AL) + (1 - Y) * np.log(1 - AL))
    return float(np.squeeze(cost))


def compute_cost(AL, Y):
    AL = np.clip(AL, 1e-12, 1 - 1e-12)
    return compute_cost_published(AL, Y)


def compute_cost_softmax(AL, Y):
    m = Y.shape[1]
    return float(-np.sum(Y * np.log(np.clip(AL, 1e-12, 1.0))) / m)


def compute_cost_softmax_mean(AL, Y):
    return float(
        -np.mean(Y * np.log(np.clip(AL, 1e-12, 1.0)))
    )  # BUG: the mean of a (C, m) array divides by C * m


class Backward:
    """linear_backward and L_model_backward; the variants change one line each"""

    sigmoid_backward = staticmethod(sigmoid_backward)
    fused = True  # dZL = AL - Y for sigmoid + bce, instead of the notebook's dAL
    average_dW = True
    bias_axis = 1

    def linear_backward(self, dZ, cache):
        A_prev, W, b = cache
        m = A_prev.shape[1]
        dW = (1.0 / m) * np.dot(dZ, A_prev.T) if self.average_dW else np.dot(dZ, A_prev.T)
        db = (1.0 / m) * np.sum(dZ, axis=self.bias_axis, keepdims=True)
        dA_prev = np.dot(W.T, dZ)
        return dA_prev, dW, db

    def linear_activation_backward(self, dA, cache, activation):
        linear_cache, activation_cache = cache
        if activation == "relu":
            dZ = relu_backward(dA, activation_cache)
        else:
            dZ = self.sigmoid_backward(dA, activation_cache)
        return self.linear_backward(dZ, linear_cache)

    def L_model_backward(self, AL, Y, caches, output="sigmoid"):
        grads = {}
        L = len(caches)
        Y = Y.reshape(AL.shape)
        current_cache = caches[L - 1]
        if output == "sigmoid" and not self.fused:
            dAL = -(np.divide(Y, AL) - np.divide(1 - Y, 1 - AL))
            dA_prev, dW, db = self.linear_activation_backward(dAL, current_cache, "sigmoid")
        else:
            dA_prev, dW, db = self.linear_backward(AL - Y, current_cache[0])  # dZL = AL - Y
        grads["dA" + str(L - 1)], grads["dW" + str(L)], grads["db" + str(L)] = dA_prev, dW, db
        for l in reversed(range(L - 1)):  # noqa: E741
            current_cache = caches[l]
            dA_prev, dW, db = self.linear_activation_backward(grads["dA" + str(l + 1)], current_cache, "relu")
            grads["dA" + str(l)] = dA_prev
            grads["dW" + str(l + 1)] = dW
            grads["db" + str(l + 1)] = db
        return grads


class AsPublished(Backward):
    """dAL = -(Y / AL - (1 - Y) / (1 - AL)): exact, but 1 / 0 once a sigmoid rounds to 0 or 1"""

    fused = False


class DWNotAveraged(Backward):
    average_dW = False  # BUG: "dW = np.dot(dZ, A_prev.T)", the 1/m kept only on db


class SigmoidBackwardOnZ(AsPublished):
    sigmoid_backward = staticmethod(sigmoid_backward_on_z)


class BiasAxis0(Backward):
    bias_axis = 0  # BUG: np.sum(dZ, axis=0, keepdims=True) -> (1, m), a sum over the units


def update_parameters(parameters, grads, learning_rate):
    L = len(parameters) // 2
    for l in range(L):  # noqa: E741
        parameters["W" + str(l + 1)] = parameters["W" + str(l + 1)] - learning_rate * grads["dW" + str(l + 1)]
        parameters["b" + str(l + 1)] = parameters["b" + str(l + 1)] - learning_rate * grads["db" + str(l + 1)]
    return parameters


NAMES = [f"{p}{l}" for l in range(1, len(LAYERS_DIMS)) for p in ("W", "b")]  # noqa: E741


def _keywords(backward=Backward, output="sigmoid", cost=compute_cost, with_update=True):
    bw = backward()

    def gradients(parameters, X, Y):
        AL, caches = L_model_forward(X.T, parameters, output)
        grads = bw.L_model_backward(AL, Y.T, caches, output)
        return {name: grads["d" + name] for name in NAMES}

    def update(parameters, X, Y):
        AL, caches = L_model_forward(X.T, parameters, output)
        grads = bw.L_model_backward(AL, Y.T, caches, output)
        return update_parameters(parameters, grads, LEARNING_RATE)

    keywords = dict(
        build=lambda: initialize_parameters_deep(LAYERS_DIMS),
        forward=lambda parameters, X: L_model_forward(X.T, parameters, output)[0].T,
        objective={"loss": "bce" if output == "sigmoid" else "cross_entropy", "reduction": "mean"},
        params=lambda parameters: {name: parameters[name] for name in NAMES},
        gradients=gradients,
        loss=lambda parameters, X, Y: cost(L_model_forward(X.T, parameters, output)[0], Y.T),
    )
    if with_update:
        keywords.update(update=update, lr=LEARNING_RATE)
    return keywords


CASES = [
    Case("tutorial_dlai_sigmoid_bce", "deeplearning.ai", _keywords()),
    Case(
        "tutorial_dlai_as_published",
        "deeplearning.ai",
        # the notebook's dAL and unclipped compute_cost: exact gradients at ordinary inputs, but at
        # inputs x1000 the sigmoids round to exactly 0 / 1 and dAL (Y / AL, (1 - Y) / (1 - AL)) and
        # the cost's logs are inf / nan
        _keywords(AsPublished, cost=compute_cost_published),
        [Bug("stress", "log-of-zero")],
    ),
    Case(
        "tutorial_dlai_softmax_ce",
        "deeplearning.ai",
        _keywords(output="softmax", cost=compute_cost_softmax),
    ),
    Case(
        "tutorial_dlai_dW_not_averaged",
        "deeplearning.ai",
        _keywords(DWNotAveraged),
        # db keeps its 1/m: only the weights are m times too large
        [Bug("gradient", "gradient-not-averaged", ("W1", "W2", "W3"))],
    ),
    Case(
        "tutorial_dlai_sigmoid_backward_on_z",
        "deeplearning.ai",
        _keywords(SigmoidBackwardOnZ, cost=compute_cost_published),
        # the output layer's dZ is wrong and flows back into every array; on top of the notebook's
        # dAL, so inputs x1000 give inf / nan as in tutorial_dlai_as_published
        [Bug("gradient", "sigmoid-derivative-on-preactivation", tuple(NAMES)), Bug("stress", "log-of-zero")],
    ),
    Case(
        "tutorial_dlai_bias_axis0",
        "deeplearning.ai",
        # gradients only: update_parameters would broadcast b into (n_l, m)
        _keywords(BiasAxis0, output="softmax", cost=compute_cost_softmax, with_update=False),
        [Bug("gradient", "bias-grad-wrong-axis", ("b1", "b2", "b3"))],
    ),
    Case(
        "tutorial_dlai_softmax_cost_np_mean",
        "deeplearning.ai",
        _keywords(output="softmax", cost=compute_cost_softmax_mean),
        # the binary course's -np.mean(...) kept for C classes: the cost printed is C times too small
        [Bug("loss", "loss-divided-by-num-classes")],
    ),
]
