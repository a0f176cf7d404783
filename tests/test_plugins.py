"""Plugin loading from the three sources, and broken plugins reported without taking others down."""

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

from mlpx.plugins.manager import load_plugins

SWISH = """
from dataclasses import dataclass
import numpy as np
import mlpx

@dataclass
class SwishConfig:
    beta: float = 1.0

class Swish:
    def __init__(self, beta=1.0):
        self.beta = beta
    def forward(self, z):
        return z / (1 + np.exp(-self.beta * z))
    def backward(self, z, a, grad_a):
        s = 1 / (1 + np.exp(-self.beta * z))
        return grad_a * (s + self.beta * z * s * (1 - s))

@mlpx.hookimpl
def register_activations(register):
    register("swish", Swish, SwishConfig)
"""


def _write(folder: Path, name: str, source: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(source))
    return path


def _entry_point_dist(site: Path, hook_body: str) -> None:
    """An installed distribution with an `mlpx` entry point, as pip would leave it."""
    package = site / "mlpx_extra_pkg"
    package.mkdir()
    (package / "__init__.py").write_text(textwrap.dedent(hook_body))
    info = site / "mlpx_extra_pkg-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mlpx-extra-pkg\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text("[mlpx]\nextra = mlpx_extra_pkg\n")


def test_builtins_are_registered_through_the_hooks():
    host = load_plugins(plugins_dirs=[])
    assert host.failures == []
    assert host.registry.names("activation") == [
        "elu", "gelu", "leaky_relu", "relu", "sigmoid", "silu", "softplus", "tanh"
    ]  # fmt: skip
    assert host.registry.names("loss") == ["cross_entropy", "label_smoothing", "mse", "mse_softmax"]
    assert host.registry.names("initializer") == [
        "glorot_normal", "glorot_uniform", "he_normal", "he_uniform", "lecun_normal"
    ]  # fmt: skip
    assert host.registry.names("optimizer") == [
        "adagrad", "adam", "adamw", "momentum", "nesterov", "rmsprop", "sgd"
    ]  # fmt: skip
    assert host.registry.names("dataset") == ["mnist"]
    relu = host.registry.get("activation", "relu")
    assert relu.source == "built-in" and relu.plugin == "mlpx.builtins.activations"


def test_plugin_file_is_registered_with_its_source(tmp_path):
    path = _write(tmp_path, "swish.py", SWISH)
    host = load_plugins(plugins_dirs=[tmp_path])
    assert host.failures == []
    swish = host.registry.get("activation", "swish")
    assert swish.source == str(path)
    assert swish.build({"beta": 2.0}).beta == 2.0


def test_entry_point_plugin_is_registered_with_package_and_version(tmp_path, monkeypatch):
    _entry_point_dist(tmp_path, SWISH.replace('"swish"', '"swish_pkg"'))
    monkeypatch.syspath_prepend(str(tmp_path))
    host = load_plugins(plugins_dirs=[])
    component = host.registry.get("activation", "swish_pkg")
    assert component.version == "1.2.3"
    assert "mlpx-extra-pkg 1.2.3" in component.source


def test_broken_plugin_is_reported_and_others_still_load(tmp_path):
    _write(tmp_path, "broken.py", "import numpy\nraise RuntimeError('boom at import')\n")
    _write(tmp_path, "swish.py", SWISH)
    host = load_plugins(plugins_dirs=[tmp_path])
    assert [f.plugin for f in host.failures] == ["broken"]
    failure = host.failures[0]
    assert failure.source == str(tmp_path / "broken.py")
    assert "RuntimeError: boom at import" in failure.error
    assert "swish" in host.registry.names("activation")


