"""mlpx as an installed app: a wheel built from this tree, installed into a fresh venv, trains from an
empty directory with the configs and example plugins it carries inside the package."""

import subprocess
import sys
import zipfile

import pytest
from mlflow import MlflowClient

from mlpx import __version__
from mlpx.plugins.manager import PROJECT_ROOT
from tests.conftest import SMALL, hermetic_environment


@pytest.mark.slow
def test_wheel_in_a_fresh_venv_trains_from_an_empty_directory(tmp_path, mnist_cache):
    env = {k: v for k, v in hermetic_environment().items() if k not in ("PYTHONPATH", "MLPX_PLUGINS_DIR")}

    def run(args, cwd, timeout=120):
        completed = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
        assert completed.returncode == 0, completed.stdout + completed.stderr
        return completed

    wheels = tmp_path / "wheels"
    run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(PROJECT_ROOT)],
        tmp_path,
    )
    (wheel,) = wheels.glob("mlpx-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"mlpx/conf/config.yaml", "mlpx/conf/experiment/seed_question.yaml"} <= names
    assert {"mlpx/example_plugins/swish.py", "mlpx/example_plugins/lifecycle/per_class_accuracy.py"} <= names
    assert "mlpx/tracking/logged_model.py" in names and "hydra_plugins/mlpx_optuna/__init__.py" in names
    assert any(name.startswith("mlpx/core/compiled/_step.") and name.endswith(".so") for name in names)
    # the venv sees this environment's packages (mlflow, hydra, ...), but mlpx only from the wheel
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], tmp_path)
    run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    found = run([str(venv / "bin" / "python"), "-c", "import mlpx; print(mlpx.__file__)"], empty)
    assert found.stdout.strip().startswith(str(venv))
    compiled = "from mlpx.core.compiled import available; print(available())"
    assert run([str(venv / "bin" / "python"), "-c", compiled], empty).stdout.strip() == "True"
    assert run([str(venv / "bin" / "mlpx"), "--version"], empty).stdout.strip() == f"mlpx {__version__}"
    env["XDG_CACHE_HOME"] = str(mnist_cache)
    trained = run([str(venv / "bin" / "mlpx"), *SMALL, "activation=swish", "tracking.plots=false"], empty)
    assert "test_acc" in trained.stdout
    client = MlflowClient(f"sqlite:///{empty / 'outputs' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("mlpx")
    (logged,) = client.search_runs([experiment.experiment_id])
    assert logged.info.status == "FINISHED"
    assert logged.data.tags["mlpx.plugin.activation.source"].startswith(str(venv))
    assert len(client.search_logged_models([experiment.experiment_id])) == 1
