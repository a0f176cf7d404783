"""The multi-layer perceptron: parameters, forward pass, and its backward pass beside it.

Layer ``l`` (1-based) maps ``a[l-1]`` (n_samples, sizes[l-1]) to ``z[l] = a[l-1] @ W{l} + b{l}``
of shape (n_samples, sizes[l]); hidden layers apply the activation, the last layer returns
logits and leaves softmax to the loss. ``params`` and the gradients from ``backward`` are
dicts with the same keys: ``W1`` (sizes[0], sizes[1]), ``b1`` (sizes[1],), ``W2``, ...
"""

from typing import Any, Dict, List, Sequence

import numpy as np

Arrays = Dict[str, np.ndarray]


class MLP:
    """Fully connected network of layer ``sizes`` = [n_features, *hidden, n_classes]."""

    def __init__(
        self,
        sizes: Sequence[int],
        activation: Any,
        initializer: Any,
        rng: np.random.Generator,
        dtype: np.dtype = np.float32,
    ) -> None:
        self.sizes = list(sizes)
        self.activation = activation
        self.dtype = np.dtype(dtype)
        self.n_layers = len(self.sizes) - 1
        self.params: Arrays = {}
        for layer, (fan_in, fan_out) in enumerate(zip(self.sizes[:-1], self.sizes[1:], strict=True), start=1):
            weights = initializer.init((fan_in, fan_out), fan_in, fan_out, rng)
            self.params[f"W{layer}"] = np.ascontiguousarray(weights, dtype=self.dtype)
            self.params[f"b{layer}"] = np.zeros(fan_out, dtype=self.dtype)
        self.grads: Arrays = {key: np.zeros_like(p) for key, p in self.params.items()}
        self._inputs: List[np.ndarray] = []  # a[l-1] for each layer l
        self._pre_activations: List[np.ndarray] = []  # z[l] for each hidden layer

    def forward(self, x: np.ndarray, keep: bool = True) -> np.ndarray:
        """Logits (n_samples, n_classes) for ``x`` (n_samples, n_features).

        ``keep`` stores what ``backward`` needs; pass False for evaluation.
        """
        inputs, pre_activations = [], []
        a = x
        for layer in range(1, self.n_layers + 1):
            inputs.append(a)
            z = a @ self.params[f"W{layer}"]
            z += self.params[f"b{layer}"]
            if layer == self.n_layers:
                if keep:
                    self._inputs, self._pre_activations = inputs, pre_activations
                return z
            pre_activations.append(z)
            a = self.activation.forward(z)
        raise AssertionError("unreachable: a network has at least one layer")

    def backward(self, d_logits: np.ndarray) -> Arrays:
        """Gradients of the loss for every parameter, given dL/dlogits (n_samples, n_classes).

        Uses the activations stored by the last ``forward``; returns ``self.grads``, whose arrays
        are overwritten by the next call. The input layer's gradient is never computed.
        """
        delta = d_logits  # dL/dz of the current layer
        for layer in range(self.n_layers, 0, -1):
            a_prev = self._inputs[layer - 1]
            np.matmul(a_prev.T, delta, out=self.grads[f"W{layer}"])
            np.sum(delta, axis=0, out=self.grads[f"b{layer}"])
            if layer > 1:
                grad_a = delta @ self.params[f"W{layer}"].T
                z = self._pre_activations[layer - 2]
                delta = self.activation.backward(z, a_prev, grad_a)
        return self.grads

    def logits(self, x: np.ndarray, batch_size: int = 5000) -> np.ndarray:
        """Logits for a whole dataset ``x`` (n_samples, n_features), in chunks to bound memory."""
        parts = [self.forward(x[i : i + batch_size], keep=False) for i in range(0, len(x), batch_size)]
        return np.concatenate(parts) if parts else np.empty((0, self.sizes[-1]), self.dtype)

    def weights(self) -> Arrays:
        """A copy of every parameter, for saving or restoring."""
        return {key: p.copy() for key, p in self.params.items()}
