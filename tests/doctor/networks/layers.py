"""Layer objects with forward/backward (CS231n / "from scratch" blog style): ``Dense`` caches its
input, ``ReLU`` its mask, a softmax-cross-entropy head; a ``Model`` chains them. Gradients are
read from the layers' ``dW`` / ``db`` after ``backward``; a second flavour updates each layer
during its own backward pass.
"""

import numpy as np

from tests.doctor.networks import Bug, Case


def softmax(logits):
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


class Dense:
    def __init__(self, n_in, n_out, rng):
        self.W = rng.normal(0.0, np.sqrt(2.0 / n_in), (n_in, n_out))
        self.b = np.zeros(n_out)

    def forward(self, x):
        self.x = x
        return x @ self.W + self.b

    def backward(self, grad):
        self.dW = self.x.T @ grad
        self.db = grad.sum(axis=0)
        return grad @ self.W.T

    def backward_and_update(self, grad, lr):
        """Backward pass that steps the layer as soon as its gradient is known."""
        self.dW = self.x.T @ grad
        self.db = grad.sum(axis=0)
        W_used = self.W.copy()  # the weights the forward pass used
        self.W -= lr * self.dW
        self.b -= lr * self.db
        return grad @ W_used.T


class DenseAliased(Dense):
    def backward_and_update(self, grad, lr):
        self.dW = self.x.T @ grad
        self.db = grad.sum(axis=0)
        W_used = self.W  # BUG: not a copy; the in-place step below changes it too
        self.W -= lr * self.dW
        self.b -= lr * self.db
        return grad @ W_used.T


class ReLU:
    def forward(self, x):
        self.mask = x > 0
        return x * self.mask

    def backward(self, grad):
        return grad * self.mask

    def backward_and_update(self, grad, lr):
        return self.backward(grad)


class ReLUOnGrad(ReLU):
    def backward(self, grad):
        return np.maximum(grad, 0)  # BUG: relu applied to the incoming gradient, not masked by x > 0


class SoftmaxCrossEntropy:
    def forward(self, logits, y):
        self.p = softmax(logits)
        self.y = y
        return -np.mean(np.sum(y * np.log(self.p + 1e-12), axis=1))

    def backward(self):
        return (self.p - self.y) / len(self.y)


class Model:
    def __init__(self, sizes=(20, 16, 8, 4), lr=0.1, seed=0, dense=Dense, relu=ReLU):
        rng = np.random.default_rng(seed)
        self.layers = []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            self.layers.append(dense(n_in, n_out, rng))
            if i < len(sizes) - 2:
                self.layers.append(relu())
        self.head = SoftmaxCrossEntropy()
        self.lr = lr

    def logits(self, X):
        out = X
        for layer in self.layers:
            out = layer.forward(out)
        return out

    def predict_proba(self, X):
        return softmax(self.logits(X))

    def loss(self, X, Y):
        return self.head.forward(self.logits(X), Y)

    def backward(self, X, Y):
        self.loss(X, Y)
        grad = self.head.backward()
        for layer in reversed(self.layers):
            grad = layer.backward(grad)

    def step(self):
        for layer in self.layers:
            if isinstance(layer, Dense):
                layer.W -= self.lr * layer.dW
                layer.b -= self.lr * layer.db

    def train_step(self, X, Y):
        self.backward(X, Y)
        self.step()

    def train_step_fused(self, X, Y):
        self.loss(X, Y)
        grad = self.head.backward()
        for layer in reversed(self.layers):
            grad = layer.backward_and_update(grad, self.lr)

    def dense_layers(self):
        return [(i, layer) for i, layer in enumerate(self.layers) if isinstance(layer, Dense)]


def params(model):
    named = {}
    for i, layer in model.dense_layers():
        named[f"layers[{i}].W"] = layer.W
        named[f"layers[{i}].b"] = layer.b
    return named


def gradients(model, X, Y):
    model.backward(X, Y)
    named = {}
    for i, layer in model.dense_layers():
        named[f"layers[{i}].W"] = layer.dW
        named[f"layers[{i}].b"] = layer.db
    return named


def _keywords(build, fused=False):
    keywords = dict(
        build=build,
        forward=lambda net, X: net.predict_proba(X),
        objective="cross_entropy",
        params=params,
        lr=lambda net: net.lr,
        loss=lambda net, X, Y: net.loss(X, Y),
    )
    if fused:
        keywords["update"] = lambda net, X, Y: net.train_step_fused(X, Y)
    else:
        keywords["gradients"] = gradients
        keywords["update"] = lambda net, X, Y: net.train_step(X, Y)
    return keywords


BELOW_TOP = ("layers[0].W", "layers[0].b", "layers[2].W", "layers[2].b")

CASES = [
    Case("layers_correct", "layers", _keywords(lambda: Model())),
    Case("layers_update_in_backward_correct", "layers", _keywords(lambda: Model(), fused=True)),
    Case(
        "layers_relu_backward_on_gradient",
        "layers",
        _keywords(lambda: Model(relu=ReLUOnGrad)),
        # both ReLUs (after layers[0] and layers[2]) pass max(grad, 0): both dense layers below them
        # are wrong, the top layer layers[4] is right
        [Bug("gradient", "relu-derivative-wrong-tensor", BELOW_TOP)],
    ),
    Case(
        "layers_update_aliases_weights",
        "layers",
        _keywords(lambda: Model(dense=DenseAliased), fused=True),
        # layers[4] steps first, then sends its gradient back through the *updated* W; so do the
        # layers below. layers[4]'s own step is right; layers[2] and layers[0] get a gradient through
        # weights that already moved (checked numerically: relative error ~1e-2)
        [Bug("gradient", "in-place-update-aliasing", BELOW_TOP)],
    ),
]