@pytest.mark.parametrize(
    "source, expected",
    [
        (  # a typo in a hook name: pluggy would accept it silently
            "import mlpx\n@mlpx.hookimpl\ndef register_activation(register):\n    pass\n",
            "unknown hook 'register_activation'",
        ),
        (  # an argument the hook does not provide
            "import mlpx\n@mlpx.hookimpl\ndef register_losses(register, extra):\n    pass\n",
            "extra",
        ),
        (  # a registration hook that raises
            "import mlpx\n@mlpx.hookimpl\ndef register_losses(register):\n    1 / 0\n",
            "register_losses raised ZeroDivisionError",
        ),
        (  # a name taken by a built-in
            "import mlpx\n@mlpx.hookimpl\ndef register_activations(register):\n"
            "    register('relu', object)\n",
            "already provided by built-in",
        ),
        (  # a name Hydra could not select
            "import mlpx\n@mlpx.hookimpl\ndef register_activations(register):\n"
            "    register('my relu', object)\n",
            "not usable as a Hydra option",
        ),
        (  # hyperparameters that are not a dataclass
            "import mlpx\n@mlpx.hookimpl\ndef register_activations(register):\n"
            "    register('mine', object, dict)\n",
            "must be a dataclass",
        ),
    ],
)
def test_bad_plugins_are_reported_by_name(tmp_path, source, expected):
    _write(tmp_path, "bad.py", source)
    host = load_plugins(plugins_dirs=[tmp_path])
    assert len(host.failures) == 1, host.failures
    assert host.failures[0].plugin == "bad"
    assert expected in host.failures[0].error
    assert host.registry.names("activation")[:1] == ["elu"]  # built-ins untouched


def test_load_plugins_selection_by_environment(tmp_path, monkeypatch):
    _write(tmp_path, "swish.py", SWISH)
    _write(tmp_path, "broken.py", "raise ImportError('nope')\n")
    monkeypatch.setenv("MLPX_PLUGINS_DIR", str(tmp_path))
    monkeypatch.setenv("MLPX_LOAD_PLUGINS", "swish")
    host = load_plugins()
    assert host.failures == []
    assert "swish" in host.registry.names("activation")


def test_unknown_component_error_lists_names_and_load_failures(tmp_path):
    _write(tmp_path, "broken.py", "raise ImportError('nope')\n")
    host = load_plugins(plugins_dirs=[tmp_path])
    with pytest.raises(Exception) as info:
        host.registry.get("activation", "swish")
    message = str(info.value)
    assert "no activation named 'swish'" in message
    assert "elu, gelu, leaky_relu, relu, sigmoid, silu, softplus, tanh" in message
    assert "broken" in message


def test_plugins_command_lists_all_sources_as_json(tmp_path, run_mlpx):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    _write(plugins, "swish.py", SWISH)
    _write(plugins, "broken.py", "raise ImportError('missing dependency xyz')\n")
    site = tmp_path / "site"
    site.mkdir()
    _entry_point_dist(site, SWISH.replace('"swish"', '"swish_pkg"'))
    env = {"MLPX_PLUGINS_DIR": str(plugins), "PYTHONPATH": str(site)}
    completed = run_mlpx(["plugins", "--json"], cwd=tmp_path, env=env)
    assert completed.returncode == 1  # a plugin failed to load
    listing = json.loads(completed.stdout)
    sources = {c["name"]: c["source"] for c in listing["components"]}
    assert sources["relu"] == "built-in"
    assert sources["swish"] == str(plugins / "swish.py")
    assert "mlpx-extra-pkg 1.2.3" in sources["swish_pkg"]
    assert listing["failures"][0]["plugin"] == "broken"
    assert "missing dependency xyz" in listing["failures"][0]["error"]


def test_training_with_a_plugin_file_while_another_is_broken(tmp_path, workdir, run_mlpx):
    from tests.conftest import SMALL

    plugins = tmp_path / "plugins"
    plugins.mkdir()
    _write(plugins, "swish.py", SWISH)
    _write(plugins, "broken.py", "raise ImportError('missing dependency xyz')\n")
    completed = run_mlpx(
        ["activation=swish", "activation.beta=1.5", *SMALL],
        cwd=workdir,
        env={"MLPX_PLUGINS_DIR": str(plugins)},
    )
    assert completed.returncode == 0, completed.stderr
    assert "plugin 'broken'" in completed.stderr and "missing dependency xyz" in completed.stderr
    assert "test_acc" in completed.stdout


def test_shipped_example_plugin_loads_and_its_backward_matches_central_differences():
    from mlpx.plugin_files import DEFAULT_PLUGINS_DIR

    host = load_plugins(plugins_dirs=[DEFAULT_PLUGINS_DIR])
    assert host.failures == []
    swish = host.registry.get("activation", "swish").build({"beta": 1.7})
    rng = np.random.default_rng(0)
    z, upstream = rng.standard_normal((4, 5)), rng.standard_normal((4, 5))
    eps = 1e-6
    numeric = (swish.forward(z + eps) * upstream - swish.forward(z - eps) * upstream) / (2 * eps)
    np.testing.assert_allclose(swish.backward(z, swish.forward(z), upstream), numeric, rtol=1e-6)
