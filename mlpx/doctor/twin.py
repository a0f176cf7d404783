"""A reference twin of a plain fully connected network, to name layer-internal mistakes.

When the arrays chain into layers (``structure.layer_order``) and some choice of hidden
activations (ReLU, leaky ReLU, sigmoid, tanh, identity) and output (softmax or sigmoid)
reproduces the code's forward pass on the probing batch, the twin knows every pre-activation
z[l] and activation a[l]. It then computes, exactly, the gradient each classic backward mistake
would give (a missing f', a ReLU mask taken from the wrong tensor, a sigmoid derivative on z, a
neighbouring layer's activation, W instead of W.T, weights stepped before the error goes back
through them), and the doctor names the one the code's gradient equals.

A weight is (in, out) in row code, (out, in) in column code, or either with one extra side when
the bias is folded in (a column of ones on the inputs, first or last); a bias is any shape with
``out`` entries.
"""

import itertools
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from mlpx.doctor.objective import ObjectiveMath

Arrays = Dict[str, np.ndarray]


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _leaky(slope: float) -> Tuple[Callable, Callable, Callable]:
    return (
        lambda z: np.where(z > 0, z, slope * z),
        lambda z: np.where(z > 0, 1.0, slope),
        lambda a: np.where(a > 0, 1.0, slope),
    )


#: name -> (f(z), f'(z), f' written in terms of the activation a = f(z))
ACTIVATIONS: Dict[str, Tuple[Callable, Callable, Callable]] = {
    "relu": (lambda z: np.maximum(z, 0.0), lambda z: (z > 0).astype(float), lambda a: (a > 0).astype(float)),
    "sigmoid": (_sigmoid, lambda z: _sigmoid(z) * (1 - _sigmoid(z)), lambda a: a * (1 - a)),
    "tanh": (np.tanh, lambda z: 1 - np.tanh(z) ** 2, lambda a: 1 - a**2),
    **{f"leaky_relu_{s:g}": _leaky(s) for s in (0.01, 0.1, 0.2, 0.05, 0.3)},
    "identity": (lambda z: z, np.ones_like, np.ones_like),
    "elu": (
        lambda z: np.where(z > 0, z, np.expm1(np.minimum(z, 0))),
        lambda z: np.where(z > 0, 1.0, np.exp(np.minimum(z, 0))),
        lambda a: np.where(a > 0, 1.0, a + 1),
    ),
    "softplus": (lambda z: np.logaddexp(0, z), _sigmoid, lambda a: -np.expm1(-a)),
}
#: the activations tried layer by layer in every combination (the rest: the same in every layer)
_COMMON = ("relu", "sigmoid", "tanh", "leaky_relu_0.01", "identity")
_RELU_LIKE = ("relu", *(name for name in ACTIVATIONS if name.startswith("leaky")))


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@dataclass
class Layer:
    weight: str
    bias: Optional[str]
    column: bool  # weight is (out, in)
    folded: Optional[str] = None  # "first" / "last": the bias is that row (column) of the weight


@dataclass
class Mistake:
    """A backward mistake: per hidden layer (0-based) the derivative used instead of f'(z); per
    layer the activation its weight gradient takes instead of its input; the hidden layers whose
    error comes through W instead of W.T; the output delta's derivative; weights stepped before
    the error goes back through them."""

    kind: str
    derivative: Dict[int, str] = field(default_factory=dict)
    source: Dict[int, str] = field(default_factory=dict)
    transposed: Tuple[int, ...] = ()
    output: Optional[str] = None
    stepped_lr: Optional[float] = None
    stepped: Tuple[int, ...] = ()  # layers (0-based) stepped before the error goes through them
    bias_axis: Tuple[int, ...] = ()  # layers whose bias gradient sums over the units, not the batch

    @property
    def layers(self) -> List[int]:
        """1-based layers whose backward step holds the mistake."""
        held = {i + 1 for i in self.derivative} | {i + 1 for i in self.transposed}
        return sorted(held | {i + 1 for i in self.source})


