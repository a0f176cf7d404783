"""hparams_search=optuna: every trial an MLflow child run, val_ce reported per epoch, bad trials pruned."""

import optuna
from mlflow import MlflowClient

from tests.conftest import SMALL, store_uri


def test_optuna_search_reports_every_epoch_and_prunes(workdir, run_mlpx):
    storage = f"sqlite:///{workdir / 'optuna.db'}"
    small = [o for o in SMALL if not o.startswith(("trainer.epochs", "model.hidden"))]
    completed = run_mlpx(
        [
            "-m",
            "hparams_search=optuna",
            "hydra.sweeper.n_trials=6",
            "hydra.sweeper.n_startup_trials=2",
            f"hydra.sweeper.storage={storage}",
            "hydra.sweeper.study_name=test",
            "trainer.epochs=3",
            *small,
        ],
        cwd=workdir,
    )
    assert completed.returncode == 0, completed.stderr
    study = optuna.load_study(study_name="test", storage=storage)
    states = [t.state.name for t in study.trials]
    assert len(states) == 6 and set(states) <= {"COMPLETE", "PRUNED"}
    assert "PRUNED" in states and "COMPLETE" in states

    client = MlflowClient(store_uri(workdir))
    experiment = client.get_experiment_by_name("mlpx")
    runs = client.search_runs([experiment.experiment_id])
    children = {r.data.tags["mlpx.optuna.trial"]: r for r in runs if "mlflow.parentRunId" in r.data.tags}
    assert sorted(children) == [str(t.number) for t in study.trials]
    for trial in study.trials:
        run = children[str(trial.number)]
        assert run.info.status == "FINISHED"
        assert run.data.tags["mlpx.optuna.state"] == trial.state.name
        history = sorted(client.get_metric_history(run.info.run_id, "val_ce"), key=lambda m: m.step)
        # what the trial saw is what MLflow logged, epoch by epoch
        assert trial.intermediate_values == {m.step: m.value for m in history}
        assert run.data.params["optimizer.lr"] == str(trial.params["optimizer.lr"])
        if trial.state.name == "PRUNED":
            assert len(history) < 3 and "pruned by Optuna" in run.data.tags["mlpx.stopped_early"]
        else:
            assert len(history) == 3 and trial.value == history[-1].value
