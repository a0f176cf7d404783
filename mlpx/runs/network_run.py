"""One run of a user network (``network=NAME``, a ``register_networks`` plugin) on MNIST.

``user_network`` resolves the plugin's ``mlpx.doctor.Network`` and how it trains; ``prepare_network``
turns a config into the ``RunContext`` of an MLP run (data loaded and passed through the
network's own ``prepare_inputs`` / ``encode_labels``, the net built); ``execute_network`` trains
it with ``fit_network`` and tests it, calling the same lifecycle hooks as ``mlpx.runs.runner.execute``.
Metrics are mlpx's own, from the network's ``forward`` probabilities (``val_ce`` is honest
whatever the code trains); the diagnosis is ``mlpx.diagnostics``'. Nothing here prints or
touches MLflow: the observers do.
"""

import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

import numpy as np
from omegaconf import DictConfig

from mlpx.core.calibration import calibration_metrics
from mlpx.core.numerics import cross_entropy, one_hot
from mlpx.core.trainer import FitResult, Metrics, _DivergenceGuard, lr_factor
from mlpx.datasets import Dataset
from mlpx.doctor.objective import ObjectiveMath
from mlpx.errors import DivergenceError, PluginError
from mlpx.plugins.config import hyperparameters
from mlpx.plugins.manager import PluginHost
from mlpx.plugins.registry import KIND_GROUPS, Component
from mlpx.runs.runner import (
    RunContext,
    RunResult,
    chosen_components,
    run_result,
    trainer_arguments,
    validate,
    with_run_hooks,
)

#: how a network trains, in the order they are preferred when it offers several
STYLES = ("update", "optimizer", "gradients", "train_epoch")
#: groups a user network never uses; the optimizer (and trainer.lr_schedule) only steps ``gradients``
ALWAYS_UNUSED = ("activation", "initializer", "loss", "model")
#: rows per call of ``forward`` / ``loss`` when mlpx evaluates a whole split
EVAL_CHUNK = 5000
#: training rows on which the gradient norms are measured each epoch (``trainer.health_metrics``)
PROBE_ROWS = 256
#: probabilities are clipped here before the log: an exact 0 on the true class costs ~708, not inf
TINY = np.finfo(np.float64).tiny
#: the objective's loss -> the loss name the diagnosis rules know (mse on probabilities is mse_softmax)
DIAGNOSIS_LOSS = {"cross_entropy": "cross_entropy", "mse": "mse_softmax", "bce": "bce"}


@dataclass
class UserNetwork:
    """A network plugin chosen by ``network=NAME`` and how mlpx trains it (``style``)."""

    component: Component
    network: Any  # mlpx.doctor.Network
    objective: Any  # mlpx.doctor.Objective, parsed
    style: str  # one of STYLES

    @property
    def name(self) -> str:
        return self.component.name

    @property
    def unused_groups(self) -> List[str]:
        """Config groups this run reads nothing from."""
        return sorted((*ALWAYS_UNUSED, *(() if self.style == "gradients" else ("optimizer",))))

    def describe(self) -> str:
        how = {
            "update": "its own update",
            "optimizer": "its own optimizer",
            "gradients": "its gradients stepped by the optimizer group",
            "train_epoch": "its own train_epoch",
        }[self.style]
        return f"network '{self.name}' ({self.component.source}) with {how}"

    def tags(self) -> Dict[str, str]:
        return {
            "mlpx.network": self.name,
            "mlpx.network.training": self.style,
            "mlpx.network.objective": self.objective.describe(),
            "mlpx.unused_groups": ", ".join(self.unused_groups),
        }


def user_network(component: Component) -> Optional[UserNetwork]:
    """The user network ``component`` registers, or None for the built-in ``mlp`` (mlpx's own path)."""
    from mlpx.doctor import Objective

    if component.name == "mlp" and component.source == "built-in":
        return None
    network = component.network()
    style = next((s for s in STYLES if getattr(network, s) is not None), None)
    if style is None:
        raise PluginError(
            f"{component.describe()} cannot be trained: its Network has none of update, optimizer, "
            "gradients or train_epoch. Give one (mlpx doctor examines the rest as it is)."
        )
    if style == "optimizer" and not all(callable(network.optimizer.get(k)) for k in ("gradients", "step")):
        raise PluginError(
            f"{component.describe()}: Network(optimizer=...) needs callables 'gradients' (net, X, Y) and "
            "'step' (net) to be trained"
        )
    return UserNetwork(component, network, Objective.parse(network.objective), style)


