"""How runs end, seen through MLflow: diagnosed, stopped early, diverged, or skipped on resume."""

import os
import re
import signal
import subprocess
import sys

import numpy as np
from mlflow import MlflowClient

from mlpx.builtins.early_stopping import EarlyStopping
from mlpx.cli import finished_objective
from tests.conftest import SMALL, default_signals, store_uri


def _runs(workdir):
    client = MlflowClient(store_uri(workdir))
    experiment = client.get_experiment_by_name("mlpx")
    return client, client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])


def test_run_is_diagnosed_and_plotted(workdir, run_mlpx, tmp_path):
    completed = run_mlpx(SMALL, cwd=workdir)
    assert completed.returncode == 0, completed.stderr
    assert "Diagnosis:" in completed.stdout
    client, (run,) = _runs(workdir)
    assert run.data.tags["mlpx.diagnosis"]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert "diagnosis.md" in artifacts
    plots = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert plots == {
        "plots/curves.png",
        "plots/health.png",
        "plots/confusion_matrix.png",
        "plots/confident_mistakes.png",
    }
    png = client.download_artifacts(run.info.run_id, "plots/curves.png", str(tmp_path))
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    for key in ("grad_norm/layer1", "update_ratio/layer2", "dead_units/layer1", "val_ece"):
        assert len(client.get_metric_history(run.info.run_id, key)) == 2, key
    assert run.data.metrics["gradcheck_rel_err"] < 1e-4


def test_absurd_learning_rate_diverges_into_a_failed_run_that_keeps_its_metrics(workdir, run_mlpx):
    # plain SGD at a constant lr of 50 drives the loss to NaN or past 1000x its first value
    overrides = [o for o in SMALL if not o.startswith("trainer.epochs")]
    completed = run_mlpx(
        [*overrides, "optimizer=sgd", "optimizer.lr=50", "trainer.epochs=3", "trainer.lr_schedule=constant"],
        cwd=workdir,
        env={"HYDRA_FULL_ERROR": "0"},
    )
    assert completed.returncode == 1
    assert "the training loss" in completed.stderr and "lower optimizer.lr" in completed.stderr
    client, (run,) = _runs(workdir)
    assert run.info.status == "FAILED"
    assert run.data.tags["mlpx.diverged"].startswith("epoch ")
    assert run.data.params["optimizer.lr"] == "50.0"
    assert "gradcheck_rel_err" in run.data.metrics  # what was logged before is kept


def test_divergence_in_a_multirun_lets_the_other_jobs_finish(workdir, run_mlpx):
    completed = run_mlpx(
        ["-m", "optimizer=sgd", "optimizer.lr=0.05,1e6", "trainer.lr_schedule=constant", *SMALL], cwd=workdir
    )
    assert completed.returncode == 1
    assert "1 of 2 jobs failed" in completed.stderr and "DivergenceError" in completed.stderr
    _, runs = _runs(workdir)
    children = {r.data.params["optimizer.lr"]: r for r in runs if "mlflow.parentRunId" in r.data.tags}
    assert children["0.05"].info.status == "FINISHED"
    assert children["1000000.0"].info.status == "FAILED"
    assert "mlpx.diverged" in children["1000000.0"].data.tags


def test_early_stopping_stops_logs_why_and_restores_the_best_weights(workdir, run_mlpx):
    overrides = [o for o in SMALL if not o.startswith("trainer.epochs")]
    completed = run_mlpx(
        [
            *overrides,
            "trainer.epochs=30",
            "trainer.lr_schedule=constant",
            "optimizer=adam",
            "optimizer.lr=0.003",
            "trainer.early_stopping.enabled=true",
            "trainer.early_stopping.patience=2",
        ],
        cwd=workdir,
    )
    assert completed.returncode == 0, completed.stderr
    client, (run,) = _runs(workdir)
    reason = run.data.tags["mlpx.stopped_early"]
    assert "did not improve" in reason and "restored" in reason
    epochs = len(client.get_metric_history(run.info.run_id, "val_loss"))
    assert epochs < 30
    assert f"stopped after epoch {epochs}" in reason
    # the objective a sweeper gets back is val_ce at the restored epoch, not at the last one
    restored = int(run.data.tags["mlpx.restored_epoch"])
    assert restored == epochs - 2  # patience 2
    val_ce = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "val_ce")}
    assert finished_objective(store_uri(workdir), run, "val_ce") == val_ce[restored] != val_ce[epochs]


def test_a_test_metric_as_the_objective_is_refused_before_training(workdir, run_mlpx):
    completed = run_mlpx([*SMALL, "tracking.best_metric=test_acc"], cwd=workdir)
    assert completed.returncode == 1
    assert "tracking.best_metric=test_acc: the objective is a validation metric" in completed.stderr
    assert "a sweep must not tune on the test set" in completed.stderr
    client, (run,) = _runs(workdir)
    assert run.info.status == "FAILED" and not client.get_metric_history(run.info.run_id, "val_ce")


class _Run:  # the part of RunContext EarlyStopping uses
    def __init__(self, params):
        self.tags, self.restored_epoch = {}, None
        self.model = type(
            "Model", (), {"params": params, "weights": lambda self: {k: v.copy() for k, v in params.items()}}
        )()


