"""Network plugins (register_networks): `mlpx doctor NAME`, and `python -m mlpx network=NAME`
training a hand-written network on MNIST with everything an mlpx run records."""

import json
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient

from mlpx.core.numerics import cross_entropy, one_hot
from mlpx.plugins.manager import load_plugins
from tests.conftest import store_uri

NETWORKS = Path(__file__).parent / "plugins_networks"
ENV = {"MLPX_PLUGINS_DIR": str(NETWORKS)}
#: real MNIST, a few thousand images: about a second of training
SMALL_DATA = ["data.train_size=2000", "data.val_size=1000", "data.test_size=2000"]


def _only_run(workdir):
    client = MlflowClient(store_uri(workdir))
    experiment = client.get_experiment_by_name("mlpx")
    (run,) = client.search_runs([experiment.experiment_id])
    return client, run


def test_networks_are_a_plugin_kind_with_the_builtin_mlp():
    host = load_plugins(plugins_dirs=[NETWORKS])
    assert host.failures == []
    assert host.registry.names("network") == ["mlp", "tiny", "tiny_broken", "tiny_grads"]
    assert host.registry.get("network", "tiny").source == str(NETWORKS / "tiny_net.py")


def test_a_network_factory_with_hyperparameters_or_returning_no_network_is_reported(tmp_path):
    (tmp_path / "odd.py").write_text(
        "import mlpx\nfrom dataclasses import dataclass\n@dataclass\nclass C:\n    x: int = 1\n"
        "@mlpx.hookimpl\ndef register_networks(register):\n"
        "    register('with_config', dict, C)\n    register('not_a_network', dict)\n"
    )
    host = load_plugins(plugins_dirs=[tmp_path])
    assert "takes no hyperparameters" in str(host.failures[0])
    with pytest.raises(Exception, match="not a mlpx.doctor.Network"):
        host.registry.get("network", "not_a_network").network()


def test_doctor_on_an_unknown_network_is_a_usage_error_listing_the_networks(tmp_path, run_mlpx):
    completed = run_mlpx(["doctor", "nope"], cwd=tmp_path, env=ENV)
    assert completed.returncode == 2
    assert "no network nope" in completed.stderr
    assert "Available networks: mlp, tiny, tiny_broken, tiny_grads" in completed.stderr
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    completed = run_mlpx(["doctor", str(empty)], cwd=tmp_path, env=ENV)
    assert completed.returncode == 2 and "registers no network" in completed.stderr


def test_doctor_passes_a_correct_network_by_name_and_by_file(tmp_path, run_mlpx):
    completed = run_mlpx(["doctor", "tiny"], cwd=tmp_path, env=ENV)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "tiny" in completed.stdout
    completed = run_mlpx(["doctor", "--json", f"{NETWORKS / 'tiny_net.py'}:tiny"], cwd=tmp_path, env={})
    assert completed.returncode == 0, completed.stdout + completed.stderr
    (report,) = json.loads(completed.stdout)["reports"]
    assert report["name"] == "tiny" and report["ok"] is True


def test_doctor_finds_the_broken_network_and_exits_1(tmp_path, run_mlpx):
    completed = run_mlpx(["doctor", "--json", "tiny_broken"], cwd=tmp_path, env=ENV)
    assert completed.returncode == 1, completed.stdout + completed.stderr
    (report,) = json.loads(completed.stdout)["reports"]
    assert report["ok"] is False
    assert any(f["severity"] == "error" and f["check"] == "gradient" for f in report["findings"])