class NetworkModel:
    """The user's net as the run sees it (``run.model``): its live parameters, their copies and
    its probabilities, whatever the net is (an object, a dict of arrays, a list...).

    ``net`` is replaced when a call of the user's code returns a new one.
    """

    def __init__(self, user: UserNetwork, net: Any) -> None:
        self.user, self.network, self.net = user, user.network, net
        self.sizes: List[int] = []  # unknown for user code; the progress line uses describe()

    def describe(self) -> str:
        return self.user.describe()

    @property
    def params(self) -> Dict[str, np.ndarray]:
        """The live trainable arrays: ``Network.params(net)``, else the arrays found on the net."""
        if self.network.params is not None:
            return dict(self.network.params(self.net))
        return _discover(self.net)

    def weights(self) -> Dict[str, np.ndarray]:
        """A copy of every parameter array, for saving or restoring."""
        return {key: np.array(value, copy=True) for key, value in self.params.items()}

    def weight_keys(self) -> List[str]:
        """The weight matrices, in the order of ``params``: layer 1, 2, ... for the health metrics."""
        return [k for k, v in self.params.items() if np.ndim(v) == 2 and min(np.shape(v)) > 1]

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """``forward`` on ``x`` (n_samples, n_features) in chunks: probabilities (n_samples, n_classes)."""
        parts = [
            np.asarray(self.network.forward(self.net, x[i : i + EVAL_CHUNK]))
            for i in range(0, len(x), EVAL_CHUNK)
        ]
        return np.concatenate(parts).astype(np.float64, copy=False)

    def loss_value(self, x: np.ndarray, y: np.ndarray, probs: Optional[np.ndarray] = None) -> float:
        """The loss per record the code trains: its own ``loss`` when given, else the objective
        on ``probs`` (the forward of ``x``); a ``sum`` reduction is divided by the rows."""
        if self.network.loss is not None:
            value = float(self.network.loss(self.net, x, y))
        else:
            value = objective_value(self.user.objective, probs, y, self.net, self.params)
        return value / len(x) if self.user.objective.reduction == "sum" else value

    def adopt(self, returned: Any) -> None:
        """A call of the user's code returned ``returned``: a new net, or None (changed in place)."""
        if returned is not None:
            self.net = returned


def objective_value(
    objective: Any, probs: np.ndarray, y: np.ndarray, net: Any, params: Dict[str, Any]
) -> float:
    """The objective of probabilities ``probs`` and targets ``y`` (n_samples, n_classes), with its
    reduction and L2 penalty: the same numbers the doctor checks the code against."""
    return ObjectiveMath(objective).value(net, probs, y, params)


@dataclass
class NetworkData:
    """The dataset as the network's code sees it: inputs through ``prepare_inputs`` (default: the
    dataset's pixels / 255) and targets through ``encode_labels`` (default: one-hot float64)."""

    dataset: Dataset
    x: Dict[str, np.ndarray]  # split -> (n_samples, n_features) as the code wants them
    y: Dict[str, np.ndarray]  # split -> (n_samples, n_classes) targets as the code encodes them
    labels: Dict[str, np.ndarray] = field(default_factory=dict)  # split -> (n_samples,) class indices


def network_data(network: Any, dataset: Dataset) -> NetworkData:
    """Pass every split of ``dataset`` through the network's own preprocessing."""
    splits = {
        "train": (dataset.x_train, dataset.y_train),
        "val": (dataset.x_val, dataset.y_val),
        "test": (dataset.x_test, dataset.y_test),
    }
    data = NetworkData(dataset, {}, {}, {s: labels for s, (_, labels) in splits.items()})
    for split, (features, labels) in splits.items():
        if network.prepare_inputs is not None:
            pixels = np.rint(features * 255).astype(np.uint8)  # the 0..255 values of the files
            data.x[split] = np.asarray(network.prepare_inputs(pixels))
        else:
            data.x[split] = features
        if network.encode_labels is not None:
            data.y[split] = np.asarray(network.encode_labels(labels, dataset.n_classes))
        else:
            data.y[split] = one_hot(labels, dataset.n_classes, np.float64)
        for what, array in (("prepare_inputs", data.x[split]), ("encode_labels", data.y[split])):
            if array.ndim != 2 or len(array) != len(labels):
                raise PluginError(
                    f"the network's {what} turned the {split} split of {len(labels)} records into an "
                    f"array of shape {array.shape}; it must return one row per record (n_samples, ...)"
                )
    return data


