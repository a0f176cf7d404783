"""A Keras-like ``Sequential`` written in NumPy, as in the "build Keras yourself" posts:
``model.add(Dense(units, activation="relu", input_dim=...))``, ``model.compile(
loss="categorical_crossentropy", optimizer=SGD(learning_rate=...))``, ``fit(x, y, epochs,
batch_size, shuffle)`` looping over mini-batches through ``train_on_batch``, and ``predict``.
Weights are named as Keras names them (``dense/kernel``, ``dense_1/bias``, ...). The loss object
clips with ``epsilon = 1e-7`` like Keras' backend. Layers pass gradients back through
``backward(grad)``; the softmax activation layer applies its Jacobian, the loss's gradient is
``-y / p / n``.
"""

import numpy as np

from tests.doctor.networks import Bug, Case

D_IN, N_OUT = 20, 4
EPSILON = 1e-7


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _softmax_unshifted(z):
    e = np.exp(z)  # BUG: no max subtraction
    return e / e.sum(axis=-1, keepdims=True)


class Activation:
    def __init__(self, name, softmax=_softmax):
        self.name = name
        self.softmax = softmax

    def forward(self, z):
        self.z = z
        if self.name == "relu":
            self.out = np.maximum(z, 0.0)
        elif self.name == "softmax":
            self.out = self.softmax(z)
        else:
            self.out = z
        return self.out

    def backward(self, grad):
        if self.name == "relu":
            return grad * (self.z > 0)
        if self.name == "softmax":
            s = self.out
            return s * (grad - np.sum(grad * s, axis=-1, keepdims=True))  # J^T grad, row by row
        return grad


class Dense:
    count = 0

    def __init__(self, units, activation=None, input_dim=None, softmax=_softmax):
        self.units = units
        self.activation = Activation(activation, softmax)
        self.input_dim = input_dim
        self.name = None

    def build(self, input_dim, rng):
        limit = np.sqrt(6.0 / (input_dim + self.units))  # glorot_uniform
        self.kernel = rng.uniform(-limit, limit, (input_dim, self.units))
        self.bias = np.zeros(self.units)

    def forward(self, x):
        self.x = x
        return self.activation.forward(x @ self.kernel + self.bias)

    def backward(self, grad):
        grad = self.activation.backward(grad)
        self.d_kernel = self.x.T @ grad
        self.d_bias = self.bias_gradient(grad)
        return grad @ self.kernel.T

    def bias_gradient(self, grad):
        return grad.sum(axis=0)


class DenseBiasScalar(Dense):
    def bias_gradient(self, grad):
        return np.sum(grad)  # BUG: no axis, one number for every unit


class CategoricalCrossentropy:
    def __call__(self, y_true, y_pred):
        p = np.clip(y_pred, EPSILON, 1.0 - EPSILON)
        return float(np.mean(-np.sum(y_true * np.log(p), axis=-1)))

    def gradient(self, y_true, y_pred):
        p = np.clip(y_pred, EPSILON, 1.0 - EPSILON)
        return -y_true / p / len(y_true)


class CategoricalCrossentropyShortcut(CategoricalCrossentropy):
    def gradient(self, y_true, y_pred):
        # BUG: "the gradient of softmax + cross-entropy is p - y" -- but the softmax layer's backward
        # multiplies by its Jacobian again, so what arrives is squared error's gradient through softmax
        return (y_pred - y_true) / len(y_true)


LOSSES = {
    "categorical_crossentropy": CategoricalCrossentropy,
    "cce_shortcut": CategoricalCrossentropyShortcut,
}


class SGD:
    def __init__(self, learning_rate=0.01):
        self.learning_rate = learning_rate

    def apply_gradients(self, grads_and_vars):
        for grad, var in grads_and_vars:
            var -= self.learning_rate * grad


