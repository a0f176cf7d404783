"""A PyTorch-imitating "from scratch" style: ``Module`` objects called with ``__call__``, ``Linear``
keeping ``(out_features, in_features)`` weights behind ``weight`` / ``bias`` properties (the
optimizer assigns through the setters, so the arrays are rebound every step), ``named_parameters()``
with torch's dotted names (``"0.weight"``), ``zero_grad()``, a ``CrossEntropyLoss`` module taking
logits, ``Dropout`` drawing ``np.random.binomial`` masks, and the user's own ``train_epoch`` with
its own ``np.random.permutation`` shuffling and mini-batches. Second, independent collection.
"""

import numpy as np

from tests.doctor.networks import Bug, Case


class Module:
    training = True

    def train(self, mode=True):
        self.training = mode
        for m in getattr(self, "layers", []):
            m.train(mode)
        return self

    def eval(self):
        return self.train(False)


class Linear(Module):
    def __init__(self, in_features, out_features, rng):
        bound = 1.0 / np.sqrt(in_features)
        self._weight = rng.uniform(-bound, bound, (out_features, in_features)) * np.sqrt(6.0)
        self._bias = rng.uniform(-bound, bound, out_features)
        self.weight_grad = np.zeros_like(self._weight)
        self.bias_grad = np.zeros_like(self._bias)

    @property
    def weight(self):
        return self._weight

    @weight.setter
    def weight(self, value):
        self._weight = value

    @property
    def bias(self):
        return self._bias

    @bias.setter
    def bias(self, value):
        self._bias = value

    def __call__(self, x):
        self.input = x
        return x @ self.weight.T + self.bias

    def backward(self, grad_output):
        self.weight_grad = self.weight_grad + grad_output.T @ self.input
        self.bias_grad = self.bias_grad + self._bias_grad(grad_output)
        return grad_output @ self.weight

    def _bias_grad(self, grad_output):
        return grad_output.sum(axis=0)

    def zero_grad(self):
        self.weight_grad = np.zeros_like(self._weight)
        self.bias_grad = np.zeros_like(self._bias)


class LinearBiasSum(Linear):
    def _bias_grad(self, grad_output):
        return grad_output.sum()  # BUG: sums over the units too: one number added to every bias


class ReLU(Module):
    def __call__(self, x):
        self.mask = x > 0
        return np.where(self.mask, x, 0.0)

    def backward(self, grad_output):
        return grad_output * self.mask


class Dropout(Module):
    def __init__(self, p=0.25):
        self.p = p

    def __call__(self, x):
        if not self.training:
            return x
        self.mask = np.random.binomial(1, 1 - self.p, size=x.shape) * (1.0 / (1 - self.p))
        return x * self.mask

    def backward(self, grad_output):
        return grad_output * self.mask


class DropoutForgetful(Dropout):
    def backward(self, grad_output):
        return grad_output  # BUG: "dropout has no parameters, nothing to do on the way back"


class Sequential(Module):
    def __init__(self, *layers):
        self.layers = list(layers)

    def __call__(self, x):
        for layer in self.layers:
            x = layer(x)
        return x

    def backward(self, grad):
        for layer in reversed(self.layers):
            grad = layer.backward(grad)
        return grad

    def named_parameters(self):
        for i, layer in enumerate(self.layers):
            if isinstance(layer, Linear):
                yield f"{i}.weight", layer.weight
                yield f"{i}.bias", layer.bias

    def named_grads(self):
        for i, layer in enumerate(self.layers):
            if isinstance(layer, Linear):
                yield f"{i}.weight", layer.weight_grad
                yield f"{i}.bias", layer.bias_grad

    def zero_grad(self):
        for layer in self.layers:
            if isinstance(layer, Linear):
                layer.zero_grad()


def softmax(logits):
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


class CrossEntropyLoss:
    def __call__(self, logits, target):
        self.probs = softmax(logits)
        self.target = target
        return self.reduce(-target * np.log(np.clip(self.probs, 1e-12, 1.0)))

    def reduce(self, per_entry):
        return float(per_entry.sum(axis=1).mean())

    def backward(self):
        return (self.probs - self.target) / self.target.shape[0]