def prepare_network(cfg: DictConfig, host: PluginHost, output_dir: Path, user: UserNetwork) -> RunContext:
    """Build the dataset (and the optimizer, when mlpx steps the gradients), load and prepare the
    data, build the net. NumPy's and Python's global generators are seeded with ``seed`` first:
    hand-written code draws its initial weights and dropout masks from them."""
    validate(cfg)
    components = chosen_components(cfg, host)
    used = [k for k in components if k != "network" and KIND_GROUPS[k] not in user.unused_groups]
    instances = {kind: components[kind].build(hyperparameters(cfg[KIND_GROUPS[kind]])) for kind in used}
    dataset = instances["dataset"].load()
    if not isinstance(dataset, Dataset):
        raise PluginError(
            f"{components['dataset'].describe()} returned {type(dataset).__name__}, not a Dataset"
        )
    instances["network_data"] = network_data(user.network, dataset)
    np.random.seed(cfg.seed)
    random.seed(cfg.seed)
    model = NetworkModel(user, user.network.build())
    layers = model.weight_keys()
    run = RunContext(
        cfg=cfg,
        components=components,
        instances=instances,
        dataset=dataset,
        model=model,
        output_dir=output_dir,
        shuffle_rng=np.random.default_rng(np.random.SeedSequence(cfg.seed).spawn(2)[1]),
    )
    run.tags["mlpx.network.layers"] = (
        ", ".join(f"layer{i}={k}" for i, k in enumerate(layers, 1)) or "none found"
    )
    return run


def execute_network(run: RunContext, hook: Any) -> RunResult:
    """Train and test a user network, calling ``on_run_start``, ``on_epoch_end`` and ``on_run_end``."""
    started = time.perf_counter()
    return with_run_hooks(run, hook, lambda: _train_and_test_network(run, hook, started))


def _train_and_test_network(run: RunContext, hook: Any, started: float) -> RunResult:
    """The user network trained through its own steps, then tested with mlpx's metrics."""
    model = run.model
    data = run.instances["network_data"]
    fitted = fit_network(
        model,
        data,
        optimizer=run.instances.get("optimizer"),
        **trainer_arguments(run, hook),
    )
    probs = model.probabilities(data.x["test"])
    test = split_metrics(model, data, "test", probs)
    loss_name = DIAGNOSIS_LOSS[model.user.objective.loss]
    return run_result(run, fitted, test, _normalised(probs), loss_name, started)


def split_metrics(model: NetworkModel, data: NetworkData, split: str, probs: np.ndarray) -> Metrics:
    """``loss`` (what the code trains), ``ce`` and ``acc`` (mlpx's, from ``probs``) of a split."""
    x, y, labels = data.x[split], data.y[split], data.labels[split]
    losses = [
        model.loss_value(x[i : i + EVAL_CHUNK], y[i : i + EVAL_CHUNK], probs[i : i + EVAL_CHUNK])
        * len(x[i : i + EVAL_CHUNK])
        for i in range(0, len(x), EVAL_CHUNK)
    ]
    log_probs = np.log(_normalised(probs))
    return {
        "loss": float(sum(losses) / len(x)),
        "ce": cross_entropy(log_probs, labels),
        "acc": float(np.mean(probs.argmax(axis=1) == labels)),
    }


def _normalised(probs: np.ndarray) -> np.ndarray:
    """Rows scaled to sum to 1 (sigmoid outputs do not), each entry at least ``TINY``."""
    clipped = np.clip(probs, TINY, None)
    return clipped / clipped.sum(axis=1, keepdims=True)


