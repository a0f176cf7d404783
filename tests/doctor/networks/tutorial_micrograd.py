"""Karpathy-style minimal autograd, vectorised: micrograd's ``Value`` grown into a ``Tensor`` over
NumPy arrays (``data``, ``grad``, ``_prev``, ``_backward`` closures, ``backward()`` walking a
topological order with ``grad`` seeded to 1), ops ``@``, ``+`` (bias broadcast, summed back over
the batch), ``relu`` and a fused ``cross_entropy`` on logits (log-sum-exp, mean over the batch).
The training loop is the video's: ``zero_grad()``, forward, ``loss.backward()``, then
``p.data += -lr * p.grad`` for every parameter.
"""

import numpy as np

from tests.doctor.networks import Bug, Case

D_IN, N_OUT = 20, 4
LR = 0.1


class Tensor:
    def __init__(self, data, _children=(), _op=""):
        self.data = np.asarray(data, dtype=float)
        self.grad = np.zeros_like(self.data)
        self._backward = lambda: None
        self._prev = set(_children)
        self._op = _op

    def __matmul__(self, other):
        out = Tensor(self.data @ other.data, (self, other), "@")

        def _backward():
            self.grad += out.grad @ other.data.T
            other.grad += self.data.T @ out.grad

        out._backward = _backward
        return out

    def __add__(self, other):
        out = Tensor(self.data + other.data, (self, other), "+")

        def _backward():
            self.grad += out.grad
            other.grad += unbroadcast(out.grad, other.data.shape)

        out._backward = _backward
        return out

    def relu(self):
        out = Tensor(np.maximum(self.data, 0), (self,), "relu")

        def _backward():
            self.grad += (out.data > 0) * out.grad

        out._backward = _backward
        return out

    def cross_entropy(self, targets):
        logits = self.data
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        n = logits.shape[0]
        out = Tensor(-np.mean(log_probs[np.arange(n), targets]), (self,), "ce")

        def _backward():
            probs = np.exp(log_probs)
            probs[np.arange(n), targets] -= 1
            self.grad += out.grad * probs / n

        out._backward = _backward
        return out

    def backward(self):
        topo, visited = [], set()

        def build_topo(v):
            if v not in visited:
                visited.add(v)
                for child in v._prev:
                    build_topo(child)
                topo.append(v)

        build_topo(self)
        self.grad = np.ones_like(self.data)
        for v in reversed(topo):
            v._backward()


def unbroadcast(grad, shape):
    return grad.sum(axis=0) if grad.shape != shape else grad


def softmax(logits):
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def softmax_axis0(logits):
    e = np.exp(logits - logits.max(axis=0, keepdims=True))
    return e / e.sum(axis=0, keepdims=True)  # BUG: normalised down the batch, not across classes


class MLP:
    def __init__(self, nin, nouts, seed=1337, probs=softmax):
        rng = np.random.default_rng(seed)
        sizes = [nin] + list(nouts)
        self.layers = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            self.layers.append((Tensor(rng.uniform(-1, 1, (a, b)) / np.sqrt(a)), Tensor(np.zeros(b))))
        self.probs = probs

    def __call__(self, x):
        out = Tensor(x)
        for i, (W, b) in enumerate(self.layers):
            out = out @ W + b
            if i < len(self.layers) - 1:
                out = out.relu()
        return out

    def parameters(self):
        return [p for layer in self.layers for p in layer]

    def named(self):
        return {f"{kind}{i}": p.data for i, layer in enumerate(self.layers) for kind, p in zip("Wb", layer)}

    def zero_grad(self):
        for p in self.parameters():
            p.grad = np.zeros_like(p.data)

    def predict_proba(self, X):
        return self.probs(self(X).data)


class Trainer:
    """the loop of the video, one step per call"""

    zero_grad = True

    def step(self, model, X, Y):
        if self.zero_grad:
            model.zero_grad()
        loss = model(X).cross_entropy(np.argmax(Y, axis=1))
        loss.backward()
        for p in model.parameters():
            p.data += -LR * p.grad
        return loss

    def grads(self, model, X, Y):
        if self.zero_grad:
            model.zero_grad()
        model(X).cross_entropy(np.argmax(Y, axis=1)).backward()
        return {
            f"{kind}{i}": p.grad.copy()
            for i, layer in enumerate(model.layers)
            for kind, p in zip("Wb", layer)
        }


class ForgetfulTrainer(Trainer):
    zero_grad = False  # BUG: model.zero_grad() never called, .grad keeps adding up


def _keywords(trainer=Trainer, probs=softmax):
    t = trainer()

    def update(model, X, Y):
        t.step(model, X, Y)

    return dict(
        build=lambda: MLP(D_IN, [16, 16, N_OUT], probs=probs),
        forward=lambda model, X: model.predict_proba(X),
        objective="cross_entropy",
        params=lambda model: model.named(),
        gradients=t.grads,
        update=update,
        lr=LR,
        loss=lambda model, X, Y: float(model(X).cross_entropy(np.argmax(Y, axis=1)).data),
    )


CASES = [
    Case("tutorial_micrograd_vectorised", "micrograd", _keywords()),
    Case(
        "tutorial_micrograd_no_zero_grad",
        "micrograd",
        _keywords(ForgetfulTrainer),
        # the first call is exact; the second returns the sum of both calls' gradients
        [Bug("state", "gradients-not-reset-between-steps")],
    ),
    Case(
        "tutorial_micrograd_softmax_axis0",
        "micrograd",
        # the loss and gradients use the fused log-softmax and are right; predict_proba is not
        _keywords(probs=softmax_axis0),
        [Bug("forward", "softmax-wrong-axis")],
    ),
]
