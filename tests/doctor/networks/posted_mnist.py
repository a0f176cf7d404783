"""MNIST networks as people post them under "is my backprop right?": one class ``NeuralNetwork``
(784-32-10, ``self.w_ih`` / ``self.w_ho``, ``(1, n)`` row-vector biases) whose
``train(X, y, epochs, lr, batch_size)`` does everything: one-hot of the integer labels,
``np.random.permutation`` shuffling, mini-batches, the update and a loss printed per epoch.
``predict`` returns the argmax, so the adapter's ``forward`` calls ``feedforward``.

The adapters are written as such a user would: ``update`` is one call of ``train`` with one epoch
and the whole batch as its mini-batch (the permutation only reorders the rows of the mean),
``train_epoch`` is one call of ``train`` with ``epochs=1``; ``seed=0`` fixes the permutation.
``data`` is 32 real MNIST images scaled by 1/255 with one-hot labels.
"""

import functools

import numpy as np

from tests.doctor.networks import Bug, Case, one_hot


@functools.cache
def _mnist():
    from mlpx.datasets.mnist import load_mnist

    d = load_mnist()
    return d["train_images"][:256].reshape(256, -1).copy(), d["train_labels"][:256].astype(int).copy()


def mnist_data(n=32, start=0, dtype=np.float64):
    """``n`` real MNIST images, pixels / 255, labels one-hot (what the doctor gets as ``data``)."""
    pixels, labels = _mnist()
    X = pixels[start : start + n].astype(dtype) / 255.0
    return X, one_hot(labels[start : start + n], 10)


def scale_pixels(pixels):
    return np.asarray(pixels, dtype=np.float64) / 255.0


def eye_labels(labels, n_classes):
    return np.eye(n_classes)[labels]


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def sigmoid_prime(a):
    """The derivative written in terms of the sigmoid's output: a (1 - a)."""
    return a * (1.0 - a)


def softmax(z):
    e = np.exp(z - np.max(z, axis=1, keepdims=True))
    return e / np.sum(e, axis=1, keepdims=True)


class NeuralNetwork:
    """784-32-10: sigmoid hidden layer, softmax output, cross-entropy (log(p + 1e-8))."""

    def __init__(self, input_size=784, hidden_size=32, output_size=10, seed=42):
        np.random.seed(seed)
        self.w_ih = np.random.randn(input_size, hidden_size) * np.sqrt(1.0 / input_size)
        self.b_h = np.zeros((1, hidden_size))
        self.w_ho = np.random.randn(hidden_size, output_size) * np.sqrt(1.0 / hidden_size)
        self.b_o = np.zeros((1, output_size))
        self.output_size = output_size
        self.losses = []

    def feedforward(self, X):
        self.z1 = np.dot(X, self.w_ih) + self.b_h
        self.a1 = sigmoid(self.z1)
        self.z2 = np.dot(self.a1, self.w_ho) + self.b_o
        self.a2 = softmax(self.z2)
        return self.a2

    def predict(self, X):
        return np.argmax(self.feedforward(X), axis=1)

    def cross_entropy(self, y_hat, y):
        return -np.sum(y * np.log(y_hat + 1e-8)) / y.shape[0]

    def output_delta(self, y_hat, y):
        return y_hat - y

    def hidden_delta(self, delta2):
        return np.dot(delta2, self.w_ho.T) * sigmoid_prime(self.a1)

    def backprop(self, X, y):
        m = X.shape[0]
        y_hat = self.feedforward(X)
        delta2 = self.output_delta(y_hat, y)
        dw_ho = np.dot(self.a1.T, delta2) / m
        db_o = np.sum(delta2, axis=0, keepdims=True) / m
        delta1 = self.hidden_delta(delta2)
        dw_ih = np.dot(X.T, delta1) / m
        db_h = np.sum(delta1, axis=0, keepdims=True) / m
        return dw_ih, db_h, dw_ho, db_o

    def apply(self, grads, lr):
        dw_ih, db_h, dw_ho, db_o = grads
        self.w_ih -= lr * dw_ih
        self.b_h -= lr * db_h
        self.w_ho -= lr * dw_ho
        self.b_o -= lr * db_o

    def train(self, X, y, epochs=10, lr=0.5, batch_size=32):
        Y = np.eye(self.output_size)[y]
        for _ in range(epochs):
            perm = np.random.permutation(X.shape[0])
            X_shuf, Y_shuf = X[perm], Y[perm]
            for i in range(0, X.shape[0], batch_size):
                xb = X_shuf[i : i + batch_size]
                yb = Y_shuf[i : i + batch_size]
                self.apply(self.backprop(xb, yb), lr)
            loss = self.cross_entropy(self.feedforward(X), Y)
            self.losses.append(loss)


