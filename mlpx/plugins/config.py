"""The structured config schema: dataclasses that make Hydra type-check every key before training.

Core groups (``model``, ``trainer``, ``tracking``) are defined here; plugin groups (``data``,
``activation``, ``loss``, ``initializer``, ``optimizer``, ``network``) get one option per
registered component, built from the plugin's hyperparameter dataclass plus a ``name`` field
(a network has no hyperparameters: ``network=NAME`` holds only its name).
"""

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, List, Optional

from omegaconf import MISSING

from mlpx.plugins.registry import KIND_GROUPS, Registry


class DType(Enum):
    float32 = "float32"
    float64 = "float64"


class LRSchedule(Enum):
    constant = "constant"  # the optimizer's lr throughout
    cosine = "cosine"  # lr * (1 + cos(pi * step / total_steps)) / 2, decaying to 0


@dataclass
class PathsConfig:
    # absolute, so runs, sweeps and the MLflow store agree whatever Hydra's working directory
    output_dir: str = "${hydra:runtime.cwd}/outputs"


@dataclass
class ModelConfig:
    hidden: List[int] = field(default_factory=lambda: [300, 75])
    dtype: DType = DType.float32


class Mode(Enum):
    max = "max"
    min = "min"


@dataclass
class EarlyStoppingConfig:
    enabled: bool = False
    monitor: str = "val_loss"  # any epoch metric; lower is better unless it ends in "acc"
    patience: int = 5  # epochs without improvement before stopping
    min_delta: float = 0.0  # smallest change that counts as an improvement
    restore_best: bool = True  # put back the weights of the best epoch when stopping


@dataclass
class TrainerConfig:
    epochs: int = 15
    batch_size: int = 128
    lr_schedule: LRSchedule = LRSchedule.cosine
    health_metrics: bool = True  # per-layer norms, update ratios, dead units, calibration (~2 %)
    divergence_factor: float = 1000.0  # stop when the loss exceeds this multiple of its first value
    # auto: measured at start and between epochs (mlpx.core.threads); a number fixes it (bit-identical runs)
    blas_threads: str = "auto"
    # the built-in ReLU, cross-entropy and SGD or momentum train in one C call per step
    # (mlpx.core.compiled); false: through their NumPy methods, as every other plugin does
    compiled: bool = True
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)


@dataclass
class TrackingConfig:
    # MLflow's own variables when set (a team's server), else the SQLite store under outputs/
    uri: str = "${oc.env:MLFLOW_TRACKING_URI,'sqlite:///${paths.output_dir}/mlflow.db'}"
    # true: contact no server, keep the run in its folder for `mlpx sync RUN_DIR`; auto: only if
    # the server does not answer at start; false: an unreachable server stops the run (a str: "auto")
    offline: str = "${oc.env:MLPX_TRACKING_OFFLINE,false}"
    experiment: str = "${oc.env:MLFLOW_EXPERIMENT_NAME,mlpx}"
    # where a new experiment in a local store keeps its artifacts (a server decides for itself)
    artifact_location: Optional[str] = "${paths.output_dir}/mlartifacts"
    run_name: Optional[str] = None  # default: the job's overrides, e.g. "optimizer.lr=0.1"
    plots: bool = True  # curves, health, confusion matrix and confident mistakes as PNG
    #: the objective: what the task function returns to a sweeper (at the restored or last epoch)
    #: and how a sweep's best run, tagged on its parent run, is chosen; never a test metric
    best_metric: str = "val_ce"
    best_mode: Mode = Mode.min
    log_model: bool = True  # the trained MLP as an MLflow pyfunc model (a LoggedModel of the run)
    register_model: Optional[str] = None  # NAME: register the run's model as a new version of NAME
    register_best: Optional[str] = None  # NAME: a sweep registers its best run's model, alias "best"


@dataclass
class ChecksConfig:
    # check the chosen plugins and the network's backward pass before training (mlpx.checks)
    enabled: bool = True


@dataclass
class MlpxConfig:
    seed: int = 0
    paths: PathsConfig = field(default_factory=PathsConfig)
    data: Any = MISSING
    model: ModelConfig = MISSING
    activation: Any = MISSING
    loss: Any = MISSING
    initializer: Any = MISSING
    optimizer: Any = MISSING
    network: Any = MISSING  # mlp (the groups above), or a user network plugin (mlpx.doctor.Network)
    trainer: TrainerConfig = MISSING
    tracking: TrackingConfig = MISSING
    checks: ChecksConfig = field(default_factory=ChecksConfig)
    # skip the run when a FINISHED run with the same config (tag mlpx.config_hash) exists
    resume: bool = False


def store_configs(registry: Registry) -> None:
    """Put the schema, the core options and one option per registered plugin in ConfigStore."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(name="mlpx_schema", node=MlpxConfig)
    cs.store(group="model", name="mlp", node=ModelConfig)
    cs.store(group="trainer", name="default", node=TrainerConfig)
    cs.store(group="tracking", name="mlflow", node=TrackingConfig)
    for component in registry.components():
        cs.store(
            group=KIND_GROUPS[component.kind],
            name=component.name,
            node=plugin_node(component.name, component.config),
            provider=f"mlpx plugin {component.plugin}",
        )


def plugin_node(name: str, config: Optional[type]) -> type:
    """The plugin's hyperparameter dataclass extended with ``name``, which says which plugin it is."""
    return dataclasses.make_dataclass(
        f"{name.title().replace('_', '').replace('-', '')}Option",
        [("name", str, field(default=name))],
        bases=(config,) if config is not None else (),
    )


def hyperparameters(node: Any) -> dict:
    """A plugin group's resolved values without ``name``: the factory's keyword arguments."""
    from omegaconf import OmegaConf

    values = OmegaConf.to_container(node, resolve=True, enum_to_str=True)
    values.pop("name", None)
    return values


def unknown_keys(cfg: Any, prefix: str = "") -> List[str]:
    """One message per key of ``cfg`` its schema does not have (Hydra's ``+group.key=value``
    adds keys even to structured configs), naming the valid keys and the closest one."""
    import difflib

    from omegaconf import DictConfig, OmegaConf

    problems = []
    schema = OmegaConf.get_type(cfg)
    if dataclasses.is_dataclass(schema):
        # not dataclasses.fields(): a class cloudpickle copied by value (submitit ships the
        # ConfigStore's make_dataclass options so) keeps its fields but loses their markers
        valid = list(schema.__dataclass_fields__)
        for key in cfg.keys():
            if key not in valid:
                name = f"{prefix}{key}"
                close = difflib.get_close_matches(str(key), valid, n=1)
                hint = f"; did you mean {prefix}{close[0]}?" if close else ""
                where = prefix.rstrip(".") or "the config"
                problems.append(f"{name} is not a key of {where} (its keys: {', '.join(valid)}){hint}")
    for key in cfg.keys():
        node = cfg._get_node(key)
        if isinstance(node, DictConfig) and not node._is_missing() and not node._is_none():
            problems.extend(unknown_keys(node, f"{prefix}{key}."))
    return problems
