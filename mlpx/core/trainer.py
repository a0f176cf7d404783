"""The training loop: shuffled minibatches, a learning-rate schedule, per-epoch validation.

Pure computation: it returns metrics and calls ``on_epoch_end``; printing and logging belong to
the observers the runner attaches.
"""

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import numpy as np

from mlpx.core.blas import numpy_blas_controller
from mlpx.core.calibration import calibration_metrics
from mlpx.core.compiled import compiled_steps_for
from mlpx.core.health import can_die, dead_unit_shares, norms, update_ratios
from mlpx.core.model import MLP
from mlpx.core.numerics import cross_entropy, one_hot
from mlpx.core.threads import Setting, ThreadPolicy, policy_for
from mlpx.datasets import Dataset
from mlpx.errors import DivergenceError

Metrics = Dict[str, float]


def evaluate(model: MLP, loss: Any, x: np.ndarray, labels: np.ndarray, n_classes: int) -> Metrics:
    """The training loss, cross-entropy and accuracy of ``model`` on ``x`` (n_samples, n_features).

    ``ce`` is always cross-entropy of the softmax of the logits, whatever ``loss`` is: the
    honest measure of how much probability the model puts on the right class.
    """
    return evaluate_logits(loss, model.logits(x), labels, n_classes)


def evaluate_logits(loss: Any, logits: np.ndarray, labels: np.ndarray, n_classes: int) -> Metrics:
    """``evaluate`` on logits (n_samples, n_classes) already computed."""
    y_onehot = one_hot(labels, n_classes, logits.dtype)
    return {
        "loss": float(loss.value(logits, y_onehot)),
        "ce": cross_entropy(logits, labels),
        "acc": float(np.mean(logits.argmax(axis=1) == labels)),
    }


class _BatchGather:
    """Copies a minibatch's rows into buffers reused across steps (no allocation per step): the
    model's own batch buffers (``MLP.batch_buffers``), kept across ``fit`` calls, when they fit."""

    def __init__(
        self,
        x: np.ndarray,
        y_onehot: np.ndarray,
        buffers_for: Optional[Callable[[int], Tuple[np.ndarray, np.ndarray]]] = None,
    ) -> None:
        self.x, self.y, self._buffers_for = x, y_onehot, buffers_for
        self._buffers: Dict[int, Tuple[np.ndarray, np.ndarray]] = {}

    def _fitting(self, n_rows: int) -> Tuple[np.ndarray, np.ndarray]:
        shapes = ((n_rows, self.x.shape[1]), (n_rows, self.y.shape[1]))
        offered = self._buffers_for(n_rows) if self._buffers_for is not None else None
        if offered is not None and all(
            buffer.shape == shape and buffer.dtype == source.dtype
            for buffer, shape, source in zip(offered, shapes, (self.x, self.y))
        ):
            return offered
        return np.empty(shapes[0], self.x.dtype), np.empty(shapes[1], self.y.dtype)

    def rows(self, index: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """(x rows, one-hot rows) of ``index``, valid until the next call with as many rows."""
        buffers = self._buffers.get(len(index))
        if buffers is None:
            buffers = self._buffers[len(index)] = self._fitting(len(index))
        # mode="wrap": with out= the default "raise" writes through a temporary copy (2x slower)
        self.x.take(index, axis=0, out=buffers[0], mode="wrap")
        self.y.take(index, axis=0, out=buffers[1], mode="wrap")
        return buffers


class _EpochSteps:
    """One epoch's training steps, in order: the thread measurement trains the first full
    batches (its probe is real work, not thrown away), the loop trains the rest."""

    def __init__(self, train_step: Callable[[int], Tuple[float, Metrics]], n_full: int, idle_probe) -> None:
        self._train_step, self._n_full, self._idle_probe = train_step, n_full, idle_probe
        self.loss_sum, self.ratios, self.done = 0.0, {}, 0

    def run(self, step: int) -> None:
        step_loss, step_ratios = self._train_step(step)
        self.loss_sum += step_loss
        if step_ratios:
            self.ratios = step_ratios

    def probe(self) -> None:
        """The next full-batch step, or the idle probe (no update) once none is left."""
        if self.done >= self._n_full:
            self._idle_probe()
            return
        self.run(self.done)
        self.done += 1


def _value_and_grad(loss: Any) -> Callable[[np.ndarray, np.ndarray], Tuple[float, np.ndarray]]:
    """The loss's optional fused ``value_and_grad`` (one softmax per step), else value then grad."""
    fused = getattr(loss, "value_and_grad", None)
    if callable(fused):
        return fused
    return lambda logits, y_onehot: (loss.value(logits, y_onehot), loss.grad(logits, y_onehot))


def _defining_class(optimizer: Any, name: str) -> Optional[type]:
    """The first class in the optimizer's MRO whose own namespace defines ``name``, if any."""
    return next((cls for cls in type(optimizer).__mro__ if name in vars(cls)), None)


def fused_targets_of(optimizer: Any) -> Optional[Callable[[Dict[str, np.ndarray]], Dict[str, Any]]]:
    """The optimizer's ``fused_targets``, if the trainer may use it: it must be defined by the
    class that defines ``step``, so a subclass that rewrites ``step`` (and knows nothing of
    fusion) is stepped the plain way instead of half-fused."""
    offer = getattr(optimizer, "fused_targets", None)
    if not callable(offer):
        return None
    same_class = _defining_class(optimizer, "step") is _defining_class(optimizer, "fused_targets")
    return offer if same_class else None


def fused_params(
    optimizer: Any, params: Dict[str, np.ndarray], weight_keys: List[str]
) -> Dict[str, np.ndarray]:
    """The parameters offered to the optimizer's ``fused_targets``: every one when the class that
    defines ``fused_targets`` also sets ``fused_biases = True`` (mlpx's SGD and Momentum), else
    the weight matrices only, the contract a plugin's ``fused_targets`` may have been written for
    (a weight decay of weights only, or a target that assumes 2-D arrays)."""
    owner = _defining_class(optimizer, "fused_targets")
    if owner is not None and vars(owner).get("fused_biases") is True:
        return dict(params)
    return {key: params[key] for key in weight_keys}


def lr_factor(schedule: str, step: int, total_steps: int) -> float:
    """Multiplier of the base learning rate at ``step`` (0-based) of ``total_steps``."""
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * step / total_steps))
    return 1.0