class SigmoidPrimeOnZ(NeuralNetwork):
    def hidden_delta(self, delta2):
        return np.dot(delta2, self.w_ho.T) * sigmoid_prime(self.z1)  # BUG: z1 (1 - z1)


class SigmoidPrimeOnSoftmax(NeuralNetwork):
    def output_delta(self, y_hat, y):
        # BUG: "and times the derivative of the output activation", on top of CE's p - y
        return (y_hat - y) * y_hat * (1.0 - y_hat)


class MeanOverEverything(NeuralNetwork):
    def cross_entropy(self, y_hat, y):
        return -np.mean(y * np.log(y_hat + 1e-8))  # BUG: mean over n * 10 entries


class PlusEquals(NeuralNetwork):
    def apply(self, grads, lr):
        dw_ih, db_h, dw_ho, db_o = grads
        self.w_ih += lr * dw_ih  # BUG: "+=" (the delta was y_hat - y, not y - y_hat)
        self.b_h += lr * db_h
        self.w_ho += lr * dw_ho
        self.b_o += lr * db_o


class OutputBiasScalar(NeuralNetwork):
    def backprop(self, X, y):
        dw_ih, db_h, dw_ho, db_o = super().backprop(X, y)
        db_o = np.sum(self.a2 - y) / X.shape[0]  # BUG: one number for every output bias
        return dw_ih, db_h, dw_ho, db_o


class SummedLoss(NeuralNetwork):
    """ "I use the summed loss so I don't divide anywhere": consistent, with a small lr."""

    def cross_entropy(self, y_hat, y):
        return -np.sum(y * np.log(np.clip(y_hat, 1e-12, 1.0)))

    def backprop(self, X, y):
        m = X.shape[0]
        return tuple(g * m for g in super().backprop(X, y))


class Float32Weights(NeuralNetwork):
    """float32 weights, float64 pixels: z is upcast to float64, the in-place steps cast back."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        for k in ("w_ih", "b_h", "w_ho", "b_o"):
            setattr(self, k, getattr(self, k).astype(np.float32))


NAMES = ("w_ih", "b_h", "w_ho", "b_o")
HIDDEN = ("w_ih", "b_h")


def _params(net):
    return {"w_ih": net.w_ih, "b_h": net.b_h, "w_ho": net.w_ho, "b_o": net.b_o}


def _keywords(cls=NeuralNetwork, lr=0.5, gradients=True, **extra):
    keywords = dict(
        build=lambda: cls(),
        forward=lambda net, X: net.feedforward(X),
        objective={"loss": "cross_entropy", "reduction": "mean"},
        params=_params,
        update=lambda net, X, Y: net.train(X, Y.argmax(axis=1), epochs=1, lr=lr, batch_size=len(X)),
        lr=lr,
        loss=lambda net, X, Y: net.cross_entropy(net.feedforward(X), Y),
        train_epoch=lambda net, X, Y, epoch: net.train(X, Y.argmax(axis=1), epochs=1, lr=lr, batch_size=16),
        prepare_inputs=scale_pixels,
        encode_labels=eye_labels,
        seed=0,
        data=mnist_data(32),
    )
    if gradients:
        keywords["gradients"] = lambda net, X, Y: dict(zip(NAMES, net.backprop(X, Y)))
    keywords.update(extra)
    return keywords


# ---------------------------------------------------------------- the same post, sigmoid + MSE


class MSENetwork(NeuralNetwork):
    """The classic "why does my MNIST net not learn": sigmoid outputs and 0.5 * squared error,
    lr 3 as in Nielsen's book. Correct, only slow."""

    def feedforward(self, X):
        self.z1 = np.dot(X, self.w_ih) + self.b_h
        self.a1 = sigmoid(self.z1)
        self.z2 = np.dot(self.a1, self.w_ho) + self.b_o
        self.a2 = sigmoid(self.z2)
        return self.a2

    def mse(self, y_hat, y):
        return 0.5 * np.sum((y_hat - y) ** 2) / y.shape[0]

    def output_delta(self, y_hat, y):
        return (y_hat - y) * sigmoid_prime(y_hat)


class MSENoOutputDerivative(MSENetwork):
    def output_delta(self, y_hat, y):
        return y_hat - y  # BUG: the sigmoid' of the output layer dropped (it is CE's delta)


class SigmoidBCE(MSENetwork):
    """Sigmoid outputs with per-unit binary cross-entropy (Keras' binary_crossentropy on 10
    units): the output delta is y_hat - y, correct for bce."""

    def bce(self, y_hat, y):
        y_hat = np.clip(y_hat, 1e-7, 1 - 1e-7)
        return -np.sum(y * np.log(y_hat) + (1 - y) * np.log(1 - y_hat)) / y.shape[0]

    def output_delta(self, y_hat, y):
        return y_hat - y


