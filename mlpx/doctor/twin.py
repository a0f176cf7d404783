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
from dataclasses import dataclass
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

    def gradients(self, x, y, math: ObjectiveMath, bug: Optional[Tuple[str, int, str]] = None) -> Arrays:
        """The data term's gradient; ``bug`` = (kind, layer index 0-based, variant) simulates a mistake
        in the backward step that hands the error to layer ``index``."""
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
            if bug and bug[0] == "off-by-one-layer-activation" and bug[1] == index and bug[2] == "output":
                source = acts[index + 1]
            if bug and bug[0] == "off-by-one-layer-activation" and bug[1] == index and bug[2] == "before":
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
            if bug and bug[0] == "transposed-weight-in-backward" and bug[1] == index - 1:
                if w.shape[0] != w.shape[1]:
                    raise ValueError("not square")
                upstream = delta @ w
            else:
                upstream = delta @ w.T
            delta = upstream * self._derivative(index - 1, zs, acts, upstream, bug)
        return out

    def _derivative(self, index: int, zs, acts, upstream, bug) -> np.ndarray:
        name = self.hidden[index]
        z, a = zs[index], acts[index + 1]
        right = ACTIVATIONS[name][1](z)
        if not bug or bug[1] != index:
            return right
        kind, _, variant = bug
        if kind == "missing-activation-derivative":
            return np.ones_like(z)
        if kind == "relu-derivative-wrong-tensor":
            if variant == "error":
                return (upstream > 0).astype(float)
            if variant == "previous" and index >= 1 and zs[index - 1].shape == z.shape:
                return (zs[index - 1] > 0).astype(float)
            if variant == "next" and index + 1 < len(zs) and zs[index + 1].shape == z.shape:
                return (zs[index + 1] > 0).astype(float)
            raise ValueError("no such tensor")
        if kind == "sigmoid-derivative-on-preactivation":
            return z * (1 - z) if variant == "z" else _sigmoid(a) * (1 - _sigmoid(a))
        if kind == "activation-derivative-wrong-tensor":
            return 1 - z**2 if variant == "z" else 1 - np.tanh(a) ** 2
        if kind == "off-by-one-layer-activation" and variant == "derivative":
            if index >= 1 and zs[index - 1].shape == z.shape:
                return ACTIVATIONS[self.hidden[index - 1]][1](zs[index - 1])
            raise ValueError("shapes differ")
        return right


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


def mistakes(twin: Twin) -> List[Tuple[str, int, str]]:
    """Every (kind, layer index, variant) this twin can simulate."""
    found = []
    for index, name in enumerate(twin.hidden):
        found.append(("missing-activation-derivative", index, ""))
        if name in ("relu", "leaky_relu"):
            found += [("relu-derivative-wrong-tensor", index, v) for v in ("error", "previous", "next")]
        if name == "sigmoid":
            found += [("sigmoid-derivative-on-preactivation", index, v) for v in ("z", "a")]
        if name == "tanh":
            found += [("activation-derivative-wrong-tensor", index, v) for v in ("z", "a")]
        found.append(("off-by-one-layer-activation", index, "derivative"))
        found.append(("transposed-weight-in-backward", index, ""))
    for index in range(len(twin.layers)):
        found += [("off-by-one-layer-activation", index, v) for v in ("output", "before")]
    return found
