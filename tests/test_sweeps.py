"""Sweeps that scale: parallel jobs on a brand-new store, and a real `mlflow server` on loopback."""

import csv

from mlflow import MlflowClient

from tests.conftest import SMALL, store_uri


def _sweep_runs(client):
    experiment = client.get_experiment_by_name("mlpx")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("mlpx.sweep") == "parent"]
    assert len(parents) == 1, [r.data.tags for r in runs]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    return parents[0], children


def _assert_complete(client, parent, children, expected_jobs, epochs=2):
    assert parent.info.status == "FINISHED"
    assert len(children) == expected_jobs
    for run in children:
        assert run.info.status == "FINISHED", run.data.tags.get("mlpx.error")
        for key in ("train_loss", "val_ce", "val_acc", "epoch_seconds"):
            steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, key))
            assert steps == list(range(1, epochs + 1)), (run.info.run_name, key)
        assert "test_acc" in run.data.metrics


def test_parallel_jobs_on_a_brand_new_store_lose_nothing(tmp_path, run_mlpx):
    completed = run_mlpx(
        ["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=4", "optimizer.lr=0.01,0.03,0.1,0.3", *SMALL],
        cwd=tmp_path,  # no outputs/ yet: the sweep creates and migrates the store once
    )
    assert completed.returncode == 0, completed.stderr
    assert "database is locked" not in completed.stderr
    assert "_alembic_tmp" not in completed.stderr
    client = MlflowClient(store_uri(tmp_path))
    parent, children = _sweep_runs(client)
    _assert_complete(client, parent, children, expected_jobs=4)
    assert sorted(r.data.params["optimizer.lr"] for r in children) == ["0.01", "0.03", "0.1", "0.3"]
    assert len({r.data.tags["mlpx.output_dir"] for r in children}) == 4


def test_sweep_against_a_real_tracking_server(tmp_path, run_mlpx, mlflow_server):
    completed = run_mlpx(
        ["-m", "tracking=server", "optimizer.lr=0.05,0.1", *SMALL],
        cwd=tmp_path,
        env={"MLFLOW_TRACKING_URI": mlflow_server},
    )
    assert completed.returncode == 0, completed.stderr
    assert not (tmp_path / "outputs" / "mlflow.db").exists()  # nothing went to the local store
    client = MlflowClient(mlflow_server)
    parent, children = _sweep_runs(client)
    _assert_complete(client, parent, children, expected_jobs=2)
    artifacts = {a.path for a in client.list_artifacts(children[0].info.run_id)}
    assert {"config.yaml", "weights.npz"} <= artifacts
    local = client.download_artifacts(children[0].info.run_id, "config.yaml", str(tmp_path))
    assert mlflow_server in open(local).read()  # served back through the server


def test_sweep_summary_on_the_parent_run(workdir, run_mlpx, tmp_path):
    small = [o for o in SMALL if not o.startswith("model.hidden")]
    completed = run_mlpx(["-m", "optimizer.lr=0.01,0.2", "model.hidden=[16],[0]", *small], cwd=workdir)
    assert completed.returncode == 1  # the [0] jobs fail; the summary still covers all four
    client = MlflowClient(store_uri(workdir))
    parent, children = _sweep_runs(client)
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"sweep_summary.csv", "sweep_summary.md", "sweep_val_ce.png"} <= artifacts
    with open(client.download_artifacts(parent.info.run_id, "sweep_summary.csv", str(tmp_path))) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4
    assert {"optimizer.lr", "model.hidden", "status", "seconds", "val_ce", "val_acc"} <= set(rows[0])
    assert sorted(r["status"] for r in rows) == ["FAILED", "FAILED", "FINISHED", "FINISHED"]
    finished = [r for r in children if r.info.status == "FINISHED"]
    best = min(finished, key=lambda r: r.data.metrics["val_ce"])  # the default objective
    assert parent.data.tags["mlpx.sweep.best_run_id"] == best.info.run_id
    assert parent.data.tags["mlpx.sweep.best_metric"] == "min val_ce"
    assert parent.data.metrics["best_val_ce"] == best.data.metrics["val_ce"]


def test_a_job_failing_in_a_worker_before_its_run_exists_fails_the_sweep(workdir, run_mlpx):
    # ++ adds momentum to sgd's options, which have no such key: that job stops before its run
    args = ["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "optimizer=momentum,sgd"]
    completed = run_mlpx([*args, "++optimizer.momentum=0.5", *SMALL], cwd=workdir)
    assert completed.returncode == 1
    assert "1 of 2 jobs failed" in completed.stderr
    assert "optimizer.momentum is not a key of optimizer" in completed.stderr
    assert "(no MLflow run)" in completed.stderr
    parent, children = _sweep_runs(MlflowClient(store_uri(workdir)))
    assert [r.info.status for r in children] == ["FINISHED"]
    assert parent.info.status == "FAILED"
    assert parent.data.tags["mlpx.sweep.jobs"] == "2" and parent.data.tags["mlpx.sweep.failed"] == "1"


def test_the_sweeps_best_run_is_judged_at_each_jobs_restored_epoch(workdir, run_mlpx):
    early = ["trainer.lr_schedule=constant", "optimizer=adam", "optimizer.lr=0.003"]
    early += ["trainer.early_stopping.enabled=true", "trainer.early_stopping.monitor=val_ce"]
    early += ["trainer.early_stopping.patience=2", "trainer.epochs=30"]
    small = [o for o in SMALL if not o.startswith("trainer.epochs")]
    completed = run_mlpx(["-m", "seed=0,1", *small, *early], cwd=workdir)
    assert completed.returncode == 0, completed.stderr
    client = MlflowClient(store_uri(workdir))
    parent, children = _sweep_runs(client)
    at_restored = {}
    for run in children:
        restored = int(run.data.tags["mlpx.restored_epoch"])
        history = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "val_ce")}
        assert max(history) > restored  # it trained on past the epoch it went back to
        at_restored[run.info.run_id] = history[restored]
    best = min(at_restored, key=at_restored.get)
    assert parent.data.tags["mlpx.sweep.best_run_id"] == best
    assert parent.data.metrics["best_val_ce"] == at_restored[best]  # not the last epoch's value
