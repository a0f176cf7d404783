"""The multi-layer perceptron: parameters, forward pass, and its backward pass beside it.

Layer ``l`` (1-based) maps ``a[l-1]`` (n_samples, sizes[l-1]) to ``z[l] = a[l-1] @ W{l} + b{l}``
of shape (n_samples, sizes[l]); hidden layers apply the activation, the last layer returns
logits and leaves softmax to the loss. ``params`` and the gradients from ``backward`` are
dicts with the same keys: ``W1`` (sizes[0], sizes[1]), ``b1`` (sizes[1],), ``W2``, ...

Training passes reuse preallocated buffers, one set per batch size: BLAS writes straight into
them (``out=``), and activations that accept an ``out`` argument write in place too. The
input layer's gradient is never computed.
"""

import inspect
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from mlpx.core.blas import blas_takes, column_sums_for, gemm_nn_for, gemm_tn_for

Arrays = Dict[str, np.ndarray]
#: below this many outputs a product then an add beats copying the bias in and calling BLAS
#: through ctypes (~2 us more per call than np.matmul: a (32, 300) output only breaks even)
PREFILL_MIN_SIZE = 16384
FusedTargets = Dict[str, Tuple[np.ndarray, float, float]]  # key -> (target, alpha, beta)


def _blas_ready(c: np.ndarray, a: np.ndarray, b: np.ndarray, dtype: np.dtype) -> bool:
    """Whether raw BLAS may read ``a`` (k, m), ``b`` (k, n) and write ``c`` (m, n)."""
    return blas_takes(dtype, c, a, b) and c.shape == (a.shape[1], b.shape[1])


def _product_ready(c: np.ndarray, a: np.ndarray, b: np.ndarray, dtype: np.dtype) -> bool:
    """Whether raw BLAS may read ``a`` (m, k), ``b`` (k, n) and accumulate into ``c`` (m, n)."""
    shapes = a.ndim == 2 and c.shape == (a.shape[0], b.shape[1]) and a.shape[1] == b.shape[0]
    return shapes and blas_takes(dtype, c, a, b)


def _bias_blas_ready(y: np.ndarray, delta: np.ndarray, dtype: np.dtype) -> bool:
    """Whether raw BLAS may read ``delta`` (k, n) and write its column sums into ``y`` (n,)."""
    return (
        blas_takes(dtype, y, delta)
        and delta.ndim == 2
        and delta.shape[0] > 0  # BLAS's GEMV of no rows leaves y unscaled by beta
        and y.shape == delta.shape[1:]
    )


def _accepts_out(method: Callable[..., Any]) -> bool:
    """Whether an activation method takes ``out=``, the optional in-place fast path."""
    try:
        return "out" in inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False


