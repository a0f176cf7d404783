"""A scikit-learn-like ``MLPClassifier``: ``coefs_`` / ``intercepts_`` lists, Glorot-uniform
initialisation (intercepts too, so they start non-zero), ``_forward_pass`` over an
``activations`` list, ``_backprop`` filling ``coef_grads`` / ``intercept_grads`` lists and
returning ``loss, coef_grads, intercept_grads``, in-place derivatives (``delta *= 1 - Z ** 2``),
``partial_fit`` stepping with plain SGD. The adapters turn the lists into dicts. Unlike scikit-learn
the L2 penalty is ``0.5 * alpha * |W|^2`` added to the *mean* loss (no ``/ n_samples``), so the
objective does not depend on the batch size. Second, independent collection.
"""

import numpy as np

from tests.doctor.networks import Bug, Case


def inplace_relu(X):
    np.maximum(X, 0, out=X)


def inplace_tanh(X):
    np.tanh(X, out=X)


def inplace_logistic(X):
    X *= -1
    np.exp(X, out=X)
    X += 1
    np.reciprocal(X, out=X)


def inplace_softmax(X):
    tmp = X - X.max(axis=1)[:, np.newaxis]
    np.exp(tmp, out=X)
    X /= X.sum(axis=1)[:, np.newaxis]


ACTIVATIONS = {
    "relu": inplace_relu,
    "tanh": inplace_tanh,
    "logistic": inplace_logistic,
    "softmax": inplace_softmax,
}


def inplace_relu_derivative(Z, delta):
    delta[Z == 0] = 0


def inplace_tanh_derivative(Z, delta):
    delta *= 1 - Z**2


def inplace_logistic_derivative(Z, delta):
    delta *= Z
    delta *= 1 - Z


DERIVATIVES = {
    "relu": inplace_relu_derivative,
    "tanh": inplace_tanh_derivative,
    "logistic": inplace_logistic_derivative,
}


def log_loss(y_true, y_prob):
    eps = np.finfo(y_prob.dtype).eps
    y_prob = np.clip(y_prob, eps, 1 - eps)
    return -np.sum(y_true * np.log(y_prob)) / y_prob.shape[0]


def binary_log_loss(y_true, y_prob):
    eps = np.finfo(y_prob.dtype).eps
    y_prob = np.clip(y_prob, eps, 1 - eps)
    return -np.sum(y_true * np.log(y_prob) + (1 - y_true) * np.log(1 - y_prob)) / y_prob.shape[0]


def log_loss_unclipped(y_true, y_prob):
    return -np.sum(y_true * np.log(y_prob)) / y_prob.shape[0]  # BUG: 0 * log(0) = nan


LOSS_FUNCTIONS = {"log_loss": log_loss, "binary_log_loss": binary_log_loss}


