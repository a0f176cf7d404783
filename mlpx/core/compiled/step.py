"""Which runs the compiled step serves, and the plans it trains with (one per batch size).

Per step, the Python side is one call: the plan (a capsule of array addresses, built once per
batch size) and the epoch's order are fixed, so only the batch's start, the learning rate and
the divergence limit cross into C. What the step needs from the plugins it reads through their
public parts: the parameters, the optimizer's ``lr``, ``momentum`` and ``fused_targets`` (the
velocities), and the model's training buffers.
"""

import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from mlpx.core.blas import AXPY_MIN_SIZE, blas_takes, cblas_addresses
from mlpx.core.model import MLP

try:
    from mlpx.core.compiled import _step
except ImportError:  # installed without a C compiler: the NumPy path trains
    _step = None

KINDS = {"sgd": 0, "momentum": 1}  # the C step's optimizer kinds
_FLOAT32 = np.dtype(np.float32)  # the only dtype the C step takes
MAX_LAYERS = _step.MAX_LAYERS if _step is not None else 0
_INT32_MAX = 2**31 - 1  # an LP64 BLAS takes its sizes as C ints
#: the model's methods the step stands for, as mlpx defines them
_MLP_METHODS = {
    name: vars(MLP)[name] for name in ("forward", "backward", "_affine", "_weight_gradient", "_bias_gradient")
}


@dataclass(frozen=True)
class Kernel:
    """What a built-in plugin's class declares as ``compiled_kernel``: the C step's name for its
    arithmetic and the very functions whose arithmetic that is, so that a class whose method was
    replaced afterwards (patched, or overridden on an instance) is no longer taken for it."""

    name: str
    methods: Tuple[Callable[..., Any], ...]


def kernel(name: str, *methods: Callable[..., Any]) -> Kernel:
    """``compiled_kernel = kernel("relu", forward, backward)`` in a class body."""
    return Kernel(name, methods)


def available() -> bool:
    """Whether the C step was built and NumPy's float32 BLAS routines are within its reach."""
    return _step is not None and cblas_addresses(np.float32) is not None


def _unchanged(obj: Any, methods: Dict[str, Callable[..., Any]]) -> bool:
    """Whether ``obj``'s class still has these functions and the instance overrides none."""
    own = getattr(obj, "__dict__", {})
    return all(
        vars(type(obj)).get(name) is function and name not in own for name, function in methods.items()
    )


def declared_kernel(plugin: Any) -> Optional[str]:
    """The kernel ``plugin``'s own class declares (``compiled_kernel``), if its methods are still
    the ones declared; None for a subclass that does not declare it again, or a replaced method."""
    declared = vars(type(plugin)).get("compiled_kernel")
    if not isinstance(declared, Kernel):
        return None
    return declared.name if _unchanged(plugin, {f.__name__: f for f in declared.methods}) else None


