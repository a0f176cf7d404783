"""A reference twin of a plain fully connected network, to name layer-internal mistakes.

When the arrays chain into layers (``structure.layer_order``) and some choice of hidden
activations (ReLU, sigmoid, tanh, leaky ReLU, identity) and output (softmax or sigmoid)
reproduces the code's forward pass on the probing batch, the twin knows every pre-activation
z[l] and activation a[l]. It then computes, exactly, the gradient each classic backward mistake
would give (a missing f'(z), a ReLU mask taken from the wrong tensor, a sigmoid derivative on
z, a neighbouring layer's activation, W instead of W.T), and the doctor names the one the code's
gradient equals. Each array's shape is (in, out) for row code, (out, in) for column code; a
bias is any shape with ``out`` entries.
"""

import itertools
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from mlpx.doctor.objective import ObjectiveMath

Arrays = Dict[str, np.ndarray]


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


#: name -> (f(z), f'(z))
ACTIVATIONS: Dict[str, Tuple[Callable, Callable]] = {
    "relu": (lambda z: np.maximum(z, 0.0), lambda z: (z > 0).astype(float)),
    "sigmoid": (_sigmoid, lambda z: _sigmoid(z) * (1 - _sigmoid(z))),
    "tanh": (np.tanh, lambda z: 1 - np.tanh(z) ** 2),
    "leaky_relu": (lambda z: np.where(z > 0, z, 0.01 * z), lambda z: np.where(z > 0, 1.0, 0.01)),
    "identity": (lambda z: z, lambda z: np.ones_like(z)),
}


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@dataclass
class Layer:
    weight: str
    bias: Optional[str]
    column: bool  # weight is (out, in)


class Twin:
    """The network re-computed in float64 with known activations; gradients with or without a bug."""

    def __init__(self, layers: List[Layer], hidden: Tuple[str, ...], output: str, arrays: Arrays) -> None:
        self.layers, self.hidden, self.output = layers, hidden, output
        self.arrays = {k: np.asarray(v, dtype=np.float64) for k, v in arrays.items()}

    def _w(self, layer: Layer) -> np.ndarray:
        w = self.arrays[layer.weight]
        return w.T if layer.column else w  # (in, out)

    def _b(self, layer: Layer) -> np.ndarray:
        return 0.0 if layer.bias is None else self.arrays[layer.bias].reshape(-1)

    def forward(self, x: np.ndarray):
        a, zs, acts = x, [], [x]
        for index, layer in enumerate(self.layers):
            z = a @ self._w(layer) + self._b(layer)
            zs.append(z)
            if index < len(self.layers) - 1:
                a = ACTIVATIONS[self.hidden[index]][0](z)
            else:
                a = _softmax(z) if self.output == "softmax" else _sigmoid(z)
            acts.append(a)
        return zs, acts

    def gradients(self, x, y, math: ObjectiveMath, bug: Optional["Mistake"] = None) -> Arrays:
        """The data term's gradient, exact; with ``bug``, as that backward mistake computes it."""
        bug = bug or Mistake("")
        zs, acts = self.forward(x)
        p = acts[-1]
        d_p = _d_probs(math, p, y)
        if self.output == "softmax":
            delta = p * (d_p - (d_p * p).sum(axis=1, keepdims=True))
        else:
            delta = d_p * p * (1 - p)
        out = {}
        for index in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[index]
            source = acts[index]
            shift = bug.source.get(index)
            if shift == "output":
                source = acts[index + 1]
            elif shift == "before":
                source = acts[index - 1] if index >= 1 else None
            if source is None or source.shape[1] != self._w(layer).shape[0]:
                raise ValueError("shapes do not allow this mistake")
            grad_w = source.T @ delta
            out[layer.weight] = grad_w.T if layer.column else grad_w
            if layer.bias is not None:
                out[layer.bias] = delta.sum(axis=0).reshape(self.arrays[layer.bias].shape)
            if index == 0:
                break
            w = self._w(layer)
            if bug.stepped_lr is not None:
                w = w - bug.stepped_lr * grad_w  # the layer already stepped, in place
            if index - 1 in bug.transposed:
                if w.shape[0] != w.shape[1]:
                    raise ValueError("not square")
                upstream = delta @ w
            else:
                upstream = delta @ w.T
            delta = upstream * self._derivative(index - 1, zs, acts, upstream, bug.derivative.get(index - 1))
        return out

    def _derivative(self, index: int, zs, acts, upstream, variant: Optional[str]) -> np.ndarray:
        """f'(z) of hidden layer ``index`` (0-based), or what a mistake ``variant`` uses instead."""
        z, a = zs[index], acts[index + 1]
        if variant is None:
            return ACTIVATIONS[self.hidden[index]][1](z)
        if variant == "missing":
            return np.ones_like(z)
        if variant == "relu-of-error":
            return (upstream > 0).astype(float)
        if variant in ("previous", "next"):
            other = index - 1 if variant == "previous" else index + 1
            if 0 <= other < len(self.hidden) and zs[other].shape == z.shape:
                return ACTIVATIONS[self.hidden[other]][1](zs[other])
            raise ValueError("no neighbour of that width")
        if variant == "sigmoid-on-z":
            return z * (1 - z)
        if variant == "sigmoid-of-a":
            return _sigmoid(a) * (1 - _sigmoid(a))
        if variant == "tanh-on-z":
            return 1 - z**2
        if variant == "tanh-of-a":
            return 1 - np.tanh(a) ** 2
        raise ValueError(variant)