class Twin:
    """The network re-computed in float64 with known activations; gradients with or without a bug."""

    def __init__(self, layers: List[Layer], hidden: Tuple[str, ...], output: str, arrays: Arrays) -> None:
        self.layers, self.hidden, self.output = layers, hidden, output
        self.arrays = {k: np.asarray(v, dtype=np.float64) for k, v in arrays.items()}

    def _full(self, layer: Layer) -> np.ndarray:
        w = self.arrays[layer.weight]
        return w.T if layer.column else w  # (in [+1], out)

    def _w(self, layer: Layer) -> np.ndarray:
        w = self._full(layer)
        return w[1:] if layer.folded == "first" else w[:-1] if layer.folded == "last" else w

    def _b(self, layer: Layer):
        if layer.folded:
            return self._full(layer)[0 if layer.folded == "first" else -1]
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

    def gradients(self, x, y, math: ObjectiveMath, bug: Optional[Mistake] = None) -> Arrays:
        """The data term's gradient, exact; with ``bug``, as that backward mistake computes it."""
        bug = bug or Mistake("")
        zs, acts = self.forward(x)
        delta = self._output_delta(_d_probs(math, acts[-1], y), zs[-1], acts[-1], bug.output)
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
            if index in bug.bias_axis and delta.shape[0] != delta.shape[1]:
                raise ValueError("the batch and the units differ: the shapes would show it")
            self._store(out, layer, grad_w, delta.sum(axis=1 if index in bug.bias_axis else 0))
            if index == 0:
                break
            w = self._w(layer)
            if bug.stepped_lr is not None and index in bug.stepped:
                w = w - bug.stepped_lr * grad_w  # the layer already stepped, in place
            if index - 1 in bug.transposed:
                if w.shape[0] != w.shape[1]:
                    raise ValueError("not square")
                upstream = delta @ w
            else:
                upstream = delta @ w.T
            delta = upstream * self._derivative(index - 1, zs, acts, upstream, bug.derivative.get(index - 1))
        return out

    def _store(self, out: Arrays, layer: Layer, grad_w: np.ndarray, grad_b: np.ndarray) -> None:
        if layer.folded:
            parts = [grad_b[None, :], grad_w] if layer.folded == "first" else [grad_w, grad_b[None, :]]
            full = np.concatenate(parts)
            out[layer.weight] = full.T if layer.column else full
            return
        out[layer.weight] = grad_w.T if layer.column else grad_w
        if layer.bias is not None:
            out[layer.bias] = grad_b.reshape(self.arrays[layer.bias].shape)

    def _output_delta(self, d_p, z, p, variant: Optional[str]) -> np.ndarray:
        if self.output == "softmax":
            return p * (d_p - (d_p * p).sum(axis=1, keepdims=True))
        derivative = {
            None: p * (1 - p),
            "missing": np.ones_like(p),
            "sigmoid-on-z": z * (1 - z),
            "sigmoid-of-a": _sigmoid(p) * (1 - _sigmoid(p)),
        }[variant]
        return d_p * derivative

    def _derivative(self, index: int, zs, acts, upstream, variant: Optional[str]) -> np.ndarray:
        """f'(z) of hidden layer ``index`` (0-based), or what a mistake ``variant`` uses instead."""
        name = self.hidden[index]
        z, a = zs[index], acts[index + 1]
        if variant is None:
            return ACTIVATIONS[name][1](z)
        if variant == "missing":
            return np.ones_like(z)
        if variant == "relu-of-error":
            return ACTIVATIONS[name][2](upstream)
        if variant in ("previous", "next"):
            # the derivative formula, in terms of the activation, fed a neighbouring layer's
            # activation (the inputs X for the first layer's "previous")
            other = (
                acts[index]
                if variant == "previous"
                else acts[index + 2]  # for the last hidden layer: the output's probabilities
            )
            if other is None or other.shape != z.shape:
                raise ValueError("no neighbour of that width")
            return ACTIVATIONS[name][2](other)
        if variant == "on-z":
            return ACTIVATIONS[name][2](z)
        if variant == "of-a":
            return ACTIVATIONS[name][1](a)
        raise ValueError(variant)


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


def _layers(arrays: Arrays, layer_names: List[List[str]], n_features: int, folded: str) -> List[Layer]:
    layers, width, column = [], n_features, None
    for names in layer_names:
        w = np.asarray(arrays[names[0]])
        if column is None:  # the first layer tells the orientation; a square one later cannot
            column = w.shape[1] in (width, width + 1) and w.shape[0] not in (width, width + 1)
        inputs = w.shape[1] if column else w.shape[0]
        extra = folded if inputs == width + 1 else None
        width = w.shape[0] if column else w.shape[1]
        layers.append(Layer(names[0], names[1] if len(names) > 1 and not extra else None, column, extra))
    return layers