class CrossEntropyMeanEverything(CrossEntropyLoss):
    def reduce(self, per_entry):
        return float(per_entry.mean())  # BUG: torch-like "mean" over n * C entries


class CrossEntropyThroughJacobian(CrossEntropyLoss):
    def backward(self):
        # BUG: "chain rule through the softmax" with dL/dp = p - y (squared error's), not -y/p
        p, y = self.probs, self.target
        dp = p - y
        return p * (dp - np.sum(dp * p, axis=1, keepdims=True)) / y.shape[0]


class SGD:
    def __init__(self, model, lr):
        self.model, self.lr = model, lr

    def step(self):
        for layer in self.model.layers:
            if isinstance(layer, Linear):
                layer.weight = layer.weight - self.lr * layer.weight_grad
                layer.bias = layer.bias - self.lr * layer.bias_grad


class Trainer:
    def __init__(
        self, dropout=None, linear=Linear, criterion=CrossEntropyLoss, lr=0.1, batch_size=16, seed=0
    ):
        rng = np.random.default_rng(seed)
        layers = [linear(20, 32, rng), ReLU()]
        if dropout is not None:
            layers.append(dropout(0.25))
        layers += [linear(32, 16, rng), ReLU(), linear(16, 4, rng)]
        self.model = Sequential(*layers)
        self.criterion = criterion()
        self.optimizer = SGD(self.model, lr)
        self.batch_size = batch_size

    def compute_gradients(self, X, Y):
        self.model.zero_grad()
        loss = self.criterion(self.model(X), Y)
        self.model.backward(self.criterion.backward())
        return loss

    def train_step(self, X, Y):
        loss = self.compute_gradients(X, Y)
        self.optimizer.step()
        return loss

    def train_epoch(self, X, Y, epoch):
        self.model.train()
        perm = np.random.permutation(len(X))
        for start in range(0, len(X), self.batch_size):
            idx = perm[start : start + self.batch_size]
            self.train_step(X[idx], Y[idx])


def _keywords(seed=None, **trainer_kwargs):
    def gradients(t, X, Y):
        t.compute_gradients(X, Y)
        return {k: g.copy() for k, g in t.model.named_grads()}

    def update(t, X, Y):
        t.train_step(X, Y)  # returns the loss; the contract wants None (or the net)

    keywords = dict(
        build=lambda: Trainer(**trainer_kwargs),
        # training mode: dropout masks drawn like the gradients' (same seed)
        forward=lambda t, X: softmax(t.model(X)),
        objective="cross_entropy",
        params=lambda t: dict(t.model.named_parameters()),
        gradients=gradients,
        update=update,
        lr=lambda t: t.optimizer.lr,
        loss=lambda t, X, Y: t.criterion(t.model(X), Y),
        train_epoch=lambda t, X, Y, epoch: t.train_epoch(X, Y, epoch),
    )
    if seed is not None:
        keywords["seed"] = seed
    return keywords


ALL = ("0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias")

CASES = [
    Case("more_torch_modules_correct", "torch-like", _keywords()),
    Case("more_torch_dropout_correct", "torch-like", _keywords(seed=7, dropout=Dropout)),
    Case(
        "more_torch_dropout_backward_identity",
        "torch-like",
        _keywords(seed=7, dropout=DropoutForgetful),
        # layers: 0 Linear, 1 ReLU, 2 Dropout, 3 Linear, 4 ReLU, 5 Linear; only layer 0 is below it
        [Bug("gradient", "dropout-mask-missing-in-backward", ("0.weight", "0.bias"))],
    ),
    Case(
        "more_torch_bias_grad_sum_all",
        "torch-like",
        _keywords(linear=LinearBiasSum),
        [Bug("gradient", "bias-grad-collapsed-to-scalar", ("0.bias", "2.bias", "4.bias"))],
    ),
    Case(
        "more_torch_loss_mean_over_entries",
        "torch-like",
        _keywords(criterion=CrossEntropyMeanEverything),
        [Bug("loss", "loss-divided-by-num-classes")],
    ),
    Case(
        "more_torch_ce_backward_through_jacobian",
        "torch-like",
        _keywords(criterion=CrossEntropyThroughJacobian),
        [Bug("gradient", "mse-gradient-through-softmax-with-ce-loss", ALL)],
    ),
]
