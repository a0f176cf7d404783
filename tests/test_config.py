"""Hydra composition: defaults, overrides, plugin options from ConfigStore, and the failures."""

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf import OmegaConf
from omegaconf.errors import ValidationError

from mlpx.cli import CONF_DIR, plugin_host


def _compose(overrides=()):
    plugin_host()  # loads plugins and stores their options in ConfigStore
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=["paths.output_dir=/tmp/mlpx-test", *overrides])


def test_default_config_is_the_seed_network():
    cfg = _compose()
    assert list(cfg.model.hidden) == [300, 75]
    assert cfg.activation.name == "relu"
    assert cfg.loss.name == "cross_entropy"
    assert cfg.data.name == "mnist" and cfg.data.val_size == 5000
    for key in ("seed", "trainer.epochs", "trainer.batch_size", "tracking.uri", "tracking.experiment"):
        assert OmegaConf.select(cfg, key) is not None, key
    assert cfg.tracking.uri == "sqlite:////tmp/mlpx-test/mlflow.db"


def test_overrides_choose_plugins_and_their_hyperparameters():
    cfg = _compose(["optimizer=adam", "optimizer.beta1=0.95", "model.hidden=[512,256]", "activation=tanh"])
    assert cfg.optimizer.name == "adam"
    assert cfg.optimizer.beta1 == 0.95
    assert cfg.optimizer.lr == 0.001  # the plugin dataclass's default
    assert list(cfg.model.hidden) == [512, 256]
    assert cfg.activation.name == "tanh"


def test_unknown_plugin_name_lists_the_available_ones():
    with pytest.raises(MissingConfigException) as info:
        _compose(["optimizer=adamm"])
    message = str(info.value)
    assert "optimizer/adamm" in message
    for name in ("adam", "momentum", "sgd"):
        assert name in message


def test_key_of_another_plugin_is_rejected():
    with pytest.raises(ConfigCompositionException) as info:
        _compose(["optimizer=sgd", "optimizer.beta1=0.9"])
    assert "Key 'beta1' not in 'SgdOption'" in str(info.value.__cause__)


@pytest.mark.parametrize(
    "override, key",
    [
        ("trainer.epochs=many", "trainer.epochs"),
        ("optimizer.lr=fast", "optimizer.lr"),
        ("model.hidden=[a,b]", "model.hidden"),
        ("trainer.lr_schedule=exponential", "trainer.lr_schedule"),
        ("model.dtype=float16", "model.dtype"),
        ("seed=0.5", "seed"),
    ],
)
def test_wrong_types_fail_before_training(override, key):
    with pytest.raises(ConfigCompositionException) as info:
        _compose([override])
    assert isinstance(info.value.__cause__, ValidationError)
    assert key in str(info.value.__cause__)


def test_misspelt_key_fails():
    with pytest.raises(ConfigCompositionException) as info:
        _compose(["trainer.epoch=3"])
    assert "epoch" in str(info.value.__cause__)


def test_invalid_early_stopping_setting_is_a_config_error():
    from mlpx.cli import _optional_observers
    from mlpx.errors import ConfigError

    cfg = _compose(["trainer.early_stopping.enabled=true", "trainer.early_stopping.patience=0"])
    with pytest.raises(ConfigError, match="patience must be >= 1"):
        _optional_observers(cfg)
    from mlpx.builtins.early_stopping import EarlyStopping
    from mlpx.runs.runner import ObjectiveCheck

    observers = _optional_observers(_compose())
    assert not [o for o in observers if isinstance(o, EarlyStopping)]  # off by default
    assert [type(o) for o in observers] == [ObjectiveCheck]  # the objective is always checked