def fit_network(
    model: NetworkModel,
    data: NetworkData,
    *,
    optimizer: Any,
    epochs: int,
    batch_size: int,
    rng: np.random.Generator,
    lr_schedule: str = "constant",
    health: bool = False,
    divergence_factor: float = 1e3,
    on_epoch_end: Optional[Callable[[int, Metrics], Optional[str]]] = None,
) -> FitResult:
    """Train the user's net for up to ``epochs``; return every epoch's metrics, as ``mlpx.core.trainer.fit``.

    Each epoch visits the training set in an order drawn from ``rng``, in minibatches of
    ``batch_size`` handed to the network's ``update`` (or its optimizer's ``gradients`` then
    ``step``, or its ``gradients`` stepped by ``optimizer``), in calls of at most
    ``Network.check_batch`` records. A network with only ``train_epoch`` gets the whole training
    set once per epoch. ``train_loss`` is the mean of the code's loss over the epoch's batches
    before each step (after the epoch for ``train_epoch``); ``val_*`` come from ``forward``.
    """
    x, y, labels = data.x["train"], data.y["train"], data.labels["train"]
    n_samples, style = len(x), model.user.style
    steps_per_epoch = math.ceil(n_samples / batch_size)
    base_lr = optimizer.lr if style == "gradients" else None
    guard = _DivergenceGuard(divergence_factor)
    history: List[Metrics] = []
    reason = None
    for epoch in range(1, epochs + 1):
        started = time.perf_counter()
        loss_sum, correct, ratios = 0.0, 0, {}
        if style == "train_epoch":
            model.adopt(model.network.train_epoch(model.net, x, y, epoch))
            train = split_metrics(model, data, "train", model.probabilities(x))
            _guard(guard, train["loss"], epoch, 1, model)
            loss_sum, correct = train["loss"] * n_samples, round(train["acc"] * n_samples)
        else:
            order = rng.permutation(n_samples)
            for step in range(steps_per_epoch):
                batch = order[step * batch_size : (step + 1) * batch_size]
                x_batch, y_batch = x[batch], y[batch]
                probs = np.asarray(model.network.forward(model.net, x_batch), dtype=np.float64)
                value = model.loss_value(x_batch, y_batch, probs)
                _guard(guard, value, epoch, step + 1, model)
                loss_sum += value * len(batch)
                correct += int(np.count_nonzero(probs.argmax(axis=1) == labels[batch]))
                if style == "gradients":
                    global_step = (epoch - 1) * steps_per_epoch + step
                    optimizer.lr = base_lr * lr_factor(lr_schedule, global_step, epochs * steps_per_epoch)
                measured = health and step == max(0, n_samples // batch_size - 1)
                before = model.weights() if measured else None
                _train_step(model, x_batch, y_batch, optimizer)
                if before is not None:
                    ratios = _update_ratios(model, before)
        metrics = {"train_loss": loss_sum / n_samples, "train_acc": correct / n_samples}
        metrics.update(_validation_metrics(model, data, health))
        if health:
            metrics.update(ratios)
            metrics.update(_norm_metrics(model, x, y))
        lr = _current_lr(model, optimizer)
        if lr is not None:
            metrics["lr"] = lr
        metrics["epoch_seconds"] = time.perf_counter() - started
        history.append(metrics)
        reason = on_epoch_end(epoch, metrics) if on_epoch_end is not None else None
        if reason:
            break
    if base_lr is not None:
        optimizer.lr = base_lr
    return FitResult(history, stop_reason=reason or None)


def _guard(guard: _DivergenceGuard, value: float, epoch: int, step: int, model: NetworkModel) -> None:
    try:
        guard.check(value, epoch, step, _current_lr(model, None) or float("nan"))
    except DivergenceError as exc:
        raise DivergenceError(
            f"{exc}; for network '{model.user.name}', `mlpx doctor {model.user.name}` checks its code",
            epoch=exc.epoch,
            step=exc.step,
        ) from None


def _chunks(network: Any, n_rows: int) -> Iterator[slice]:
    """The calls one minibatch is split into: at most ``check_batch`` records each."""
    size = network.check_batch or n_rows
    return (slice(start, start + size) for start in range(0, n_rows, size))


def _train_step(model: NetworkModel, x: np.ndarray, y: np.ndarray, optimizer: Any) -> None:
    """One minibatch through the code's own step, or its gradients stepped by ``optimizer``."""
    network, style = model.network, model.user.style
    if style == "gradients":
        params = model.params
        grads = _batch_gradients(model, x, y)
        missing = sorted(set(params) - set(grads))
        if missing:
            raise PluginError(
                f"network '{model.user.name}': gradients(net, X, Y) returned no gradient for "
                f"{', '.join(missing)}; return {{name: gradient}} with the keys of params(net)"
            )
        optimizer.step(params, {k: np.asarray(grads[k], dtype=params[k].dtype) for k in params})
        return
    for rows in _chunks(network, len(x)):
        if style == "update":
            model.adopt(network.update(model.net, x[rows], y[rows]))
        else:
            network.optimizer["gradients"](model.net, x[rows], y[rows])
            model.adopt(network.optimizer["step"](model.net))


def _batch_gradients(model: NetworkModel, x: np.ndarray, y: np.ndarray) -> Dict[str, np.ndarray]:
    """The network's gradients of a batch: per call of ``check_batch`` records, averaged over the
    records (summed for a ``sum`` objective, as one call on the whole batch would)."""
    total: Dict[str, np.ndarray] = {}
    for rows in _chunks(model.network, len(x)):
        grads = model.network.gradients(model.net, x[rows], y[rows])
        weight = 1.0 if model.user.objective.reduction == "sum" else len(x[rows]) / len(x)
        for key, g in grads.items():
            total[key] = total.get(key, 0.0) + weight * np.asarray(g, dtype=np.float64)
    return total


def _update_ratios(model: NetworkModel, before: Dict[str, np.ndarray]) -> Metrics:
    """``update_ratio/layerL``: ||W_after - W_before|| / ||W_before|| per weight matrix (layer order)."""
    after = model.params
    ratios = {}
    for layer, key in enumerate(model.weight_keys(), start=1):
        scale = float(np.linalg.norm(before[key]))
        change = float(np.linalg.norm(np.asarray(after[key]) - before[key]))
        ratios[f"update_ratio/layer{layer}"] = change / scale if scale > 0 else float("inf")
    return ratios


def _norm_metrics(model: NetworkModel, x: np.ndarray, y: np.ndarray) -> Metrics:
    """``weight_norm/layerL``, and ``grad_norm/layerL`` on the first training rows when the
    network gives its gradients."""
    params, keys = model.params, model.weight_keys()
    metrics = {f"weight_norm/layer{i}": float(np.linalg.norm(params[k])) for i, k in enumerate(keys, 1)}
    if model.network.gradients is not None and keys:
        grads = _batch_gradients(model, x[:PROBE_ROWS], y[:PROBE_ROWS])
        metrics.update(
            {
                f"grad_norm/layer{i}": float(np.linalg.norm(grads[k]))
                for i, k in enumerate(keys, 1)
                if k in grads
            }
        )
    return metrics


def _validation_metrics(model: NetworkModel, data: NetworkData, health: bool) -> Metrics:
    probs = model.probabilities(data.x["val"])
    val = split_metrics(model, data, "val", probs)
    metrics = {"val_loss": val["loss"], "val_ce": val["ce"], "val_acc": val["acc"]}
    if health:
        calibration = calibration_metrics(np.log(_normalised(probs)), data.labels["val"])
        metrics["val_confidence"] = calibration["confidence"]
        metrics["val_ece"] = calibration["ece"]
        metrics["val_ce_top1pct_share"] = calibration["top1pct_share"]
    return metrics


def _current_lr(model: NetworkModel, optimizer: Any) -> Optional[float]:
    """The learning rate in force: the mlpx optimizer's, else the network's own ``lr``."""
    if model.user.style == "gradients" and optimizer is not None:
        return float(optimizer.lr)
    lr = model.network.lr
    if lr is None:
        return None
    return float(lr(model.net) if callable(lr) else lr)


def _discover(net: Any) -> Dict[str, np.ndarray]:
    """Float arrays held by ``net`` (a dict, a list, or an object's attributes, and lists of
    arrays among those), by name: ``W1``, ``weights[0]``. Give ``Network.params`` for anything
    deeper (layer objects)."""
    if isinstance(net, dict):
        items = net.items()
    elif isinstance(net, (list, tuple)):
        items = ((f"[{i}]", v) for i, v in enumerate(net))
    else:
        items = vars(net).items() if hasattr(net, "__dict__") else ()
    found = {}
    for name, value in items:
        if isinstance(value, np.ndarray) and value.dtype.kind == "f":
            found[str(name)] = value
        elif isinstance(value, (list, tuple)):
            found.update(
                {
                    f"{name}[{i}]": v
                    for i, v in enumerate(value)
                    if isinstance(v, np.ndarray) and v.dtype.kind == "f"
                }
            )
    return found
