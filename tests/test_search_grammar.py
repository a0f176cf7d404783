"""hparams_search=optuna reads its space in Hydra's override grammar, as hydra-optuna-sweeper does."""

import math

import optuna
import pytest
import yaml
from mlflow import MlflowClient
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from mlpx.sweeps import search
from tests.conftest import SMALL, store_uri


def test_command_line_sweeps_bound_every_trial_and_results_are_written(workdir, run_mlpx):
    storage = f"sqlite:///{workdir / 'optuna.db'}"
    completed = run_mlpx(
        [
            "-m",
            "hparams_search=optuna",
            "optimizer.lr=tag(log, interval(0.01, 0.2))",
            "activation=choice(relu, tanh)",
            "hydra.sweeper.n_trials=4",
            "hydra.sweeper.n_startup_trials=2",
            f"hydra.sweeper.storage={storage}",
            "hydra.sweeper.study_name=grammar",
            *SMALL,
        ],
        cwd=workdir,
    )
    assert completed.returncode == 0, completed.stderr
    study = optuna.load_study(study_name="grammar", storage=storage)
    assert len(study.trials) == 4
    for trial in study.trials:
        assert 0.01 <= trial.params["optimizer.lr"] <= 0.2
        assert trial.params["activation"] in ("relu", "tanh")
        assert trial.params["trainer.batch_size"] in (64, 128, 256)  # from conf/hparams_search/optuna.yaml
        assert "model.hidden" not in trial.params  # fixed by SMALL's model.hidden=[32,16]
        assert trial.distributions["optimizer.lr"] == FloatDistribution(0.01, 0.2, log=True)

    client = MlflowClient(store_uri(workdir))
    experiment = client.get_experiment_by_name("mlpx")
    runs = client.search_runs([experiment.experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 4
    for run in children:
        assert 0.01 <= float(run.data.params["optimizer.lr"]) <= 0.2
        assert run.data.params["activation.name"] in ("relu", "tanh")  # activation is a config group
        assert run.data.params["model.hidden"] == "[32, 16]"

    (results_file,) = (workdir / "outputs" / "multirun").rglob("optimization_results.yaml")
    results = yaml.safe_load(results_file.read_text())
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert results["metric"] == "val_ce" and results["direction"] == "minimize"
    assert results["best_value"] == pytest.approx(study.best_value)
    assert results["best_params"] == study.best_params
    assert results["trials"]["COMPLETE"] == len(complete)
    # the objective is the trial's last val_ce, logged by its MLflow run
    best = next(r for r in children if r.data.tags["mlpx.optuna.trial"] == str(study.best_trial.number))
    assert math.isclose(best.data.metrics["val_ce"], study.best_value)


@pytest.mark.parametrize(
    "override, message",
    [
        # a quoted string in the config's space, read by the sweeper
        ("hydra.sweeper.params.activation='choice(relu,'", "hydra.sweeper.params.activation: 'choice(relu,'"),
        ("optimizer.lr=tag(log, interval(0, 0.2))", "override 'optimizer.lr=tag(log, interval(0, 0.2))'"),
    ],
)
def test_a_malformed_space_is_a_clear_error_naming_the_parameter(workdir, run_mlpx, override, message):
    args = ["-m", "hparams_search=optuna", override, *SMALL]
    completed = run_mlpx(args, cwd=workdir, env={"HYDRA_FULL_ERROR": "0"})
    assert completed.returncode == 1
    assert message in completed.stderr
    assert "Traceback" not in completed.stderr  # a compact Hydra error: the message alone


def test_grammar_and_the_older_yaml_format_map_to_optuna_distributions():
    space, fixed = search.search_space(
        {
            "optimizer.lr": "tag(log, interval(1e-3, 0.3))",
            "trainer.batch_size": {"type": "categorical", "choices": [64, 128]},  # the older format
            "trainer.epochs": {"type": "int", "low": 2, "high": 6},
            "model": {"hidden": 'choice("[300,75]", "[128]")'},  # hydra.sweeper.params.model.hidden=...
            "activation": "choice(relu, tanh, leaky_relu)",
        },
        ["activation=relu,tanh", "seed=int(interval(0, 9))", "init=range(1, 8, 3)", "data.train_size=2000"],
    )
    assert space == {
        "optimizer.lr": FloatDistribution(1e-3, 0.3, log=True),
        "trainer.batch_size": CategoricalDistribution([64, 128]),
        "trainer.epochs": IntDistribution(2, 6),
        "model.hidden": CategoricalDistribution(["[300,75]", "[128]"]),
        "activation": CategoricalDistribution(["relu", "tanh"]),  # the command line wins
        "seed": IntDistribution(0, 9),
        "init": IntDistribution(1, 7, step=3),  # Hydra's range excludes its end
    }
    assert fixed == ["data.train_size=2000"]
    overrides = search.overrides_for({"optimizer.lr": 0.05, "model.hidden": "[128]", "flag": True})
    assert overrides == ["optimizer.lr=0.05", "model.hidden=[128]", "flag=true"]
    for bad, name in [
        ({"optimizer.lr": "interval(0.01,"}, "hydra.sweeper.params.optimizer.lr"),
        ({"activation": "tag(log, choice(relu, tanh))"}, "hydra.sweeper.params.activation"),
        ({"optimizer.lr": "interval(0.2, 0.01)"}, "hydra.sweeper.params.optimizer.lr"),
        ({"trainer.epochs": "range(5, 1)"}, "hydra.sweeper.params.trainer.epochs"),
    ]:
        with pytest.raises(search.SearchSpaceError, match=name.replace(".", r"\.")):
            search.search_space(bad, [])