@dataclass
class FitResult:
    history: List[Metrics]  # one dict per epoch, as passed to on_epoch_end
    stop_reason: Optional[str] = None  # why training stopped before the last epoch, if it did
    compiled_epochs: int = 0  # epochs whose steps ran in mlpx.core.compiled's C step


def fit(
    model: MLP,
    loss: Any,
    optimizer: Any,
    data: Dataset,
    *,
    epochs: int,
    batch_size: int,
    rng: np.random.Generator,
    lr_schedule: str = "constant",
    health: bool = False,
    divergence_factor: float = 1e3,
    fused_updates: bool = True,
    compiled: bool = True,
    blas_threads: Union[Setting, ThreadPolicy, None] = None,
    on_epoch_end: Optional[Callable[[int, Metrics], Optional[str]]] = None,
) -> FitResult:
    """Train ``model`` in place for up to ``epochs``; return the metrics of every epoch.

    Each epoch visits the training set in an order drawn from ``rng``. Metrics: ``train_loss``
    (mean over the epoch's batches, as trained), ``train_acc`` (on those batches),
    ``val_loss``, ``val_ce``, ``val_acc``, ``lr`` (at the epoch's end), ``epoch_seconds``, and
    with ``health`` the metrics of ``mlpx.diagnostics`` (norms, update ratios, dead units,
    calibration), ``blas_threads`` (the epoch's BLAS thread count). ``on_epoch_end`` may return
    a reason to stop early.

    ``blas_threads`` is ``"auto"``, a count, or a ``mlpx.core.threads.ThreadPolicy`` (to keep one
    across calls); None leaves NumPy's BLAS as it is. The BLAS gets its count back on return.

    With ``fused_updates``, an optimizer that offers ``fused_targets`` has its first pass over
    each weight matrix done by the GEMM that computes the gradient (``MLP.backward``): the same
    arithmetic, in one pass over the weights instead of three or four; one that also declares
    ``fused_biases`` (see ``fused_params``) has each bias's done by the GEMV that sums its
    gradient, one call instead of three.

    With ``compiled`` (and ``fused_updates``), the built-in ReLU, cross-entropy and SGD or
    momentum train through ``mlpx.core.compiled``'s step: their arithmetic in one C call per
    minibatch instead of ~35 NumPy calls (see that package); other plugins, and steps that
    measure health, take the NumPy path.

    Raises DivergenceError at the first non-finite training loss, or one above
    ``divergence_factor`` times the first step's loss.
    """
    x, labels = data.x_train, data.y_train
    if x.dtype != model.dtype:
        x = x.astype(model.dtype)
    y_onehot = one_hot(labels, data.n_classes, model.dtype)
    x_val = data.x_val.astype(model.dtype, copy=False)
    n_samples = len(x)
    steps_per_epoch = math.ceil(n_samples / batch_size)
    n_full_steps = n_samples // batch_size
    measured_step = max(0, n_full_steps - 1)  # the epoch's last full batch
    base_lr = optimizer.lr
    gather = _BatchGather(x, y_onehot, getattr(model, "batch_buffers", None))
    value_and_grad = _value_and_grad(loss)
    guard = _DivergenceGuard(divergence_factor)
    offer_fused = fused_targets_of(optimizer) if fused_updates else None
    policy = policy_for(blas_threads)
    probe_rows = np.arange(min(batch_size, n_samples))  # the idle probe: a batch's worth of rows

    def probe() -> None:  # one forward and backward pass: weights and optimizer state untouched
        x_probe, targets_probe = gather.rows(probe_rows)
        model.backward(value_and_grad(model.forward(x_probe), targets_probe)[1])

    untouched_threads = _blas_threads_now() if policy is None else None
    predicted = np.empty(n_samples, np.intp)  # each training row's predicted class, in epoch order
    kernel = None  # the compiled step, where it stands for the plugins
    if compiled and fused_updates:
        kernel = compiled_steps_for(model, loss, optimizer, x, labels, predicted)
    total_steps = epochs * steps_per_epoch
    history: List[Metrics] = []
    compiled_epochs = 0

    def train_step(epoch: int, order: np.ndarray, step: int, in_c: bool) -> Tuple[float, Metrics]:
        """One minibatch step; its loss summed over the batch, and update ratios if measured.
        ``in_c``: the compiled step serves this epoch."""
        start = step * batch_size
        batch = order[start : start + batch_size]
        optimizer.lr = base_lr * lr_factor(lr_schedule, (epoch - 1) * steps_per_epoch + step, total_steps)
        measured = health and step == measured_step
        if in_c and not measured:
            value = kernel.run(start, len(batch), optimizer.lr, guard.limit)
            guard.check(value, epoch, step + 1, optimizer.lr)
            return value * len(batch), {}
        x_batch, targets = gather.rows(batch)
        logits = model.forward(x_batch)
        value, d_logits = value_and_grad(logits, targets)
        guard.check(value, epoch, step + 1, optimizer.lr)
        logits.argmax(axis=1, out=predicted[start : start + len(batch)])  # scored per epoch
        if measured:  # before backward: a fused update changes the weights there
            before = {key: model.params[key].copy() for key in model.weight_keys}
        if offer_fused is not None:
            fused = offer_fused(params)
            optimizer.step(model.params, model.backward(d_logits, fused), fused=model.fused_keys)
        else:
            optimizer.step(model.params, model.backward(d_logits))
        return value * len(batch), (update_ratios(before, model.params) if measured else {})

    try:
        for epoch in range(1, epochs + 1):
            started = time.perf_counter()
            order = rng.permutation(n_samples)
            params = fused_params(optimizer, model.params, model.weight_keys)  # offered to fused_targets
            in_c = kernel is not None and kernel.begin_epoch(order)
            compiled_epochs += in_c
            steps = _EpochSteps(
                lambda step, order=order, epoch=epoch, in_c=in_c: train_step(epoch, order, step, in_c),
                n_full_steps,
                probe,
            )
            threads = policy.before_epoch(steps.probe) if policy is not None else untouched_threads
            first, steps_started = steps.done, time.perf_counter()
            for step in range(first, steps_per_epoch):
                steps.run(step)
            if policy is not None and first < steps_per_epoch:  # steps left after the measurement
                rows_left = n_samples - first * batch_size
                policy.after_epoch(rows_left / len(probe_rows), time.perf_counter() - steps_started)
            loss_sum, ratios = steps.loss_sum, steps.ratios
            correct = int(np.count_nonzero(predicted == labels[order]))
            metrics = {"train_loss": loss_sum / n_samples, "train_acc": correct / n_samples}
            metrics.update(_validation_metrics(model, loss, x_val, data, health))
            if health:
                metrics.update(ratios)
                metrics.update(_probe_metrics(model, loss, x, y_onehot))
            metrics["lr"] = float(optimizer.lr)
            metrics["blas_threads"] = float(threads)
            metrics["epoch_seconds"] = time.perf_counter() - started
            history.append(metrics)
            reason = on_epoch_end(epoch, metrics) if on_epoch_end is not None else None
            if reason:
                return FitResult(history, stop_reason=reason, compiled_epochs=compiled_epochs)
        return FitResult(history, compiled_epochs=compiled_epochs)
    finally:
        optimizer.lr = base_lr
        if policy is not None:
            policy.release()


