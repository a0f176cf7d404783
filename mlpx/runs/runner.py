"""One training run from a composed config: build the components, train, evaluate the test set.

``prepare`` turns a config into a ``RunContext`` (components built, data loaded, model
initialised); ``check_run`` runs the plugin and network gradient checks on it; ``execute``
trains it, calling the lifecycle hooks of every registered plugin.
Neither prints nor touches MLflow: observers do that.
"""

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import numpy as np
from omegaconf import DictConfig

from mlpx.checks import CHECKED_KINDS, CheckReport, NetworkCheck, check_component, check_network
from mlpx.core.model import MLP
from mlpx.core.numerics import one_hot, softmax
from mlpx.core.threads import parse_setting
from mlpx.core.trainer import Metrics, evaluate_logits, fit
from mlpx.datasets import Dataset
from mlpx.diagnostics.rules import Finding, diagnose
from mlpx.errors import ConfigError, PluginError, TrackingError
from mlpx.hookspecs import hookimpl
from mlpx.plugins.config import hyperparameters
from mlpx.plugins.manager import PluginHost
from mlpx.plugins.registry import KIND_GROUPS, Component


@dataclass
class RunContext:
    """Everything a run is made of; lifecycle hooks receive it as ``run``."""

    cfg: DictConfig
    components: Dict[str, Component]  # kind -> the chosen component
    instances: Dict[str, Any]  # kind -> the built object
    dataset: Dataset
    model: MLP
    output_dir: Path
    shuffle_rng: np.random.Generator = field(repr=False)
    tags: Dict[str, str] = field(default_factory=dict)  # plugins add tags; tracking logs them
    #: the epoch whose weights the model holds at the end when a plugin restored an earlier one
    #: (early stopping's ``restore_best``); None: the last epoch's
    restored_epoch: Optional[int] = None
    _tracker: Any = field(default=None, repr=False)  # the MLflow tracker, from its on_run_start

    def attach_tracker(self, tracker: Any) -> None:
        """Called by the tracking plugin before any other ``on_run_start``."""
        self._tracker = tracker

    def _tracking(self, call: str) -> Any:
        if self._tracker is None:
            raise TrackingError(f"run.{call}: this run is not tracked (no MLflow tracker is attached to it)")
        return self._tracker

    def log_metric(self, key: str, value: float, step: Optional[int] = None) -> None:
        """Log a metric to the run's MLflow run (step 0 when None), through the helper process."""
        self._tracking("log_metric").log_metric(key, value, step)

    def log_param(self, key: str, value: Any) -> None:
        """Log a param (MLflow params cannot change once logged)."""
        self._tracking("log_param").log_param(key, value)

    def set_tag(self, key: str, value: Any) -> None:
        """Set a tag on the run's MLflow run now (``run.tags`` are set when the run ends)."""
        self._tracking("set_tag").set_tag(key, value)

    def log_artifact(self, local_path: str, artifact_path: Optional[str] = None) -> None:
        """Upload a file as an artifact (under ``artifact_path``); it is sent when this returns."""
        self._tracking("log_artifact").log_artifact(local_path, artifact_path)


@dataclass
class RunResult:
    history: List[Metrics]  # one dict per epoch, as passed to on_epoch_end
    test: Metrics  # test_acc, test_ce, test_loss
    weights: Dict[str, np.ndarray]
    seconds: float
    stop_reason: Optional[str] = None  # why training stopped early, if it did
    test_probs: Optional[np.ndarray] = None  # softmax of the test logits (n_test, n_classes)
    diagnosis: List[Finding] = field(default_factory=list)  # mlpx.diagnostics.rules
    restored_epoch: Optional[int] = None  # see RunContext.restored_epoch

    def objective(self, metric: str) -> float:
        """``metric`` (a validation metric, never a test one) at the epoch whose weights the run
        ends with: the restored epoch, else the last. What the Hydra task function returns."""
        if metric.startswith("test_"):
            raise ConfigError(
                f"tracking.best_metric={metric}: a sweep must not tune on the test set; "
                "use a validation metric such as val_ce or val_acc"
            )
        epoch = self.restored_epoch or len(self.history)
        metrics = self.history[epoch - 1] if epoch else {}
        if metric not in metrics:
            raise ConfigError(
                f"tracking.best_metric={metric}: no such metric at epoch {epoch} "
                f"(available: {', '.join(sorted(metrics))})"
            )
        return float(metrics[metric])


