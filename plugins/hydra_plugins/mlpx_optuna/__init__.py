"""Hydra sweeper ``hydra/sweeper=mlpx_optuna``: Optuna search whose trials can be pruned.

Hydra finds sweepers only in the ``hydra_plugins`` namespace; mlpx installs this package from
``plugins/hydra_plugins`` (see pyproject.toml). The search logic lives in ``mlpx.search``.
"""

import logging
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper

log = logging.getLogger("mlpx")


@dataclass
class MlpxOptunaSweeperConf:
    _target_: str = "hydra_plugins.mlpx_optuna.MlpxOptunaSweeper"
    n_trials: int = 20
    direction: str = "minimize"  # or maximize
    metric: str = "val_loss"  # reported to the trial after every epoch; its last value is the objective
    sampler: str = "tpe"  # tpe | random
    pruner: str = "median"  # median | hyperband | none
    seed: Optional[int] = 0
    n_startup_trials: int = 3  # trials before the sampler models and the median pruner prunes
    n_warmup_steps: int = 1  # epochs a trial always runs before it can be pruned
    storage: Optional[str] = None  # e.g. sqlite:///outputs/optuna.db to keep and resume the study
    study_name: Optional[str] = None
    params: Dict[str, Any] = field(default_factory=dict)  # the search space, see mlpx.search.suggest


ConfigStore.instance().store(
    group="hydra/sweeper", name="mlpx_optuna", node=MlpxOptunaSweeperConf, provider="mlpx"
)


class MlpxOptunaSweeper(Sweeper):
    def __init__(self, **settings: Any) -> None:
        settings.pop("_target_", None)
        self.settings = settings
        self.launcher = None

    def setup(self, *, hydra_context, task_function, config) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: List[str]) -> Any:
        import optuna

        from mlpx import search

        if type(self.launcher).__name__ != "BasicLauncher":
            raise ValueError(
                "hydra/sweeper=mlpx_optuna runs trials in its own process, one after another, so "
                "it can hand each job its trial: use Hydra's basic launcher (drop hydra/launcher=...)"
            )
        s = self.settings
        study = optuna.create_study(
            direction=s["direction"],
            sampler=_sampler(optuna, s),
            pruner=_pruner(optuna, s),
            storage=s["storage"],
            study_name=s["study_name"],
            load_if_exists=True,
        )
        returns = []
        for index in range(s["n_trials"]):
            trial = study.ask()
            overrides = [*arguments, *search.suggest(trial, dict(s["params"]))]
            search.open_trial(trial, s["metric"])
            try:
                returns.append(self.launcher.launch([tuple(overrides)], initial_job_idx=index))
            finally:
                outcome = search.close_trial(trial)
            if outcome is None or outcome[1] is None:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
            elif outcome[0] == "PRUNED":
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            else:
                study.tell(trial, outcome[1])
        states = [t.state.name for t in study.trials]
        log.info(
            "optuna: %d trials, %d complete, %d pruned, %d failed",
            len(states),
            states.count("COMPLETE"),
            states.count("PRUNED"),
            states.count("FAIL"),
        )
        if states.count("COMPLETE"):
            log.info("optuna best %s %.4g with %s", s["metric"], study.best_value, study.best_params)
        return returns


def _sampler(optuna, settings):
    if settings["sampler"] == "random":
        return optuna.samplers.RandomSampler(seed=settings["seed"])
    if settings["sampler"] == "tpe":
        return optuna.samplers.TPESampler(
            seed=settings["seed"], n_startup_trials=settings["n_startup_trials"]
        )
    raise ValueError(f"hydra.sweeper.sampler must be tpe or random, got {settings['sampler']!r}")


def _pruner(optuna, settings):
    if settings["pruner"] == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=settings["n_startup_trials"], n_warmup_steps=settings["n_warmup_steps"]
        )
    if settings["pruner"] == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, settings["n_warmup_steps"]))
    if settings["pruner"] == "none":
        return optuna.pruners.NopPruner()
    raise ValueError(f"hydra.sweeper.pruner must be median, hyperband or none, got {settings['pruner']!r}")