def _mse_keywords(cls=MSENetwork, lr=3.0, **extra):
    keywords = _keywords(
        cls,
        lr=lr,
        objective={"loss": "mse", "reduction": "mean", "scale": 0.5},
        loss=lambda net, X, Y: net.mse(net.feedforward(X), Y),
    )
    keywords.update(extra)
    return keywords


# ---------------------------------------------------------------- data adapters people post


def forgot_to_scale(pixels):
    return np.asarray(pixels, dtype=np.float64)  # BUG: 0..255 into sigmoid units


def one_hot_by_columns(labels, n_classes):
    Y = np.zeros((len(labels), n_classes))
    Y[:, labels] = 1.0  # BUG: every row gets a 1 in every column that occurs anywhere
    return Y


CASES = [
    Case("posted_mnist_sigmoid_softmax_train_loop", "posted-mnist", _keywords()),
    Case(
        "posted_mnist_update_only_no_gradients",
        "posted-mnist",
        # the user never exposed backprop: only the one-batch train call
        _keywords(gradients=False, lr=1.0),
    ),
    Case("posted_mnist_sigmoid_mse_lr3", "posted-mnist", _mse_keywords()),
    Case(
        "posted_mnist_summed_loss_small_lr",
        "posted-mnist",
        _keywords(
            SummedLoss,
            lr=0.01,
            objective={"loss": "cross_entropy", "reduction": "sum"},
            update=lambda net, X, Y: net.train(X, Y.argmax(1), epochs=1, lr=0.01, batch_size=len(X)),
            train_epoch=lambda net, X, Y, e: net.train(X, Y.argmax(1), epochs=1, lr=0.01, batch_size=16),
        ),
    ),
    Case("posted_mnist_float32_weights_float64_pixels", "posted-mnist", _keywords(Float32Weights)),
    Case(
        "posted_mnist_sigmoid_bce_ten_units",
        "posted-mnist",
        _mse_keywords(
            SigmoidBCE,
            lr=1.0,
            objective={"loss": "bce", "reduction": "mean"},
            loss=lambda net, X, Y: net.bce(net.feedforward(X), Y),
        ),
    ),
    Case(
        "posted_mnist_sigmoid_mse_small_lr_plateau",
        "posted-mnist",
        # lr 0.1 with sigmoid + MSE barely moves in an epoch: slow, not wrong
        _mse_keywords(lr=0.1),
    ),
    Case(
        "posted_mnist_sigmoid_prime_on_z",
        "posted-mnist",
        _keywords(SigmoidPrimeOnZ),
        # only the hidden delta is wrong; w_ho / b_o use a1 and p - y and are right
        [Bug("gradient", "sigmoid-derivative-on-preactivation", HIDDEN)],
    ),
    Case(
        "posted_mnist_softmax_times_sigmoid_prime",
        "posted-mnist",
        _keywords(SigmoidPrimeOnSoftmax),
        # the output delta is wrong, so every array's gradient is
        [Bug("gradient", "mse-gradient-through-softmax-with-ce-loss", NAMES)],
    ),
    Case(
        "posted_mnist_loss_np_mean",
        "posted-mnist",
        _keywords(MeanOverEverything),
        [Bug("loss", "loss-divided-by-num-classes")],
    ),
    Case(
        "posted_mnist_plus_equals_update",
        "posted-mnist",
        # backprop is right (gradients= passes); the step climbs
        _keywords(PlusEquals),
        [Bug("gradient", "gradient-ascent-sign-error", NAMES)],
    ),
    Case(
        "posted_mnist_output_bias_scalar",
        "posted-mnist",
        _keywords(OutputBiasScalar),
        [Bug("gradient", "bias-grad-collapsed-to-scalar", ("b_o",))],
    ),
    Case(
        "posted_mnist_mse_output_derivative_dropped",
        "posted-mnist",
        _mse_keywords(MSENoOutputDerivative),
        [Bug("gradient", "missing-activation-derivative", NAMES)],
    ),
    Case(
        "posted_mnist_pixels_not_scaled",
        "posted-mnist",
        _keywords(prepare_inputs=forgot_to_scale),
        [Bug("data", "inputs-not-normalized")],
    ),
    Case(
        "posted_mnist_one_hot_by_columns",
        "posted-mnist",
        _keywords(encode_labels=one_hot_by_columns),
        [Bug("data", "wrong-one-hot-encoding")],
    ),
]
