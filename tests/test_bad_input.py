"""Bad input stops before any work with a message naming the thing and what to do.

Real CLI processes on real stores: a key Hydra's `+` would add to the schema, plugins named in
MLPX_LOAD_PLUGINS that do not exist, a plugin file that fails to import, and the commands' help.
"""

import pytest
from hydra import compose, initialize_config_dir
from mlflow import MlflowClient

from mlpx.cli import CONF_DIR, plugin_host
from mlpx.plugins.config import unknown_keys
from tests.conftest import SMALL, store_uri


def _runs(workdir):
    client = MlflowClient(store_uri(workdir))
    experiments = client.search_experiments()
    return client.search_runs([e.experiment_id for e in experiments])


def test_a_plus_key_the_schema_lacks_is_refused_naming_the_valid_keys_before_any_run(workdir, run_mlpx):
    completed = run_mlpx([*SMALL, "+trainer.epochz=3"], cwd=workdir)
    assert completed.returncode == 1
    assert "trainer.epochz is not a key of trainer (its keys: epochs, batch_size" in completed.stderr
    assert "did you mean trainer.epochs?" in completed.stderr
    assert _runs(workdir) == []  # refused before a run was opened: nothing left RUNNING or FAILED


def _composed(overrides):
    plugin_host()  # registers every plugin's config option in Hydra's ConfigStore
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=overrides)


def test_unknown_keys_names_each_added_key_at_any_depth():
    cfg = _composed(["+trainer.early_stopping.patienc=3", "+optimizer.beta1=0.9", "+foo=1"])
    problems = unknown_keys(cfg)
    assert len(problems) == 3, problems
    assert any(
        p.startswith("trainer.early_stopping.patienc is not a key of trainer.early_stopping")
        for p in problems
    )
    assert any("did you mean trainer.early_stopping.patience?" in p for p in problems)
    assert any(
        p.startswith("optimizer.beta1 is not a key of optimizer (its keys: lr, momentum, name)")
        for p in problems
    )
    assert any(p.startswith("foo is not a key of the config") for p in problems)


GROUPS = ["optimizer", "activation", "loss", "initializer", "network", "tracking", "+experiment", "+variant"]


@pytest.mark.parametrize("group", GROUPS)  # hparams_search=optuna: the sweeps' tests train through it
def test_every_shipped_option_composes_without_unknown_keys(group):
    name = group.lstrip("+")
    options = [path.stem for path in (CONF_DIR / name).glob("*.yaml")]
    options += [c.name for c in plugin_host().registry.components() if c.kind == name]
    assert options, f"no options found for {group}"
    for option in sorted(set(options)):
        assert unknown_keys(_composed([f"{group}={option}"])) == [], f"{group}={option}"


def test_load_plugins_naming_no_plugin_is_an_error_listing_the_plugins_found(workdir, run_mlpx):
    completed = run_mlpx([*SMALL], cwd=workdir, env={"MLPX_LOAD_PLUGINS": "swish,nosuch"})
    assert completed.returncode == 1
    assert "MLPX_LOAD_PLUGINS names no plugin called 'nosuch'" in completed.stderr
    assert "swish" in completed.stderr.split("the plugins found are:")[1]
    assert "Traceback" not in completed.stderr


def test_a_plugin_that_fails_to_import_is_reported_with_its_file_and_line(workdir, run_mlpx, tmp_path):
    plugins = tmp_path / "my_plugins"
    plugins.mkdir()
    (plugins / "broken.py").write_text("import mlpx\n\nRATE = 1 / 0\n")
    (plugins / "typo.py").write_text("def f(:\n    pass\n")
    (plugins / "deep.py").write_text("import json\n\nCONFIG = json.loads('{oops')\n")  # raises inside json
    completed = run_mlpx(["plugins"], cwd=workdir, env={"MLPX_PLUGINS_DIR": str(plugins)})
    assert completed.returncode == 1
    assert f"failed to import at {plugins / 'broken.py'}:3: ZeroDivisionError" in completed.stderr
    assert f"failed to import at {plugins / 'typo.py'}:1: SyntaxError" in completed.stderr
    assert f"failed to import at {plugins / 'deep.py'}:3: JSONDecodeError" in completed.stderr


def test_every_command_has_real_help(workdir, run_mlpx):
    app = run_mlpx(["--help"], cwd=workdir)
    assert app.returncode == 0
    for command in ("mlpx doctor", "mlpx check", "mlpx plugins", "mlpx sync", "== Configuration groups =="):
        assert command in app.stdout, command
    check = run_mlpx(["check", "--help"], cwd=workdir)
    assert (
        check.returncode == 0
        and "Check plugins before they train" in check.stdout
        and "--json" in check.stdout
    )
    plugins = run_mlpx(["plugins", "--help"], cwd=workdir)
    assert plugins.returncode == 0 and "MLPX_LOAD_PLUGINS" in plugins.stdout
    sync = run_mlpx(["sync", "--help"], cwd=workdir)
    assert sync.returncode == 0 and "RUN_DIR" in sync.stdout and "--uri" in sync.stdout
    wrong = run_mlpx(["check", "--bogus"], cwd=workdir)
    assert wrong.returncode == 2 and "unrecognized arguments: --bogus" in wrong.stderr