class CompiledSteps:
    """The compiled steps of one ``fit``: ``begin_epoch(order)`` before each epoch, then
    ``run(start, rows, lr, limit)`` per minibatch. The trainer's ``predicted`` (n_samples,)
    receives each trained row's arg max, in epoch order, as on the Python path."""

    def __init__(self, model: MLP, loss: Any, optimizer: Any, kind: str, x: np.ndarray, labels: np.ndarray,
                 predicted: np.ndarray) -> None:  # fmt: skip
        self.model, self.loss, self.optimizer, self.kind = model, loss, optimizer, kind
        self._x, self._labels, self._predicted = x, labels, predicted
        self._predicted_address = predicted.ctypes.data
        self._blas = cblas_addresses(np.float32)
        self._plans: Dict[int, Any] = {}
        self._arrays: List[np.ndarray] = []  # every array the plans point into, kept alive here
        self._order: Optional[np.ndarray] = None
        self._order_address = 0

    def _parameters(
        self,
    ) -> Optional[Tuple[List[np.ndarray], List[np.ndarray], List[np.ndarray], List[np.ndarray]]]:
        """Weights, biases and (momentum) their velocities, if every one can be handed to C."""
        model = self.model
        layers = range(1, model.n_layers + 1)
        weights = [model.params.get(f"W{layer}") for layer in layers]
        biases = [model.params.get(f"b{layer}") for layer in layers]
        w_velocities: List[np.ndarray] = []
        b_velocities: List[np.ndarray] = []
        if self.kind == "momentum":
            targets = self.optimizer.fused_targets(model.params)
            for layer in layers:
                for key, into in ((f"W{layer}", w_velocities), (f"b{layer}", b_velocities)):
                    target, alpha, beta = targets[key]
                    if alpha != 1.0 or beta != self.optimizer.momentum:  # not the velocity rule
                        return None
                    into.append(target)
        shapes = [(fan_in, fan_out) for fan_in, fan_out in zip(model.sizes[:-1], model.sizes[1:])]
        for array, shape in zip(
            weights + biases + w_velocities + b_velocities, (shapes + [s[1:] for s in shapes]) * 2
        ):
            if not blas_takes(_FLOAT32, array) or array.shape != shape:
                return None
        return weights, biases, w_velocities, b_velocities

    def begin_epoch(self, order: np.ndarray) -> bool:
        """Take the epoch's row order (int64, each row once); False when the step cannot serve
        this epoch (a method patched or a parameter replaced by a hook since), which then trains
        in Python."""
        if not (isinstance(order, np.ndarray) and order.ndim == 1 and len(order) == len(self._predicted)):
            raise ValueError(f"begin_epoch: an order of every one of the {len(self._predicted)} rows")
        if _kind_served(self.model, self.loss, self.optimizer) != self.kind:
            return False
        parameters = self._parameters()
        if parameters is None:
            return False
        if any(a is not b for a, b in zip(sum(parameters, []), self._arrays)) or not self._arrays:
            self._plans.clear()  # parameters replaced (a restore, a user's hook): plan again
            self._arrays = sum(parameters, [])
        self._order = np.ascontiguousarray(order, dtype=np.int64)
        self._order_address = self._order.ctypes.data
        return True

    def _plan(self, rows: int) -> Any:
        model, blas = self.model, self._blas
        weights, biases, w_velocities, b_velocities = self._parameters()
        buffers = model.buffers(rows)
        hidden = model.n_layers - 1
        arrays = [
            buffers.inputs,
            buffers.logits,
            *buffers.z[:hidden],
            *buffers.a[:hidden],
            *buffers.grad_a[:hidden],
        ]
        if not all(blas_takes(_FLOAT32, array) for array in arrays):
            raise ValueError("mlpx.core.compiled: the model's training buffers are not float32 C-contiguous")

        def addresses(group: List[np.ndarray]) -> Tuple[int, ...]:
            return tuple(array.ctypes.data for array in group)

        plan = _step.plan(
            blas.gemm, blas.axpy, blas.ilp64, AXPY_MIN_SIZE, KINDS[self.kind], rows, tuple(model.sizes),
            addresses(weights), addresses(biases), addresses(w_velocities), addresses(b_velocities),
            addresses(buffers.z), addresses(buffers.a), addresses(buffers.grad_a),
            buffers.logits.ctypes.data, buffers.inputs.ctypes.data,
            self._x.ctypes.data, len(self._x), self._labels.ctypes.data,
        )  # fmt: skip
        self._arrays.extend(arrays)
        self._plans[rows] = plan
        return plan

    def run(self, start: int, rows: int, lr: float, limit: float) -> float:
        """Train rows ``start:start + rows`` of the epoch's order; their mean loss. A loss that is
        not finite or above ``limit`` comes back before any update (the trainer then raises)."""
        plan = self._plans.get(rows)
        if plan is None:
            plan = self._plan(rows)
        momentum = self.optimizer.momentum if self.kind == "momentum" else 0.0
        value = _step.step(
            plan, self._order_address, len(self._order), start, lr, momentum, limit,
            self._predicted_address + start * self._predicted.itemsize,
        )  # fmt: skip
        if self.kind == "momentum" and math.isfinite(value) and value <= limit:  # the step was taken
            self.optimizer.flush_subnormals()
        return value


def compiled_steps_for(model: Any, loss: Any, optimizer: Any, x: np.ndarray, labels: np.ndarray,
                       predicted: np.ndarray) -> Optional[CompiledSteps]:  # fmt: skip
    """The compiled steps for this training, or None when they cannot stand for its plugins:
    mlpx's MLP in float32 with a ReLU activation, a cross-entropy loss and an SGD or momentum
    optimizer that declare those kernels, float32 inputs ``x`` (n_samples, n_features) in C
    order, integer ``labels`` (n_samples,) and int64 ``predicted`` (n_samples,)."""
    kind = _kind_served(model, loss, optimizer)
    if kind is None:
        return None
    if not (isinstance(x, np.ndarray) and x.dtype == np.float32 and x.flags.c_contiguous and x.ndim == 2):
        return None
    if x.shape[1] != model.sizes[0] or len(labels) != len(x) or predicted.dtype != np.int64:
        return None
    if not predicted.flags.c_contiguous or len(predicted) != len(x) or labels.dtype.kind not in "iu":
        return None
    labels = np.array(labels, dtype=np.int64)  # a copy: fit's one-hot targets are one too
    steps = CompiledSteps(model, loss, optimizer, kind, x, labels, predicted)
    return steps if steps._parameters() is not None else None


def _kind_served(model: Any, loss: Any, optimizer: Any) -> Optional[str]:
    """The optimizer kind the C step would run for these three, None if it cannot stand for
    them: checked before training and again before every epoch (a hook may patch a method)."""
    if not available() or type(model) is not MLP or not _unchanged(model, _MLP_METHODS):
        return None
    if model.dtype != np.float32 or model.n_layers > MAX_LAYERS:
        return None
    if (
        not cblas_addresses(np.float32).ilp64
        and max(a * b for a, b in zip(model.sizes, model.sizes[1:])) > _INT32_MAX
    ):
        return None
    kind = declared_kernel(optimizer)
    if declared_kernel(model.activation) != "relu" or declared_kernel(loss) != "cross_entropy":
        return None
    return kind if kind in KINDS else None