def test_run_trains_a_network_plugin_with_its_own_update_and_records_it(workdir, run_mlpx):
    completed = run_mlpx(["network=tiny", "trainer.epochs=1", *SMALL_DATA], cwd=workdir, env=ENV)
    assert completed.returncode == 0, completed.stderr
    assert "test_acc" in completed.stdout
    assert "unused config groups: activation, initializer, loss, model, optimizer" in completed.stderr
    client, run = _only_run(workdir)
    assert run.info.status == "FINISHED"
    for key in ("train_loss", "val_ce", "val_acc", "test_acc", "test_ce"):
        assert np.isfinite(run.data.metrics[key]), key
    assert run.data.metrics["val_acc"] > 0.5  # one epoch of SGD on 2,000 images learns
    assert run.data.metrics["doctor_errors"] == 0
    tags = run.data.tags
    assert tags["mlpx.network"] == "tiny" and tags["mlpx.network.training"] == "update"
    assert tags["mlpx.unused_groups"] == "activation, initializer, loss, model, optimizer"
    assert tags["mlpx.doctor"].startswith("passed") and tags["mlpx.diagnosis"]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"doctor.txt", "doctor.json", "diagnosis.md", "weights.npz", "config.yaml"} <= artifacts


def test_run_steps_a_networks_gradients_with_the_configured_optimizer(workdir, run_mlpx):
    overrides = ["network=tiny_grads", "optimizer=sgd", "optimizer.lr=0.1", "trainer.epochs=2", *SMALL_DATA]
    completed = run_mlpx([*overrides, "checks.enabled=false"], cwd=workdir, env=ENV)
    assert completed.returncode == 0, completed.stderr
    client, run = _only_run(workdir)
    assert run.data.tags["mlpx.unused_groups"] == "activation, initializer, loss, model"
    assert run.data.tags["mlpx.doctor"] == "skipped: checks.enabled=false"
    losses = [m.value for m in client.get_metric_history(run.info.run_id, "train_loss")]
    assert len(losses) == 2 and losses[1] < losses[0]
    assert len(client.get_metric_history(run.info.run_id, "update_ratio/layer1")) == 2


def test_run_with_a_broken_network_stops_before_training_with_the_doctors_errors(workdir, run_mlpx):
    completed = run_mlpx(
        ["network=tiny_broken", "trainer.epochs=1", *SMALL_DATA],
        cwd=workdir,
        env={**ENV, "HYDRA_FULL_ERROR": "0"},
    )
    assert completed.returncode == 1
    assert "mlpx doctor found errors" in completed.stderr and "checks.enabled=false" in completed.stderr
    client, run = _only_run(workdir)
    assert run.info.status == "FAILED"
    assert "train_loss" not in run.data.metrics and run.data.metrics["doctor_errors"] >= 1
    assert "doctor.txt" in {a.path for a in client.list_artifacts(run.info.run_id)}


def test_per_record_gradients_average_to_the_batch_gradient_and_the_objective_matches_mlpx():
    from mlpx.runs.network_run import NetworkModel, _batch_gradients, objective_value, user_network

    host = load_plugins(plugins_dirs=[NETWORKS])
    user = user_network(host.registry.get("network", "tiny_grads"))
    rng = np.random.default_rng(0)
    x, labels = rng.random((6, 784)), rng.integers(0, 10, 6)
    y = one_hot(labels, 10, np.float64)
    model = NetworkModel(user, user.network.build())
    whole = _batch_gradients(model, x, y)
    user.network.check_batch = 1  # the same network, called record by record
    per_record = _batch_gradients(model, x, y)
    for key in whole:
        np.testing.assert_allclose(per_record[key], whole[key], rtol=1e-10, atol=1e-14)
    probs = user.network.forward(model.net, x)
    value = objective_value(user.objective, probs, y, model.net, model.params)
    assert value == pytest.approx(cross_entropy(np.log(probs), labels), rel=1e-10)


def test_the_builtin_mlp_passes_the_doctor():
    host = load_plugins(plugins_dirs=[])
    report = host.registry.get("network", "mlp").network().examine(name="mlp")
    assert report.ok, str(report)


def test_checks_disabled_trains_a_broken_network_as_it_is(workdir, run_mlpx):
    overrides = ["network=tiny_broken", "trainer.epochs=1", "checks.enabled=false", *SMALL_DATA]
    completed = run_mlpx(overrides, cwd=workdir, env=ENV)
    assert completed.returncode == 0, completed.stderr
    _, run = _only_run(workdir)
    assert run.info.status == "FINISHED" and "doctor_errors" not in run.data.metrics
    assert np.isfinite(run.data.metrics["val_ce"])