@dataclass
class Mistake:
    """A backward mistake: per hidden layer (0-based) the derivative used instead of f'(z); per
    layer the activation its weight gradient takes instead of its input; the hidden layers whose
    error comes through W instead of W.T; weights stepped before the error goes through them."""

    kind: str
    derivative: Dict[int, str] = field(default_factory=dict)
    source: Dict[int, str] = field(default_factory=dict)
    transposed: Tuple[int, ...] = ()
    stepped_lr: Optional[float] = None

    @property
    def layers(self) -> List[int]:
        """1-based layers whose backward step holds the mistake."""
        held = set(self.derivative) | set(self.transposed)
        return sorted({i + 2 for i in held} | {i + 1 for i in self.source})


def _d_probs(math: ObjectiveMath, p: np.ndarray, y: np.ndarray) -> np.ndarray:
    """d(data term)/dP (n, C)."""
    o = math.objective
    n = len(p) if o.reduction == "mean" else 1
    q = np.clip(p, 1e-300, None)
    if o.loss == "cross_entropy":
        return -y / q / n
    if o.loss == "bce":
        r = np.clip(1 - p, 1e-300, None)
        return (-y / q + (1 - y) / r) / n
    return 2 * o.scale * (p - y) / n


def fit_twin(
    arrays: Arrays, layer_names: List[List[str]], n_features: int, x: np.ndarray, probs: np.ndarray
) -> Optional[Twin]:
    """The twin whose forward reproduces ``probs`` (n, C) on ``x``, or None."""
    layers, width = [], n_features
    for names in layer_names:
        w = np.asarray(arrays[names[0]])
        column = w.shape[0] != width
        width = w.shape[0] if column else w.shape[1]
        layers.append(Layer(names[0], names[1] if len(names) > 1 else None, column))
    hidden_count = len(layers) - 1
    outputs = ["softmax", "sigmoid"]
    options = list(ACTIVATIONS)
    tried = [tuple([name] * hidden_count) for name in options]
    if hidden_count <= 3:
        tried += [c for c in itertools.product(options, repeat=hidden_count) if c not in tried]
    scale = max(float(np.abs(probs).max()), 1e-300)
    for output in outputs:
        for hidden in tried:
            twin = Twin(layers, hidden, output, arrays)
            with np.errstate(all="ignore"):
                _, acts = twin.forward(np.asarray(x, dtype=np.float64))
            if acts[-1].shape == probs.shape and np.abs(acts[-1] - probs).max() <= 1e-5 * scale:
                return twin
    return None


#: derivative variants by hidden activation, and the kind each is
_DERIVATIVE_MISTAKES = {
    "relu": [("relu-of-error", "relu-derivative-wrong-tensor")],
    "leaky_relu": [("relu-of-error", "relu-derivative-wrong-tensor")],
    "sigmoid": [
        ("sigmoid-on-z", "sigmoid-derivative-on-preactivation"),
        ("sigmoid-of-a", "sigmoid-derivative-on-preactivation"),
    ],
    "tanh": [
        ("tanh-on-z", "activation-derivative-wrong-tensor"),
        ("tanh-of-a", "activation-derivative-wrong-tensor"),
    ],
}


def mistakes(twin: Twin, lr: Optional[float] = None) -> List[Mistake]:
    """Every mistake this twin can simulate: in one hidden layer, and in all of them at once."""
    hidden = range(len(twin.hidden))
    found: List[Mistake] = []

    def everywhere_and_each(kind: str, variant_of) -> None:
        layers = [i for i in hidden if variant_of(i)]
        if len(layers) > 1:
            found.append(Mistake(kind, derivative={i: variant_of(i) for i in layers}))
        found.extend(Mistake(kind, derivative={i: variant_of(i)}) for i in layers)

    everywhere_and_each("missing-activation-derivative", lambda i: "missing")
    for variant, kind in {
        v: k for name in set(twin.hidden) for v, k in _DERIVATIVE_MISTAKES.get(name, [])
    }.items():
        everywhere_and_each(
            kind,
            lambda i, v=variant: (
                v if any(v == w for w, _ in _DERIVATIVE_MISTAKES.get(twin.hidden[i], [])) else None
            ),
        )
    for variant in ("previous", "next"):
        everywhere_and_each("off-by-one-layer-activation", lambda i, v=variant: v)
    if len(twin.hidden) >= 2:  # each hidden layer takes the other's mask
        found.append(
            Mistake(
                "off-by-one-layer-activation",
                derivative={i: ("next" if i + 1 < len(twin.hidden) else "previous") for i in hidden},
            )
        )
    for index in hidden:
        found.append(Mistake("transposed-weight-in-backward", transposed=(index,)))
    if len(twin.hidden) > 1:
        found.append(Mistake("transposed-weight-in-backward", transposed=tuple(hidden)))
    for index in range(len(twin.layers)):
        found += [Mistake("off-by-one-layer-activation", source={index: v}) for v in ("output", "before")]
    if lr:
        found.append(Mistake("in-place-update-aliasing", stepped_lr=lr))
    return found