class MLPClassifier:
    def __init__(
        self,
        hidden_layer_sizes=(16, 8),
        activation="relu",
        alpha=0.0,
        learning_rate_init=0.1,
        random_state=0,
        n_features_in=20,
        n_outputs=4,
        out_activation="softmax",
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.alpha = alpha
        self.learning_rate_init = learning_rate_init
        self.out_activation_ = out_activation
        self.loss_func_name = "log_loss" if out_activation == "softmax" else "binary_log_loss"
        rng = np.random.RandomState(random_state)
        layer_units = [n_features_in, *hidden_layer_sizes, n_outputs]
        self.layer_units_ = layer_units
        self.n_layers_ = len(layer_units)
        self.coefs_, self.intercepts_ = [], []
        for i in range(self.n_layers_ - 1):
            coef_init, intercept_init = self._init_coef(layer_units[i], layer_units[i + 1], rng)
            self.coefs_.append(coef_init)
            self.intercepts_.append(intercept_init)

    def _init_coef(self, fan_in, fan_out, rng):
        factor = 6.0
        if self.activation == "logistic":
            factor = 2.0
        init_bound = np.sqrt(factor / (fan_in + fan_out))
        coef_init = rng.uniform(-init_bound, init_bound, (fan_in, fan_out))
        intercept_init = rng.uniform(-init_bound, init_bound, fan_out)
        return coef_init, intercept_init

    def _forward_pass(self, activations):
        hidden_activation = ACTIVATIONS[self.activation]
        for i in range(self.n_layers_ - 1):
            activations[i + 1] = np.dot(activations[i], self.coefs_[i])
            activations[i + 1] += self.intercepts_[i]
            if (i + 1) != (self.n_layers_ - 1):
                hidden_activation(activations[i + 1])
        ACTIVATIONS[self.out_activation_](activations[i + 1])
        return activations

    def predict_proba(self, X):
        activations = [X] + [None] * (self.n_layers_ - 1)
        return self._forward_pass(activations)[-1]

    def _loss(self, y, y_prob):
        loss = LOSS_FUNCTIONS[self.loss_func_name](y, y_prob)
        values = sum(np.dot(s.ravel(), s.ravel()) for s in self.coefs_)
        return loss + 0.5 * self.alpha * values

    def score_loss(self, X, y):
        return float(self._loss(y, self.predict_proba(X)))

    def _compute_loss_grad(self, layer, n_samples, activations, deltas, coef_grads, intercept_grads):
        coef_grads[layer] = np.dot(activations[layer].T, deltas[layer]) / n_samples
        coef_grads[layer] += self.alpha * self.coefs_[layer]
        intercept_grads[layer] = np.mean(deltas[layer], 0)

    def _hidden_delta(self, i, activations, deltas):
        inplace_derivative = DERIVATIVES[self.activation]
        inplace_derivative(activations[i], deltas[i - 1])

    def _backprop(self, X, y, activations, deltas, coef_grads, intercept_grads):
        n_samples = X.shape[0]
        activations = self._forward_pass(activations)
        loss = self._loss(y, activations[-1])
        last = self.n_layers_ - 2
        deltas[last] = activations[-1] - y
        self._compute_loss_grad(last, n_samples, activations, deltas, coef_grads, intercept_grads)
        for i in range(self.n_layers_ - 2, 0, -1):
            deltas[i - 1] = np.dot(deltas[i], self.coefs_[i].T)
            self._hidden_delta(i, activations, deltas)
            self._compute_loss_grad(i - 1, n_samples, activations, deltas, coef_grads, intercept_grads)
        return loss, coef_grads, intercept_grads

    def _buffers(self, X):
        activations = [X] + [None] * (self.n_layers_ - 1)
        deltas = [None] * (len(activations) - 1)
        units = self.layer_units_
        coef_grads = [np.empty((a, b)) for a, b in zip(units[:-1], units[1:])]
        intercept_grads = [np.empty(b) for b in units[1:]]
        return activations, deltas, coef_grads, intercept_grads

    def gradients(self, X, y):
        return self._backprop(X, y, *self._buffers(X))

    def partial_fit(self, X, y):
        loss, coef_grads, intercept_grads = self.gradients(X, y)
        params = self.coefs_ + self.intercepts_
        grads = coef_grads + intercept_grads
        for param, grad in zip(params, grads):
            param -= self.learning_rate_init * grad
        self.loss_ = loss
        return self


class InterceptDecay(MLPClassifier):
    def _compute_loss_grad(self, layer, n_samples, activations, deltas, coef_grads, intercept_grads):
        coef_grads[layer] = np.dot(activations[layer].T, deltas[layer]) / n_samples
        coef_grads[layer] += self.alpha * self.coefs_[layer]
        intercept_grads[layer] = np.mean(deltas[layer], 0)
        intercept_grads[layer] += self.alpha * self.intercepts_[layer]  # BUG: not in the loss


class DoubleAlpha(MLPClassifier):
    def _compute_loss_grad(self, layer, n_samples, activations, deltas, coef_grads, intercept_grads):
        coef_grads[layer] = np.dot(activations[layer].T, deltas[layer]) / n_samples
        # BUG: "d/dW of alpha W^2 is 2 alpha W": but the loss holds 0.5 * alpha * |W|^2
        coef_grads[layer] += 2 * self.alpha * self.coefs_[layer]
        intercept_grads[layer] = np.mean(deltas[layer], 0)


class DerivativeOneLayerDown(MLPClassifier):
    def _hidden_delta(self, i, activations, deltas):
        inplace_derivative = DERIVATIVES[self.activation]
        inplace_derivative(activations[i - 1], deltas[i - 1])  # BUG: activations[i] is layer i's output


class InterceptAxis1(MLPClassifier):
    def _compute_loss_grad(self, layer, n_samples, activations, deltas, coef_grads, intercept_grads):
        coef_grads[layer] = np.dot(activations[layer].T, deltas[layer]) / n_samples
        coef_grads[layer] += self.alpha * self.coefs_[layer]
        intercept_grads[layer] = np.mean(deltas[layer], 1)  # BUG: mean over the units of each sample


class UnclippedLogLoss(MLPClassifier):
    def _loss(self, y, y_prob):
        loss = log_loss_unclipped(y, y_prob)
        values = sum(np.dot(s.ravel(), s.ravel()) for s in self.coefs_)
        return loss + 0.5 * self.alpha * values


def sk_params(net):
    named = {}
    for i, (coef, intercept) in enumerate(zip(net.coefs_, net.intercepts_)):
        named[f"coefs_[{i}]"] = coef
        named[f"intercepts_[{i}]"] = intercept
    return named


def sk_gradients(net, X, Y):
    _, coef_grads, intercept_grads = net.gradients(X, Y)
    named = {}
    for i, (gc, gi) in enumerate(zip(coef_grads, intercept_grads)):
        named[f"coefs_[{i}]"] = gc
        named[f"intercepts_[{i}]"] = gi
    return named


def _objective(net_kwargs):
    loss = "bce" if net_kwargs.get("out_activation") == "logistic" else "cross_entropy"
    alpha = net_kwargs.get("alpha", 0.0)
    n_layers = len(net_kwargs.get("hidden_layer_sizes", (16, 8))) + 1
    if not alpha:
        return {"loss": loss, "reduction": "mean"}
    return {
        "loss": loss,
        "reduction": "mean",
        "l2": {"coef": alpha, "params": [f"coefs_[{i}]" for i in range(n_layers)], "scale": 0.5},
    }


def _keywords(cls, with_update=True, with_params=True, **net_kwargs):
    keywords = dict(
        build=lambda: cls(**net_kwargs),
        forward=lambda net, X: net.predict_proba(X),
        objective=_objective(net_kwargs),
        gradients=sk_gradients,
        loss=lambda net, X, Y: net.score_loss(X, Y),
    )
    if with_params:
        keywords["params"] = sk_params
    if with_update:
        keywords["update"] = lambda net, X, Y: net.partial_fit(X, Y)
        keywords["lr"] = lambda net: net.learning_rate_init
    return keywords


def names(kind, layers):
    return tuple(f"{kind}[{i}]" for i in layers)


CASES = [
    Case("more_sk_relu_alpha_correct", "sklearn", _keywords(MLPClassifier, alpha=1e-2)),
    Case(
        "more_sk_tanh_correct",
        "sklearn",
        _keywords(MLPClassifier, activation="tanh", hidden_layer_sizes=(16, 12, 8), learning_rate_init=0.2),
    ),
    Case(
        "more_sk_logistic_bce_correct",
        "sklearn",
        # multi-label head: logistic outputs, binary log loss summed over the units; one hidden layer
        _keywords(
            MLPClassifier,
            activation="logistic",
            out_activation="logistic",
            hidden_layer_sizes=(20,),
            n_features_in=30,
            n_outputs=5,
            learning_rate_init=0.5,
        ),
    ),
    Case(
        "more_sk_alpha_on_intercepts",
        "sklearn",
        _keywords(InterceptDecay, alpha=0.05),
        # intercepts start at U(-bound, bound), so alpha * b shows at once; coefs_ are right
        [Bug("gradient", "l2-applied-to-biases", names("intercepts_", range(3)))],
    ),
    Case(
        "more_sk_alpha_doubled",
        "sklearn",
        _keywords(DoubleAlpha, alpha=0.05, activation="tanh"),
        [Bug("gradient", "l2-gradient-wrong-factor", names("coefs_", range(3)))],
    ),
    Case(
        "more_sk_derivative_one_layer_down",
        "sklearn",
        # 16-16-16-4 logistic, so activations[i - 1] has the right shape; no params=: discovered.
        # Both hidden deltas use the layer below's output (X itself for the first): layers 0 and 1
        # are wrong, the output layer's arrays are right
        _keywords(
            DerivativeOneLayerDown,
            with_params=False,
            activation="logistic",
            hidden_layer_sizes=(16, 16),
            n_features_in=16,
            learning_rate_init=0.5,
        ),
        [
            Bug(
                "gradient",
                "off-by-one-layer-activation",
                names("coefs_", (0, 1)) + names("intercepts_", (0, 1)),
            )
        ],
    ),
    Case(
        "more_sk_intercept_grad_axis1",
        "sklearn",
        # gradients only (partial_fit would fail to broadcast (n,) into (units,) unless n == units)
        _keywords(InterceptAxis1, with_update=False),
        [Bug("gradient", "bias-grad-wrong-axis", names("intercepts_", range(3)))],
    ),
    Case(
        "more_sk_log_loss_unclipped",
        "sklearn",
        _keywords(UnclippedLogLoss),
        [Bug("loss", "log-of-zero")],
    ),
    Case(
        "more_sk_learning_rate_init_40",
        "sklearn",
        # the code is more_sk_relu_alpha_correct's (no alpha); learning_rate_init=40 diverges
        _keywords(MLPClassifier, learning_rate_init=40.0),
        [Bug("training", "learning-rate-too-large")],
    ),
]