def _blas_threads_now() -> int:
    """NumPy's BLAS threads as they are, when no policy sets them."""
    controller = numpy_blas_controller()
    return int(controller.num_threads) if controller is not None else 1


class _DivergenceGuard:
    """Stops training on a non-finite loss or one that explodes past a factor of the first."""

    def __init__(self, factor: float) -> None:
        self.factor = factor
        self.first: Optional[float] = None

    @property
    def limit(self) -> float:
        """The largest loss ``check`` lets pass (infinite before the first finite loss)."""
        return math.inf if self.first is None else self.factor * self.first

    def check(self, value: float, epoch: int, step: int, lr: float) -> None:
        if self.first is None and math.isfinite(value):
            self.first = max(value, 1e-12)
        exploded = self.first is not None and value > self.factor * self.first
        if math.isfinite(value) and not exploded:
            return
        what = (
            f"became {value}"
            if not math.isfinite(value)
            else (f"exploded to {value:.4g}, over {self.factor:g} x its first value {self.first:.4g}")
        )
        raise DivergenceError(
            f"the training loss {what} at epoch {epoch}, step {step} (lr {lr:.3g}): "
            "lower optimizer.lr, or check the loss and its gradient with `mlpx check`",
            epoch=epoch,
            step=step,
        )


def _validation_metrics(model: MLP, loss: Any, x_val: np.ndarray, data: Dataset, health: bool) -> Metrics:
    if not health:
        val = evaluate(model, loss, x_val, data.y_val, data.n_classes)
        return {"val_loss": val["loss"], "val_ce": val["ce"], "val_acc": val["acc"]}
    logits, hidden = model.forward_hidden(x_val)
    val = evaluate_logits(loss, logits, data.y_val, data.n_classes)
    metrics = {"val_loss": val["loss"], "val_ce": val["ce"], "val_acc": val["acc"]}
    calibration = calibration_metrics(logits, data.y_val)
    metrics["val_confidence"] = calibration["confidence"]
    metrics["val_ece"] = calibration["ece"]
    metrics["val_ce_top1pct_share"] = calibration["top1pct_share"]
    if can_die(model.activation):
        metrics.update(dead_unit_shares(hidden))
    return metrics


def _probe_metrics(model: MLP, loss: Any, x: np.ndarray, y_onehot: np.ndarray, n_probe: int = 512) -> Metrics:
    """Weight norms, and gradient norms on a fixed probe batch (the first training rows)."""
    metrics = norms(model.params, "weight_norm")
    probe_x = np.ascontiguousarray(x[:n_probe])
    logits = model.forward(probe_x)
    metrics.update(norms(model.backward(loss.grad(logits, y_onehot[:n_probe])), "grad_norm"))
    return metrics