class ObjectiveCheck:
    """Lifecycle plugin: a ``tracking.best_metric`` the epochs do not report stops the run after
    its first epoch, not after the last (where the task function would find it missing)."""

    def __init__(self, metric: str) -> None:
        self.metric = metric

    @hookimpl(trylast=True)  # after the tracker logged the epoch: nothing computed is lost
    def on_epoch_end(self, epoch: int, metrics: Metrics) -> None:
        if epoch == 1 and self.metric not in metrics:
            raise ConfigError(
                f"tracking.best_metric={self.metric}: the epochs report no such metric "
                f"(validation metrics: {', '.join(sorted(k for k in metrics if k.startswith('val_')))})"
            )


def validate(cfg: DictConfig) -> None:
    """Checks Hydra's types cannot express; ConfigError names the key and the fix."""
    problems = []
    if any(size < 1 for size in cfg.model.hidden):
        problems.append(f"model.hidden={list(cfg.model.hidden)}: every layer needs >= 1 unit")
    if cfg.trainer.epochs < 1:
        problems.append(f"trainer.epochs={cfg.trainer.epochs}: train for at least 1 epoch")
    if cfg.trainer.batch_size < 1:
        problems.append(f"trainer.batch_size={cfg.trainer.batch_size}: must be >= 1")
    if not cfg.tracking.best_metric.startswith("val_"):
        problems.append(
            f"tracking.best_metric={cfg.tracking.best_metric}: the objective is a validation metric "
            "(val_ce, the default, val_acc or val_loss); a sweep must not tune on the test set or "
            "on the training loss"
        )
    try:
        parse_setting(cfg.trainer.blas_threads)
    except ValueError as exc:
        problems.append(str(exc))
    if problems:
        raise ConfigError("invalid configuration: " + "; ".join(problems))


def chosen_components(cfg: DictConfig, host: PluginHost) -> Dict[str, Component]:
    """The component each plugin group of ``cfg`` names (its ``name`` field)."""
    chosen = {}
    for kind, group in KIND_GROUPS.items():
        node = cfg[group]
        if "name" not in node:
            raise ConfigError(f"config group '{group}' has no 'name': pick one with {group}=NAME")
        chosen[kind] = host.registry.get(kind, node.name)
    return chosen


def prepare(cfg: DictConfig, host: PluginHost, output_dir: Path) -> RunContext:
    """Build the chosen components from their hyperparameters, load the data, build the model."""
    validate(cfg)
    components = chosen_components(cfg, host)
    instances = {
        kind: component.build(hyperparameters(cfg[KIND_GROUPS[kind]]))
        for kind, component in components.items()
        if kind != "network"  # the MLP below; user networks are prepared by mlpx.runs.network_run
    }
    dataset = instances["dataset"].load()
    if not isinstance(dataset, Dataset):
        raise PluginError(
            f"{components['dataset'].describe()} returned {type(dataset).__name__} from load(), "
            "not an mlpx.datasets.Dataset"
        )
    init_seed, shuffle_seed = np.random.SeedSequence(cfg.seed).spawn(2)
    model = MLP(
        [dataset.n_features, *cfg.model.hidden, dataset.n_classes],
        instances["activation"],
        instances["initializer"],
        np.random.default_rng(init_seed),
        dtype=np.dtype(cfg.model.dtype.value),
    )
    return RunContext(
        cfg=cfg,
        components=components,
        instances=instances,
        dataset=dataset,
        model=model,
        output_dir=output_dir,
        shuffle_rng=np.random.default_rng(shuffle_seed),
    )


#: training samples the network gradient check runs on
NETWORK_CHECK_SAMPLES = 8


@dataclass
class RunChecks:
    """The chosen plugins' check reports and the network's gradient check, made at run start."""

    reports: List[CheckReport]
    network: NetworkCheck

    @property
    def ok(self) -> bool:
        return self.network.ok and all(report.ok for report in self.reports)

    def failure_message(self) -> str:
        """What failed, naming each plugin with its source, for the error that stops the run."""
        parts = ["the run did not start: a plugin check failed (mlpx check NAME shows the same report)"]
        parts += [str(report) for report in self.reports if not report.ok]
        if not self.network.ok:
            parts.append(
                f"{self.network}\nThe backward pass of the assembled network disagrees with its "
                "forward pass: the arrays marked WRONG get wrong gradients."
            )
        parts.append("Fix the plugin, choose another, or skip the checks with checks.enabled=false.")
        return "\n".join(parts)


