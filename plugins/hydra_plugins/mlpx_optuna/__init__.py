"""Hydra sweeper ``hydra/sweeper=mlpx_optuna``: Optuna search whose trials can be pruned.

Hydra finds sweepers only in the ``hydra_plugins`` namespace; mlpx installs this package from
``plugins/hydra_plugins`` (see pyproject.toml). The search logic lives in ``mlpx.sweeps.search``.
"""

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from omegaconf import OmegaConf

log = logging.getLogger("mlpx")


@dataclass
class MlpxOptunaSweeperConf:
    _target_: str = "hydra_plugins.mlpx_optuna.MlpxOptunaSweeper"
    n_trials: int = 20
    direction: str = "minimize"  # or maximize
    # reported to the trial after every epoch; its last value is the objective. val_ce, the
    # validation cross-entropy mlpx computes itself, compares runs trained with different losses
    metric: str = "val_ce"
    sampler: str = "tpe"  # tpe | random
    pruner: str = "median"  # median | hyperband | none
    seed: Optional[int] = 0
    n_startup_trials: int = 3  # trials before the sampler models and the median pruner prunes
    n_warmup_steps: int = 1  # epochs a trial always runs before it can be pruned
    storage: Optional[str] = None  # e.g. sqlite:///outputs/optuna.db to keep and resume the study
    study_name: Optional[str] = None
    # the search space in Hydra's override grammar, e.g. {optimizer.lr: "tag(log, interval(1e-3, 0.3))"};
    # command-line sweeps ('activation=choice(relu,tanh)') join it, see mlpx.sweeps.search.search_space
    params: Dict[str, Any] = field(default_factory=dict)


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

        from mlpx.sweeps import search

        if type(self.launcher).__name__ != "BasicLauncher":
            raise ValueError(
                "hydra/sweeper=mlpx_optuna runs trials in its own process, one after another, so "
                "it can hand each job its trial: use Hydra's basic launcher (drop hydra/launcher=...)"
            )
        s = self.settings
        params = s["params"]
        if OmegaConf.is_config(params):
            params = OmegaConf.to_container(params, resolve=True)
        space, fixed = search.search_space(params or {}, arguments)
        if not space:
            raise search.SearchSpaceError(
                "hydra/sweeper=mlpx_optuna has nothing to search: give hydra.sweeper.params or a "
                "sweep override such as 'optimizer.lr=tag(log, interval(0.01, 0.2))'"
            )
        log.info("optuna space: %s", ", ".join(f"{k} {d}" for k, d in space.items()))
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
            trial = study.ask(space)
            overrides = [*fixed, *search.overrides_for(trial.params)]
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
        best = None
        if states.count("COMPLETE"):
            best = study.best_trial
            log.info("optuna best %s %.4g with %s", s["metric"], best.value, best.params)
        _write_results(Path(str(self.config.hydra.sweep.dir)), s, states, best)
        return returns


def _write_results(folder: Path, settings, states, best) -> None:
    """``optimization_results.yaml`` in the sweep folder, as hydra-optuna-sweeper writes it."""
    results = {
        "name": "optuna",
        "metric": settings["metric"],
        "direction": settings["direction"],
        "best_params": dict(best.params) if best else None,
        "best_value": best.value if best else None,
        "best_trial": best.number if best else None,
        "trials": {state: states.count(state) for state in sorted(set(states))},
    }
    folder.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(OmegaConf.create(results), folder / "optimization_results.yaml")
    log.info("optuna results: %s", folder / "optimization_results.yaml")


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
