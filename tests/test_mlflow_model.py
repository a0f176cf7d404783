"""A run as MLflow 3 sees it: its model (loaded in a clean process, served by `mlflow models serve`,
registered), its datasets, its description and git tags, and what lifecycle plugins log through it.

One real run (swish activation from plugins/, the per-class accuracy example plugin) is trained
for the module; every test reads it back through MlflowClient from its real SQLite store.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
import urllib.parse
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient

from mlpx.builtins.initializers import HeNormal
from mlpx.core.model import MLP
from mlpx.plugins.manager import PROJECT_ROOT
from tests.conftest import SMALL, _free_port, hermetic_environment, stop_process, store_uri

PLUGIN = textwrap.dedent(
    """
    import mlpx

    @mlpx.hookimpl
    def on_run_start(run):
        run.log_param("probe.started", "yes")

    @mlpx.hookimpl
    def on_run_end(run, result):
        run.tags["probe.tag_from_run_end"] = f"test_acc {result.test['test_acc']:.4f}"

    @mlpx.hookimpl(optionalhook=True)
    def on_hook_of_a_later_mlpx():
        pass
    """
)


def _train(workdir, args, env=None, cache=None):
    full_env = {**hermetic_environment(), "HYDRA_FULL_ERROR": "1", **(env or {})}
    if cache:
        full_env["XDG_CACHE_HOME"] = str(cache)
    completed = subprocess.run(
        [sys.executable, "-m", "mlpx", *args], cwd=workdir, env=full_env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    return completed


def _setup_workdir(root, migrated_store):
    (root / "outputs").mkdir(parents=True)
    shutil.copy(migrated_store, root / "outputs" / "mlflow.db")
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory, migrated_store, mnist_cache):
    """(workdir, client, run, model id) of one run with a plugin activation and logging plugins."""
    workdir = _setup_workdir(tmp_path_factory.mktemp("model-run"), migrated_store)
    probe = workdir / "probe_plugins"
    probe.mkdir()
    (probe / "probe.py").write_text(PLUGIN)
    folders = [PROJECT_ROOT / "plugins", PROJECT_ROOT / "plugins" / "lifecycle", probe]
    args = [*SMALL, "activation=swish", "activation.beta=1.5", "tracking.register_model=mnist-mlp"]
    _train(workdir, args, {"MLPX_PLUGINS_DIR": os.pathsep.join(map(str, folders))}, mnist_cache)
    client = MlflowClient(store_uri(workdir))
    experiment = client.get_experiment_by_name("mlpx")
    (run,) = client.search_runs([experiment.experiment_id])
    models = client.search_logged_models([experiment.experiment_id])
    assert len(models) == 1
    return workdir, client, run, models[0].model_id


def _mlpx_predictions(client, run, x, tmp_path):
    """mlpx's own probabilities for x: the run's weights in an MLP with swish (beta 1.5)."""
    from mlpx.plugin_files.swish import Swish

    from mlpx.core.numerics import softmax

    path = client.download_artifacts(run.info.run_id, "weights.npz", str(tmp_path))
    with np.load(path, allow_pickle=False) as weights:
        model = MLP(
            [784, 32, 16, 10], Swish(beta=1.5), HeNormal(), np.random.default_rng(0), dtype=np.float32
        )
        for key in model.params:
            model.params[key][...] = weights[key]
    return softmax(model.logits(x).astype(np.float64))


def _test_images(n=200):
    from mlpx.datasets.mnist import load_mnist

    images = load_mnist(cache_dir=None)["test_images"][:n]
    return (images.reshape(n, -1) / np.float32(255)).astype(np.float32)


LOADER = textwrap.dedent(
    """
    import importlib.abc, json, sys

    class NoMlpx(importlib.abc.MetaPathFinder):  # as if mlpx were not installed
        def find_spec(self, name, path=None, target=None):
            if name == "mlpx" or name.startswith("mlpx."):
                raise ModuleNotFoundError(f"No module named {name!r} (blocked)")

    sys.meta_path.insert(0, NoMlpx())
    import mlflow, numpy as np
    model = mlflow.pyfunc.load_model(sys.argv[1])
    probabilities = model.predict(np.load(sys.argv[2]))
    np.save(sys.argv[3], probabilities)
    print(json.dumps({"mlpx_file": getattr(sys.modules.get("mlpx"), "__file__", None),
                      "path": [p for p in sys.path if "work/main" in p]}))
    """
)


def test_model_loads_in_a_clean_process_without_mlpx_and_predicts_as_mlpx(trained, tmp_path):
    workdir, client, run, model_id = trained
    logged = client.get_logged_model(model_id)
    assert logged.source_run_id == run.info.run_id
    assert [o.model_id for o in run.outputs.model_outputs] == [model_id]
    x = _test_images()
    np.save(tmp_path / "x.npy", x)
    (tmp_path / "load.py").write_text(LOADER)
    env = {k: v for k, v in hermetic_environment().items() if k != "PYTHONPATH"}
    env["MLFLOW_TRACKING_URI"] = store_uri(workdir)
    completed = subprocess.run(
        [sys.executable, "load.py", f"models:/{model_id}", "x.npy", "p.npy"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    seen = json.loads(completed.stdout.strip().splitlines()[-1])
    assert seen == {"mlpx_file": None, "path": []}  # a stand-in mlpx at most, no repository path
    probabilities = np.load(tmp_path / "p.npy")
    assert probabilities.shape == (200, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-12)
    np.testing.assert_allclose(
        probabilities, _mlpx_predictions(client, run, x, tmp_path), rtol=1e-5, atol=1e-7
    )
    info = mlflow.models.Model.load(urllib.parse.urlparse(logged.artifact_location).path)
    assert info.signature.inputs.to_dict() == [
        {"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": (-1, 784)}}
    ]
    files = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert "weights.npz" in files
    folder = Path(urllib.parse.urlparse(logged.artifact_location).path)
    assert (folder / "requirements.txt").read_text().split() == [
        f"mlflow=={mlflow.__version__}",
        f"numpy=={np.__version__}",
    ]


def test_the_model_logs_with_a_package_map_of_its_requirements_only_and_then_none():
    from mlflow.utils import requirements_utils

    from mlpx.tracking.recorder import _only_packages_known

    saved = requirements_utils._MODULES_TO_PACKAGES, requirements_utils._PACKAGES_TO_MODULES
    requirements_utils._MODULES_TO_PACKAGES = requirements_utils._PACKAGES_TO_MODULES = None  # never mapped
    try:
        with _only_packages_known({"numpy": np.__version__}):
            assert requirements_utils._check_requirement_satisfied(f"numpy=={np.__version__}") is None
            assert (
                requirements_utils._check_requirement_satisfied("numpy==0.0.1") is not None
            )  # still checked
        assert (
            requirements_utils._MODULES_TO_PACKAGES is None
            and requirements_utils._PACKAGES_TO_MODULES is None
        )
        built = {"numpy": ["numpy"], "other": ["other"]}
        requirements_utils._MODULES_TO_PACKAGES = built
        with _only_packages_known({"numpy": np.__version__}):  # a map MLflow built is kept
            assert requirements_utils._MODULES_TO_PACKAGES is built
    finally:
        requirements_utils._MODULES_TO_PACKAGES, requirements_utils._PACKAGES_TO_MODULES = saved


def test_run_lists_its_datasets_description_and_git_tags(trained):
    _, _, run, _ = trained
    inputs = {d.tags[0].value: d.dataset for d in run.inputs.dataset_inputs}
    assert set(inputs) == {"training", "validation", "test"}
    assert inputs["training"].name == "mnist_train" and "train-images-idx3-ubyte" in inputs["training"].source
    assert "t10k-images" in inputs["test"].source
    assert json.loads(inputs["validation"].profile)["features_shape"] == [1000, 784]
    assert len({d.digest for d in inputs.values()}) == 3
    tags = run.data.tags
    assert tags["mlflow.note.content"].startswith("# Diagnosis") and "val_acc" in tags["mlflow.note.content"]
    head = subprocess.run(
        ["git", "-C", str(PROJECT_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True
    )
    assert tags["mlflow.source.git.commit"] == head.stdout.strip()
    assert tags["mlflow.source.type"] == "LOCAL" and tags["mlflow.user"]
    assert tags["mlflow.source.name"].endswith("__main__.py")


def test_plugins_log_metrics_params_tags_and_artifacts_through_the_run(trained, tmp_path):
    _, client, run, _ = trained
    for k in (0, 9):
        assert [m.step for m in client.get_metric_history(run.info.run_id, f"val_acc/class_{k}")] == [1, 2]
    assert run.data.params["probe.started"] == "yes"  # from on_run_start
    assert run.data.tags["probe.tag_from_run_end"].startswith("test_acc")  # on_run_end, before closing
    assert run.data.tags["mlpx.per_class.worst"].startswith("class ")
    table = client.download_artifacts(run.info.run_id, "per_class_accuracy.csv", str(tmp_path))
    assert open(table).read().splitlines()[0].startswith("epoch,class_0")
    assert run.info.status == "FINISHED"


def test_register_model_adds_a_version_of_the_run_model(trained):
    _, client, run, model_id = trained
    (found,) = client.search_model_versions("name = 'mnist-mlp'")
    version = client.get_model_version("mnist-mlp", found.version)
    assert version.run_id == run.info.run_id and model_id in version.source  # SQLite keeps no model_id


@pytest.mark.slow
def test_mlflow_models_serve_answers_invocations(trained, tmp_path):
    workdir, client, run, model_id = trained
    port = _free_port()
    env = {**hermetic_environment(), "MLFLOW_TRACKING_URI": store_uri(workdir)}
    with open(tmp_path / "serve.log", "w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{model_id}",
             "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2):
                    break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, (
                    tmp_path / "serve.log"
                ).read_text()
                time.sleep(0.5)
        x = _test_images(5)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=json.dumps({"inputs": x.tolist()}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            predictions = np.array(json.loads(response.read())["predictions"])
    finally:
        stop_process(server, 15)
    np.testing.assert_allclose(predictions, _mlpx_predictions(client, run, x, tmp_path), rtol=1e-5, atol=1e-7)


def test_log_model_false_logs_no_model(tmp_path, migrated_store, mnist_cache):
    workdir = _setup_workdir(tmp_path / "run", migrated_store)
    _train(workdir, [*SMALL, "tracking.log_model=false", "tracking.plots=false"], cache=mnist_cache)
    client = MlflowClient(store_uri(workdir))
    experiment = client.get_experiment_by_name("mlpx")
    assert client.search_logged_models([experiment.experiment_id]) == []
    (run,) = client.search_runs([experiment.experiment_id])
    assert len(run.inputs.dataset_inputs) == 3 and run.info.status == "FINISHED"


def test_sweep_registers_its_best_model_with_alias_best(tmp_path, migrated_store, mnist_cache):
    workdir = _setup_workdir(tmp_path / "sweep", migrated_store)
    args = [
        "-m",
        "optimizer.lr=0.001,0.1",
        *SMALL,
        "tracking.plots=false",
        "tracking.register_best=mnist-best",
    ]
    _train(workdir, args, cache=mnist_cache)
    client = MlflowClient(store_uri(workdir))
    experiment = client.get_experiment_by_name("mlpx")
    runs = client.search_runs([experiment.experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    best = min(children, key=lambda r: r.data.metrics["val_ce"])  # the default objective
    version = client.get_model_version_by_alias("mnist-best", "best")
    assert version.run_id == best.info.run_id
    assert best.outputs.model_outputs[0].model_id in version.source
    (parent,) = [r for r in runs if r.data.tags.get("mlpx.sweep") == "parent"]
    assert parent.data.tags["mlpx.sweep.registered"] == f"mnist-best version {version.version}"