def check_run(run: RunContext) -> RunChecks:
    """Check the chosen activation, loss, initializer and optimizer with their configured
    hyperparameters, then the float64 twin of the run's model along random directions."""
    reports = [
        check_component(run.components[kind], hyperparameters(run.cfg[KIND_GROUPS[kind]]))
        for kind in CHECKED_KINDS
    ]
    model = run.model
    twin = MLP(
        model.sizes,
        run.instances["activation"],
        run.instances["initializer"],
        np.random.default_rng(run.cfg.seed),
        dtype=np.float64,
    )
    for key, param in model.params.items():
        twin.params[key][...] = param  # the run's own initial weights, in float64
    data = run.dataset
    x = data.x_train[:NETWORK_CHECK_SAMPLES].astype(np.float64)
    y = one_hot(data.y_train[:NETWORK_CHECK_SAMPLES], data.n_classes, np.float64)
    network = check_network(twin, run.instances["loss"], x, y, np.random.default_rng(run.cfg.seed))
    return RunChecks(reports, network)


def with_run_hooks(run: RunContext, hook: Any, train_and_test: Callable[[], RunResult]) -> RunResult:
    """``on_run_start``, then ``train_and_test()``, then ``on_run_end`` with its result or its error
    (re-raised): the lifecycle of a run of either kind, mlpx's MLP or a user network."""
    hook.on_run_start(run=run)
    try:
        result = train_and_test()
    except BaseException as error:
        hook.on_run_end(run=run, result=None, error=error)
        raise
    hook.on_run_end(run=run, result=result, error=None)
    return result


def trainer_arguments(run: RunContext, hook: Any) -> Dict[str, Any]:
    """The keyword arguments both trainers (``fit`` for mlpx's MLP, ``fit_network`` for a user
    network) take from the run's ``trainer`` config, with the ``on_epoch_end`` that calls the
    hook and returns the first reason to stop, if any."""
    trainer = run.cfg.trainer
    return {
        "epochs": trainer.epochs,
        "batch_size": trainer.batch_size,
        "rng": run.shuffle_rng,
        "lr_schedule": trainer.lr_schedule.value,
        "health": trainer.health_metrics,
        "divergence_factor": trainer.divergence_factor,
        "on_epoch_end": lambda epoch, metrics: _stop_reason(
            hook.on_epoch_end(run=run, epoch=epoch, metrics=metrics)
        ),
    }


def run_result(
    run: RunContext, fitted: Any, test: Metrics, test_probs: np.ndarray, loss_name: str, started: float
) -> RunResult:
    """A trained and tested run's result: ``fitted`` is the trainer's FitResult, ``test`` the test
    metrics (unprefixed), ``test_probs`` (n_test, n_classes) rows summing to 1, ``loss_name`` the
    loss the diagnosis reads the curves for."""
    return RunResult(
        history=fitted.history,
        stop_reason=fitted.stop_reason,
        test={f"test_{name}": value for name, value in test.items()},
        weights=run.model.weights(),
        seconds=time.perf_counter() - started,
        test_probs=test_probs,
        diagnosis=diagnose(fitted.history, loss_name, fitted.stop_reason),
        restored_epoch=run.restored_epoch,
    )


def execute(run: RunContext, hook: Any) -> RunResult:
    """Train and test ``run``, calling ``on_run_start``, ``on_epoch_end`` and ``on_run_end``."""
    started = time.perf_counter()
    return with_run_hooks(run, hook, lambda: _train_and_test(run, hook, started))


def _train_and_test(run: RunContext, hook: Any, started: float) -> RunResult:
    """mlpx's MLP trained on the run's dataset, then tested."""
    cfg, data = run.cfg, run.dataset
    fitted = fit(
        run.model,
        run.instances["loss"],
        run.instances["optimizer"],
        data,
        blas_threads=parse_setting(cfg.trainer.blas_threads),
        compiled=cfg.trainer.compiled,
        **trainer_arguments(run, hook),
    )
    # which path trained: a number of epochs, as a hook may have sent some back to NumPy
    run.tags["mlpx.compiled_step"] = f"{fitted.compiled_epochs} of {len(fitted.history)} epochs"
    x_test = data.x_test.astype(run.model.dtype, copy=False)
    test_logits = run.model.logits(x_test)
    test = evaluate_logits(run.instances["loss"], test_logits, data.y_test, data.n_classes)
    probs = softmax(test_logits.astype(np.float64))
    return run_result(run, fitted, test, probs, run.components["loss"].name, started)


def _stop_reason(results: List[Optional[str]]) -> Optional[str]:
    """The first reason to stop returned by an ``on_epoch_end`` implementation, if any."""
    return next((reason for reason in results if reason), None)
