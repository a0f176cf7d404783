"""Hyperparameter search with Optuna and pruning, driven by Hydra (``hparams_search=optuna``).

Hydra's published Optuna sweeper never hands the trial to the job, so it cannot prune. Here the
sweeper (``hydra_plugins.mlpx_optuna``) asks Optuna for a trial, launches the job with the
trial's overrides, and leaves the trial where the job finds it: the job's ``TrialReporter``
reports the monitored metric after every epoch, and stops the job as soon as the pruner says
so. Trials run one after another in the sweeper's process (Hydra's basic launcher), each one an
MLflow child run of the sweep tagged with its trial number and its final state.
"""

import math
import os
from typing import Any, Dict, List, Optional

from mlpx.hookspecs import hookimpl

#: the number of the trial the next job belongs to (set by the sweeper around each launch)
TRIAL_ENV = "MLPX_OPTUNA_TRIAL"

#: trials handed from the sweeper to the job running in the same process, by number
_open_trials: Dict[int, Any] = {}
#: what each job reported back: (state "COMPLETE" | "PRUNED", value of the monitored metric)
outcomes: Dict[int, tuple] = {}


def suggest(trial: Any, space: Dict[str, Any]) -> List[str]:
    """Hydra overrides for one trial, drawn from a search space written in YAML::

    optimizer.lr: {type: float, low: 1e-4, high: 0.3, log: true}
    trainer.batch_size: {type: int, low: 32, high: 256, log: true}
    activation: {type: categorical, choices: [relu, tanh]}
    model.hidden: {type: categorical, choices: ["[300,75]", "[512,256]"]}
    """
    overrides = []
    for key, spec in space.items():
        kind = spec.get("type")
        if kind == "float":
            value = trial.suggest_float(key, spec["low"], spec["high"], log=spec.get("log", False))
        elif kind == "int":
            value = trial.suggest_int(key, spec["low"], spec["high"], log=spec.get("log", False))
        elif kind == "categorical":
            value = trial.suggest_categorical(key, list(spec["choices"]))
        else:
            raise ValueError(
                f"hydra.sweeper.params.{key}: type must be float, int or categorical, got {kind!r}"
            )
        overrides.append(f"{key}={value}")
    return overrides


def open_trial(trial: Any, metric: str) -> None:
    """Leave ``trial`` for the job launched next in this process, which reports ``metric``."""
    _open_trials[trial.number] = (trial, metric)
    os.environ[TRIAL_ENV] = str(trial.number)


def close_trial(trial: Any) -> Optional[tuple]:
    """Take the trial back; return what its job reported, or None if it failed first."""
    os.environ.pop(TRIAL_ENV, None)
    _open_trials.pop(trial.number, None)
    return outcomes.pop(trial.number, None)


def reporter_for_this_job() -> Optional["TrialReporter"]:
    """The reporter of the trial this job belongs to, when a search launched it."""
    number = os.environ.get(TRIAL_ENV)
    if number is None or int(number) not in _open_trials:
        return None
    trial, metric = _open_trials[int(number)]
    return TrialReporter(trial, metric)


class TrialReporter:
    """Lifecycle plugin: reports ``metric`` to the Optuna trial each epoch and stops when pruned."""

    def __init__(self, trial: Any, metric: str) -> None:
        self.trial, self.metric = trial, metric
        self.last: Optional[float] = None

    @hookimpl
    def on_run_start(self, run) -> None:
        run.tags["mlpx.optuna.trial"] = str(self.trial.number)
        run.tags["mlpx.optuna.state"] = "RUNNING"

    @hookimpl
    def on_epoch_end(self, run, epoch: int, metrics) -> Optional[str]:
        self.last = float(metrics[self.metric])
        if not math.isfinite(self.last):
            return None  # the divergence guard stops the run
        self.trial.report(self.last, step=epoch)
        if self.trial.should_prune():
            run.tags["mlpx.optuna.state"] = "PRUNED"
            outcomes[self.trial.number] = ("PRUNED", self.last)
            return (
                f"pruned by Optuna at epoch {epoch}: {self.metric} {self.last:.4g} is worse than other trials"
            )
        return None

    @hookimpl
    def on_run_end(self, run, result, error) -> None:
        if error is None and self.trial.number not in outcomes:
            run.tags["mlpx.optuna.state"] = "COMPLETE"
            outcomes[self.trial.number] = ("COMPLETE", self.last)