class Sequential:
    def __init__(self, seed=0):
        self.layers = []
        self.rng = np.random.default_rng(seed)

    def add(self, layer):
        input_dim = layer.input_dim if not self.layers else self.layers[-1].units
        layer.build(input_dim, self.rng)
        layer.name = "dense" if not self.layers else f"dense_{len(self.layers)}"
        self.layers.append(layer)

    def compile(self, loss, optimizer):
        self.loss = LOSSES[loss]()
        self.optimizer = optimizer

    def predict(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def train_on_batch(self, x, y):
        y_pred = self.predict(x)
        loss = self.loss(y, y_pred)
        grad = self.loss.gradient(y, y_pred)
        for layer in reversed(self.layers):
            grad = layer.backward(grad)
        pairs = []
        for layer in self.layers:
            pairs += [(layer.d_kernel, layer.kernel), (layer.d_bias, layer.bias)]
        self.optimizer.apply_gradients(pairs)
        return loss

    def fit(self, x, y, epochs=1, batch_size=32, shuffle=True, verbose=0):
        history = []
        for _ in range(epochs):
            order = self.rng.permutation(len(x)) if shuffle else np.arange(len(x))
            for start in range(0, len(x), batch_size):
                batch = order[start : start + batch_size]
                history.append(self.train_on_batch(x[batch], y[batch]))
        return history

    def evaluate(self, x, y):
        return self.loss(y, self.predict(x))

    @property
    def weights(self):
        named = {}
        for layer in self.layers:
            named[f"{layer.name}/kernel"] = layer.kernel
            named[f"{layer.name}/bias"] = layer.bias
        return named


def make_model(dense=Dense, loss="categorical_crossentropy", learning_rate=0.1, softmax=_softmax):
    model = Sequential()
    model.add(dense(32, activation="relu", input_dim=D_IN))
    model.add(dense(16, activation="relu"))
    model.add(dense(N_OUT, activation="softmax", softmax=softmax))
    model.compile(loss=loss, optimizer=SGD(learning_rate=learning_rate))
    return model


def _train_on_batch(model, X, Y):
    model.train_on_batch(X, Y)  # returns the loss, not the model


def _fit_one_epoch(model, X, Y, epoch):
    model.fit(X, Y, epochs=1, batch_size=16)  # fit returns the history, not the model


def _keywords(learning_rate=0.1, **model_kwargs):
    return dict(
        build=lambda: make_model(learning_rate=learning_rate, **model_kwargs),
        forward=lambda model, X: model.predict(X),
        objective="cross_entropy",
        params=lambda model: model.weights,
        update=_train_on_batch,
        lr=lambda model: model.optimizer.learning_rate,
        loss=lambda model, X, Y: model.evaluate(X, Y),
        train_epoch=_fit_one_epoch,
    )


ALL = ("dense/kernel", "dense/bias", "dense_1/kernel", "dense_1/bias", "dense_2/kernel", "dense_2/bias")

CASES = [
    Case("tutorial_keras_like_sequential", "keras-like", _keywords()),
    Case(
        "tutorial_keras_like_loss_gradient_shortcut",
        "keras-like",
        _keywords(loss="cce_shortcut"),
        [Bug("gradient", "mse-gradient-through-softmax-with-ce-loss", ALL)],
    ),
    Case(
        "tutorial_keras_like_bias_sum_no_axis",
        "keras-like",
        _keywords(dense=DenseBiasScalar),
        # kernels are right (the layer's grad is untouched); every bias gets one broadcast number
        [Bug("gradient", "bias-grad-collapsed-to-scalar", ("dense/bias", "dense_1/bias", "dense_2/bias"))],
    ),
    Case(
        "tutorial_keras_like_softmax_unshifted",
        "keras-like",
        _keywords(softmax=_softmax_unshifted),
        # exact at ordinary inputs; exp overflows to inf / nan once the logits are large
        [Bug("stress", "softmax-overflow-no-max-subtraction")],
    ),
    Case(
        "tutorial_keras_like_learning_rate_50",
        "keras-like",
        _keywords(learning_rate=50.0),
        # the gradients and the step are right; fit() with lr=50 blows the loss up
        [Bug("training", "learning-rate-too-large")],
    ),
]
