"""Column-major vectorised code in the style of Andrew Ng's course: ``parameters`` dict with W of
shape (units, inputs) and b of shape (units, 1), X of shape (features, m), functions
``forward_propagation``, ``backward_propagation``, ``update_parameters``. Softmax over axis 0
(the classes, in this layout).
"""

import numpy as np

from tests.doctor.networks import Bug, Case


def initialize_parameters(layer_dims=(20, 16, 8, 4), seed=0):
    rng = np.random.default_rng(seed)
    parameters = {}
    for l in range(1, len(layer_dims)):  # noqa: E741 (the course's name)
        parameters[f"W{l}"] = rng.standard_normal((layer_dims[l], layer_dims[l - 1])) * np.sqrt(
            2.0 / layer_dims[l - 1]
        )
        parameters[f"b{l}"] = np.zeros((layer_dims[l], 1))
    return parameters


def softmax(Z):
    e = np.exp(Z - np.max(Z, axis=0, keepdims=True))
    return e / np.sum(e, axis=0, keepdims=True)


def forward_propagation(X, parameters):
    Z1 = np.dot(parameters["W1"], X) + parameters["b1"]
    A1 = np.maximum(0, Z1)
    Z2 = np.dot(parameters["W2"], A1) + parameters["b2"]
    A2 = np.maximum(0, Z2)
    Z3 = np.dot(parameters["W3"], A2) + parameters["b3"]
    A3 = softmax(Z3)
    cache = (Z1, A1, Z2, A2, Z3, A3)
    return A3, cache


def compute_cost(A3, Y):
    m = Y.shape[1]
    return float(-np.sum(Y * np.log(np.clip(A3, 1e-12, 1.0))) / m)


def backward_propagation(X, Y, cache, parameters, bias_axis=1):
    m = X.shape[1]
    Z1, A1, Z2, A2, Z3, A3 = cache
    dZ3 = A3 - Y
    dW3 = np.dot(dZ3, A2.T) / m
    db3 = np.sum(dZ3, axis=bias_axis, keepdims=True) / m
    dA2 = np.dot(parameters["W3"].T, dZ3)
    dZ2 = dA2 * (Z2 > 0)
    dW2 = np.dot(dZ2, A1.T) / m
    db2 = np.sum(dZ2, axis=bias_axis, keepdims=True) / m
    dA1 = np.dot(parameters["W2"].T, dZ2)
    dZ1 = dA1 * (Z1 > 0)
    dW1 = np.dot(dZ1, X.T) / m
    db1 = np.sum(dZ1, axis=bias_axis, keepdims=True) / m
    return {"dW1": dW1, "db1": db1, "dW2": dW2, "db2": db2, "dW3": dW3, "db3": db3}


def update_parameters(parameters, grads, learning_rate):
    for l in range(1, 4):  # noqa: E741
        parameters[f"W{l}"] = parameters[f"W{l}"] - learning_rate * grads[f"dW{l}"]
        parameters[f"b{l}"] = parameters[f"b{l}"] - learning_rate * grads[f"db{l}"]
    return parameters


LEARNING_RATE = 0.1


def _keywords(bias_axis):
    def gradients(parameters, X, Y):
        A3, cache = forward_propagation(X.T, parameters)
        grads = backward_propagation(X.T, Y.T, cache, parameters, bias_axis)
        return {name[1:]: g for name, g in grads.items()}  # "dW1" -> "W1"

    def update(parameters, X, Y):
        A3, cache = forward_propagation(X.T, parameters)
        grads = backward_propagation(X.T, Y.T, cache, parameters, bias_axis)
        return update_parameters(parameters, grads, LEARNING_RATE)

    return dict(
        build=lambda: initialize_parameters(),
        forward=lambda parameters, X: forward_propagation(X.T, parameters)[0].T,
        objective="cross_entropy",
        params=lambda parameters: dict(parameters),
        gradients=gradients,
        update=update,
        lr=LEARNING_RATE,
        loss=lambda parameters, X, Y: compute_cost(forward_propagation(X.T, parameters)[0], Y.T),
    )


CASES = [
    Case("column_vectors_correct", "column-vectors", _keywords(bias_axis=1)),
    Case(
        "column_vectors_bias_axis0",
        "column-vectors",
        # BUG: np.sum(dZ, axis=0, keepdims=True): a (1, m) sum over the units per example, not an
        # (units, 1) sum over the examples; every bias gradient is wrong (wrong shape, even)
        _keywords(bias_axis=0),
        [Bug("gradient", "bias-grad-wrong-axis", ("b1", "b2", "b3"))],
    ),
]