class TrainingBuffers:
    """Per-layer arrays for one batch size: z and a of each hidden layer, logits, grad_a, and the
    batch itself (inputs and targets, filled by the trainer's gather)."""

    def __init__(self, n_samples: int, sizes: Sequence[int], dtype: np.dtype) -> None:
        self.inputs = np.empty((n_samples, sizes[0]), dtype)
        self.targets = np.empty((n_samples, sizes[-1]), dtype)
        hidden = sizes[1:-1]
        self.z = [np.empty((n_samples, units), dtype) for units in hidden]
        self.a = [np.empty((n_samples, units), dtype) for units in hidden]
        self.grad_a = [np.empty((n_samples, units), dtype) for units in hidden]
        self.logits = np.empty((n_samples, sizes[-1]), dtype)


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
        self.weight_keys = [f"W{layer}" for layer in range(1, self.n_layers + 1)]
        self._bias_keys = [f"b{layer}" for layer in range(1, self.n_layers + 1)]
        self._buffers: Dict[int, TrainingBuffers] = {}
        self._x: np.ndarray = np.empty((0, self.sizes[0]), self.dtype)
        self._z: List[np.ndarray] = []  # z[l] of each hidden layer, from the last forward
        self._a: List[np.ndarray] = []  # a[l] of each hidden layer, from the last forward
        self._gemm_tn = gemm_tn_for(self.dtype)
        self._gemm_nn = gemm_nn_for(self.dtype)
        self._column_sums = column_sums_for(self.dtype)
        self.fused_keys: List[str] = []  # parameter keys the last backward fused into a target

    @property
    def activation(self) -> Any:
        return self._activation

    @activation.setter
    def activation(self, activation: Any) -> None:
        self._activation = activation
        self._forward_out = _accepts_out(activation.forward)
        self._backward_out = _accepts_out(activation.backward)

    def forward(self, x: np.ndarray, keep: bool = True) -> np.ndarray:
        """Logits (n_samples, n_classes) for ``x`` (n_samples, n_features).

        With ``keep`` (training) the result lives in a reused buffer, valid until the next
        ``forward`` of the same batch size, and ``backward`` may follow. ``keep=False``
        (evaluation) returns fresh arrays and leaves the training state alone.
        """
        if not keep:
            return self._forward_fresh(x)
        buffers = self.buffers(len(x))
        params, forward, forward_out = self.params, self.activation.forward, self._forward_out
        a = x
        zs, activations = [], []
        weight_keys, bias_keys = self.weight_keys, self._bias_keys
        for index in range(self.n_layers - 1):
            z = self._affine(a, params[weight_keys[index]], params[bias_keys[index]], buffers.z[index])
            a = forward(z, out=buffers.a[index]) if forward_out else forward(z)
            zs.append(z)
            activations.append(a)
        logits = self._affine(a, params[self.weight_keys[-1]], params[self._bias_keys[-1]], buffers.logits)
        self._x, self._z, self._a = x, zs, activations
        self._grad_a = buffers.grad_a
        return logits

    def buffers(self, n_samples: int) -> TrainingBuffers:
        """The arrays the training passes of ``n_samples`` rows write into, made at first use and
        kept (``mlpx.core.compiled``'s step writes into the same ones)."""
        buffers = self._buffers.get(n_samples)
        if buffers is None:
            buffers = self._buffers[n_samples] = TrainingBuffers(n_samples, self.sizes, self.dtype)
        return buffers

    def batch_buffers(self, n_samples: int) -> Tuple[np.ndarray, np.ndarray]:
        """Arrays (n_samples, n_features) and (n_samples, n_classes) for a training batch's inputs
        and targets, kept with the other buffers of that batch size: a trainer that gathers into
        them allocates nothing per step, nor per call (fresh buffers of a few MB each call
        cost page faults)."""
        buffers = self.buffers(n_samples)
        return buffers.inputs, buffers.targets

    def _affine(self, a: np.ndarray, weights: np.ndarray, bias: np.ndarray, out: np.ndarray) -> np.ndarray:
        """out <- a @ weights + bias: the bias copied into ``out`` and the GEMM accumulating onto
        it (one pass fewer over ``out`` than a product then an add), or exactly that product and
        add for small outputs and where raw BLAS cannot take the arrays."""
        gemm_nn = self._gemm_nn
        prefill = gemm_nn is not None and out.size >= PREFILL_MIN_SIZE
        if prefill and _product_ready(out, a, weights, self.dtype):
            np.copyto(out, bias)
            gemm_nn(1.0, a, weights, 1.0, out)
            return out
        np.matmul(a, weights, out=out)
        out += bias
        return out

    def _forward_fresh(self, x: np.ndarray) -> np.ndarray:
        a = x
        for layer in range(1, self.n_layers + 1):
            z = a @ self.params[f"W{layer}"]
            z += self.params[f"b{layer}"]
            if layer == self.n_layers:
                return z
            a = self.activation.forward(z)
        raise AssertionError("unreachable: a network has at least one layer")

    def backward(self, d_logits: np.ndarray, fused: Optional[FusedTargets] = None) -> Arrays:
        """Gradients of the loss for every parameter, given dL/dlogits (n_samples, n_classes).

        Uses what the last ``forward(keep=True)`` stored; returns ``self.grads``, whose arrays
        are overwritten by the next call.

        ``fused`` maps parameter keys to ``(target, alpha, beta)``: the BLAS call that computes
        that gradient ``g`` (the GEMM of a weight matrix, the GEMV of a bias's column sums)
        writes ``target <- alpha * g + beta * target`` instead (the first pass of an optimizer
        step, see ``Optimizer.fused_targets``), and ``grads[key]`` is not written. Each layer's
        input gradient is taken before its weight update, so a target may be the parameters
        themselves. ``self.fused_keys`` names the keys fused.
        """
        self.fused_keys = []
        backward, backward_out = self.activation.backward, self._backward_out
        delta = d_logits  # dL/dz of the current layer
        for index in range(self.n_layers - 1, -1, -1):  # layer index + 1
            a_prev = self._a[index - 1] if index else self._x
            grad_a = None
            if index:  # before the weight update below may change the weights
                grad_a = np.matmul(delta, self.params[self.weight_keys[index]].T, out=self._grad_a[index - 1])
            self._weight_gradient(self.weight_keys[index], a_prev, delta, fused)
            self._bias_gradient(self._bias_keys[index], delta, fused)
            if grad_a is None:
                break
            z = self._z[index - 1]
            delta = backward(z, a_prev, grad_a, out=grad_a) if backward_out else backward(z, a_prev, grad_a)
        return self.grads

    def _weight_gradient(
        self, key: str, a_prev: np.ndarray, delta: np.ndarray, fused: Optional[FusedTargets]
    ) -> None:
        """grads[key] = a_prev.T @ delta, or its fused update into a target (see ``backward``).

        Falls back to the plain gradient (the optimizer then steps this key as usual) when
        NumPy's BLAS is out of reach, an array is not C-contiguous in the model's dtype, or the
        target is not a writeable array of the weights' shape.
        """
        target = fused.get(key) if fused else None
        gemm_tn = self._gemm_tn
        if target is not None and gemm_tn is not None and _blas_ready(target[0], a_prev, delta, self.dtype):
            buffer, alpha, beta = target
            gemm_tn(alpha, a_prev, delta, beta, buffer)
            self.fused_keys.append(key)
        else:
            np.matmul(a_prev.T, delta, out=self.grads[key])

    def _bias_gradient(self, key: str, delta: np.ndarray, fused: Optional[FusedTargets]) -> None:
        """grads[key] = delta's column sums, or their fused update into a target (as weights)."""
        target = fused.get(key) if fused else None
        column_sums = self._column_sums
        if target is not None and column_sums is not None and _bias_blas_ready(target[0], delta, self.dtype):
            buffer, alpha, beta = target
            column_sums(alpha, delta, beta, buffer)
            self.fused_keys.append(key)
        else:
            np.add.reduce(delta, axis=0, out=self.grads[key])

    def forward_hidden(self, x: np.ndarray, batch_size: int = 5000) -> Tuple[np.ndarray, List[np.ndarray]]:
        """Logits (n_samples, n_classes) and every hidden layer's output (n_samples, units)."""
        logits, hidden = [], [[] for _ in range(self.n_layers - 1)]
        for start in range(0, len(x), batch_size):
            a = x[start : start + batch_size]
            for layer in range(1, self.n_layers):
                z = a @ self.params[f"W{layer}"]
                z += self.params[f"b{layer}"]
                a = self.activation.forward(z)
                hidden[layer - 1].append(a)
            logits.append(a @ self.params[f"W{self.n_layers}"] + self.params[f"b{self.n_layers}"])
        return np.concatenate(logits), [np.concatenate(parts) for parts in hidden]

    def logits(self, x: np.ndarray, batch_size: int = 5000) -> np.ndarray:
        """Logits for a whole dataset ``x`` (n_samples, n_features), in chunks to bound memory."""
        parts = [self._forward_fresh(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        return np.concatenate(parts) if parts else np.empty((0, self.sizes[-1]), self.dtype)

    def weights(self) -> Arrays:
        """A copy of every parameter, for saving or restoring."""
        return {key: p.copy() for key, p in self.params.items()}