def fit_twin(
    arrays: Arrays,
    layer_names: List[List[str]],
    n_features: int,
    x: np.ndarray,
    probs: np.ndarray,
    tolerance: float = 1e-5,
) -> Optional[Twin]:
    """The twin whose forward reproduces ``probs`` (n, C) on ``x`` to ``tolerance``, or None."""
    hidden_count = len(layer_names) - 1
    options = list(ACTIVATIONS)
    tried = [tuple([name] * hidden_count) for name in options]
    if hidden_count <= 3:
        tried += [c for c in itertools.product(_COMMON, repeat=hidden_count) if c not in tried]
    scale = max(float(np.abs(probs).max()), 1e-300)
    x = np.asarray(x, dtype=np.float64)
    for folded in ("first", "last"):
        layers = _layers(arrays, layer_names, n_features, folded)
        for output in ("softmax", "sigmoid"):
            for hidden in tried:
                twin = Twin(layers, hidden, output, arrays)
                with np.errstate(all="ignore"):
                    _, acts = twin.forward(x)
                if acts[-1].shape == probs.shape and np.abs(acts[-1] - probs).max() <= tolerance * scale:
                    return twin
        if not any(layer.folded for layer in layers):
            break
    return None


def _derivative_mistakes(name: str) -> List[Tuple[str, str]]:
    """(variant, kind) of the derivative mistakes that exist for activation ``name``."""
    if name in _RELU_LIKE:
        return [("relu-of-error", "relu-derivative-wrong-tensor")]
    if name == "sigmoid":
        return [
            ("on-z", "sigmoid-derivative-on-preactivation"),
            ("of-a", "sigmoid-derivative-on-preactivation"),
        ]
    if name in ("tanh", "elu", "softplus"):
        return [
            ("on-z", "activation-derivative-wrong-tensor"),
            ("of-a", "activation-derivative-wrong-tensor"),
        ]
    return []


def mistakes(twin: Twin, lr: Optional[float] = None) -> List[Mistake]:
    """Every mistake this twin can simulate: in one hidden layer, and in all of them at once."""
    hidden = range(len(twin.hidden))
    found: List[Mistake] = []

    def everywhere_and_each(kind: str, variant_of: Callable[[int], Optional[str]]) -> None:
        layers = [i for i in hidden if variant_of(i)]
        if len(layers) > 1:
            found.append(Mistake(kind, derivative={i: variant_of(i) for i in layers}))
        found.extend(Mistake(kind, derivative={i: variant_of(i)}) for i in layers)

    everywhere_and_each("missing-activation-derivative", lambda i: "missing")
    kinds = {(v, k) for name in set(twin.hidden) for v, k in _derivative_mistakes(name)}
    for variant, kind in sorted(kinds):
        everywhere_and_each(
            kind, lambda i, v=variant, k=kind: v if (v, k) in _derivative_mistakes(twin.hidden[i]) else None
        )
    for variant in ("previous", "next"):
        everywhere_and_each("off-by-one-layer-activation", lambda i, v=variant: v)
    if len(twin.hidden) >= 2:  # each hidden layer takes its neighbour's mask
        swap = {i: ("next" if i + 1 < len(twin.hidden) else "previous") for i in hidden}
        found.append(Mistake("off-by-one-layer-activation", derivative=swap))
    for index in hidden:
        found.append(Mistake("transposed-weight-in-backward", transposed=(index,)))
    if len(twin.hidden) > 1:
        found.append(Mistake("transposed-weight-in-backward", transposed=tuple(hidden)))
    for index in range(len(twin.layers)):
        found += [Mistake("off-by-one-layer-activation", source={index: v}) for v in ("output", "before")]
    if twin.output == "sigmoid":
        found.append(Mistake("missing-activation-derivative", output="missing"))
        found += [
            Mistake("sigmoid-derivative-on-preactivation", output=v) for v in ("sigmoid-on-z", "sigmoid-of-a")
        ]
    layers = tuple(range(len(twin.layers)))
    found += [Mistake("bias-grad-wrong-axis", bias_axis=(i,)) for i in layers]
    found.append(Mistake("bias-grad-wrong-axis", bias_axis=layers))
    if lr:
        above = tuple(range(1, len(twin.layers)))
        found.append(Mistake("in-place-update-aliasing", stepped_lr=lr, stepped=above))
        found += [
            Mistake("in-place-update-aliasing", stepped_lr=lr, stepped=(i,)) for i in above if len(above) > 1
        ]
    return found