def test_early_stopping_plugin_restores_exactly_the_best_epoch():
    params = {"W1": np.zeros(3)}
    run = _Run(params)
    stopper = EarlyStopping(monitor="val_loss", patience=2, min_delta=0.0, restore_best=True)
    losses = [1.0, 0.5, 0.6, 0.55]  # best at epoch 2; epochs 3 and 4 do not improve
    reasons = []
    for epoch, value in enumerate(losses, start=1):
        params["W1"][:] = epoch  # the weights after this epoch
        reasons.append(stopper.on_epoch_end(run=run, epoch=epoch, metrics={"val_loss": value}))
    assert reasons[:3] == [None, None, None]
    assert "best 0.5000 at epoch 2" in reasons[3]
    np.testing.assert_array_equal(params["W1"], [2.0, 2.0, 2.0])
    assert run.restored_epoch == 2 and run.tags["mlpx.restored_epoch"] == "2"


def test_resume_skips_finished_configs_and_reruns_failed_ones(workdir, run_mlpx):
    small = [o for o in SMALL if not o.startswith("model.hidden")]
    first = run_mlpx(["-m", "model.hidden=[16],[0]", *small], cwd=workdir)
    assert first.returncode == 1  # the [0] job fails
    again = run_mlpx(["-m", "model.hidden=[16],[0],[8]", "resume=true", *small], cwd=workdir)
    assert again.returncode == 1  # [0] is rerun and fails again
    assert again.stdout.count("skipped (resume)") == 1
    assert re.search(
        r"skipped \(resume\): already FINISHED as MLflow run \w+ \(trained with [\d/]+ BLAS threads? per",
        again.stdout,
    )
    _, runs = _runs(workdir)
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    by_hidden = {}
    for r in children:
        by_hidden.setdefault(r.data.params["model.hidden"], []).append(r.info.status)
    assert by_hidden == {"[16]": ["FINISHED"], "[0]": ["FAILED", "FAILED"], "[8]": ["FINISHED"]}
    hashes = {r.data.tags["mlpx.config_hash"] for r in children if r.data.params["model.hidden"] == "[0]"}
    assert len(hashes) == 1  # the same config gets the same hash


def test_ctrl_c_during_training_ends_the_run_killed_with_its_epochs(workdir, mnist_cache):
    # the real thing: SIGINT to the whole process group, as a terminal sends it
    env = {**os.environ, "XDG_CACHE_HOME": str(mnist_cache)}
    process = subprocess.Popen(
        [sys.executable, "-m", "mlpx", *SMALL, "trainer.epochs=200"],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=default_signals,
    )
    for line in process.stdout:  # one progress line per epoch: "... epoch   2/200  train_loss ..."
        if re.search(r"epoch\s+2/200", line):
            os.killpg(process.pid, signal.SIGINT)
            break
    rest, _ = process.communicate(timeout=60)
    assert process.returncode == 130  # 128 + SIGINT, as shells report it
    client = MlflowClient(store_uri(workdir))
    (run,) = client.search_runs([client.get_experiment_by_name("mlpx").experiment_id])
    assert run.info.status == "KILLED"
    assert run.data.tags["mlpx.interrupted"].startswith("interrupted by SIGINT")
    # one line saying what was kept and where, not a traceback
    assert "Traceback" not in rest
    (said,) = [line for line in rest.splitlines() if line.startswith("mlpx: interrupted by SIGINT")]
    assert f"MLflow run {run.info.run_id} ended KILLED" in said and store_uri(workdir) in said
    assert run.data.tags["mlpx.output_dir"] in said
    # epoch 1 was logged before epoch 2's progress line; the signal may cut epoch 2's logging short
    assert len(client.get_metric_history(run.info.run_id, "val_ce")) >= 1


def test_no_hidden_layer_trains_a_documented_linear_model(workdir, run_mlpx):
    small = [o for o in SMALL if not o.startswith("model.hidden")]
    completed = run_mlpx([*small, "model.hidden=[]"], cwd=workdir)
    assert completed.returncode == 0, completed.stderr
    assert "a linear model (softmax regression" in completed.stderr
    client, (run,) = _runs(workdir)
    assert run.info.status == "FINISHED"
    assert run.data.tags["mlpx.model"] == "linear (softmax regression)"
    assert run.data.tags["mlpx.unused_groups"] == "activation"
    assert {k for k in run.data.metrics if k.startswith("weight_norm/")} == {"weight_norm/layer1"}
    assert run.data.metrics["val_acc"] > 0.5  # it learns: ten classes, one weight matrix


def test_a_misspelt_objective_stops_the_run_after_its_first_epoch(workdir, run_mlpx):
    args = [*(o for o in SMALL if not o.startswith("trainer.epochs")), "trainer.epochs=3"]
    completed = run_mlpx([*args, "tracking.best_metric=val_accuracy"], cwd=workdir)
    assert completed.returncode == 1
    assert "tracking.best_metric=val_accuracy: the epochs report no such metric" in completed.stderr
    assert "val_acc" in completed.stderr.split("validation metrics:")[1]
    client, (run,) = _runs(workdir)
    assert run.info.status == "FAILED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_ce")] == [1]
