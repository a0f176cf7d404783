"""The checks API, every built-in passing every check, the network check, and the checks in the CLI."""

import json
import time

import numpy as np
import pytest

from mlpx.builtins.activations import ReLU
from mlpx.builtins.initializers import HeNormal
from mlpx.builtins.losses import CrossEntropy
from mlpx.checks import CHECKED_KINDS, TOLERANCES, check_component, check_network, check_plugin, tolerances
from mlpx.core.model import MLP
from mlpx.errors import PluginError
from mlpx.plugins.manager import load_plugins
from tests.conftest import SMALL

BUILTINS = [c for c in load_plugins(plugins_dirs=[]).registry.components() if c.kind in CHECKED_KINDS]


@pytest.mark.parametrize("component", BUILTINS, ids=[f"{c.kind}-{c.name}" for c in BUILTINS])
def test_every_builtin_passes_every_check(component):
    report = check_component(component)
    assert report.ok, str(report)
    assert report.source == "built-in, version 0.1.0"
    if component.kind == "optimizer":  # each built-in algorithm is compared with its reference
        assert "reference" in report.passed and any("matches the reference" in n for n in report.notes)
    if component.kind == "initializer":
        assert "spread" in report.passed


def test_checking_every_builtin_is_fast():
    started = time.perf_counter()
    for component in BUILTINS:
        check_component(component)
    assert time.perf_counter() - started < 5.0  # about 0.1 s on a quiet machine; the budget is 1 s


def test_report_names_each_problem_with_measured_and_allowed_values():
    class Doubled(ReLU):
        def backward(self, z, a, grad_a):
            return 2 * super().backward(z, a, grad_a)

    report = check_plugin("activation", Doubled(), name="doubled", source="tests")
    assert not report.ok
    (problem,) = report.problems
    assert problem.check == "gradient" and problem.allowed == tolerances(np.float64).gradient
    assert problem.measured == pytest.approx(0.5)
    text = str(report)
    assert text.startswith(
        "activation 'doubled' (tests): FAILED 1 of 6 checks"
    )  # out_path too: ReLU.forward takes out=
    assert "a constant 2 times the true gradient" in text
    assert json.loads(json.dumps(report.as_dict()))["problems"][0]["check"] == "gradient"


def test_same_seed_same_report_and_unknown_kinds_are_refused():
    assert str(check_plugin("loss", CrossEntropy(), seed=3)) == str(
        check_plugin("loss", CrossEntropy(), seed=3)
    )
    with pytest.raises(PluginError, match="datasets|dataset"):
        check_plugin("dataset", object())


def test_tolerances_are_one_table_keyed_by_dtype():
    assert set(TOLERANCES) == {np.dtype(np.float64), np.dtype(np.float32)}
    assert tolerances(np.float64).gradient < tolerances(np.float32).gradient
    with pytest.raises(ValueError):
        tolerances(np.float16)


# ---------------------------------------------------------------- the assembled network


def _network(model_class=MLP):
    rng = np.random.default_rng(0)
    model = model_class([6, 5, 4, 3], ReLU(), HeNormal(), rng, dtype=np.float64)
    x = rng.standard_normal((8, 6))
    y = np.eye(3)[rng.integers(0, 3, 8)]
    return model, x, y


def test_network_check_passes_on_the_model_and_localises_a_wrong_layer():
    model, x, y = _network()
    result = check_network(model, CrossEntropy(), x, y, np.random.default_rng(1))
    assert result.ok and result.error < 1e-7, str(result)
    assert [layer.key for layer in result.layers] == ["W1", "b1", "W2", "b2", "W3", "b3"]

    class SeedBiasBug(MLP):  # the seed's bias update: only the last sample's delta counts
        def backward(self, d_logits):
            grads = super().backward(d_logits)
            grads["b3"][...] = d_logits[-1]
            return grads

    model, x, y = _network(SeedBiasBug)
    result = check_network(model, CrossEntropy(), x, y, np.random.default_rng(1))
    assert not result.ok
    wrong = [layer.key for layer in result.layers if layer.error > result.tolerance]
    assert wrong == ["b3"], str(result)
    assert "b3" in str(result) and "WRONG" in str(result)


def test_network_check_reports_a_plugin_that_crashes_inside_the_network():
    class Crashes(ReLU):
        def backward(self, z, a, grad_a):
            raise RuntimeError("boom")

    model, x, y = _network()
    model.activation = Crashes()
    result = check_network(model, CrossEntropy(), x, y, np.random.default_rng(1))
    assert not result.ok and "RuntimeError: boom" in str(result)


# ---------------------------------------------------------------- the command line and the run


def test_mlpx_check_exit_codes_and_the_seed_fingerprint(tmp_path, run_mlpx):
    from mlpx.plugin_files import DEFAULT_PLUGINS_DIR

    env = {"MLPX_PLUGINS_DIR": str(DEFAULT_PLUGINS_DIR)}
    everything = run_mlpx(["check"], cwd=tmp_path, env=env)
    assert everything.returncode == 1  # the shipped seed_backprop example fails, on purpose
    assert "FAIL  loss         seed_backprop" in everything.stdout
    assert "squared error through softmax" in everything.stdout
    assert "not of this loss's value (cross-entropy)" in everything.stdout
    assert "ok    activation   swish" in everything.stdout

    named = run_mlpx(["check", "--json", "relu", "adamw"], cwd=tmp_path, env=env)
    assert named.returncode == 0, named.stderr
    listing = json.loads(named.stdout)
    assert [(r["kind"], r["name"], r["ok"]) for r in listing["reports"]] == [
        ("activation", "relu", True),
        ("optimizer", "adamw", True),
    ]
    assert run_mlpx(["check", "no_such_plugin"], cwd=tmp_path, env=env).returncode == 2
    assert run_mlpx(["check", "--verbose"], cwd=tmp_path, env=env).returncode == 2


def test_run_refuses_to_start_on_a_failed_check_and_the_switch_skips_checks(workdir, run_mlpx):
    from mlflow import MlflowClient

    from mlpx.plugin_files import DEFAULT_PLUGINS_DIR
    from tests.conftest import store_uri

    env = {"MLPX_PLUGINS_DIR": str(DEFAULT_PLUGINS_DIR), "HYDRA_FULL_ERROR": "0"}
    small = [o for o in SMALL if not o.startswith("trainer.epochs")] + ["trainer.epochs=1"]
    refused = run_mlpx([*small, "loss=seed_backprop"], cwd=workdir, env=env)
    assert refused.returncode == 1
    assert "loss 'seed_backprop' (" in refused.stderr and "seed_backprop.py, version local)" in refused.stderr
    assert "not of this loss's value (cross-entropy)" in refused.stderr
    assert "epoch 1/1" not in refused.stderr and "Traceback" not in refused.stderr

    trained = run_mlpx([*small, "loss=seed_backprop", "checks.enabled=false"], cwd=workdir, env=env)
    assert trained.returncode == 0, trained.stderr
    passed = run_mlpx(small, cwd=workdir, env=env)
    assert passed.returncode == 0, passed.stderr

    client = MlflowClient(store_uri(workdir))
    runs = client.search_runs([client.get_experiment_by_name("mlpx").experiment_id], order_by=["start_time"])
    statuses = [(r.info.status, r.data.tags["mlpx.plugin.loss"]) for r in runs]
    assert sorted(statuses) == sorted(
        [("FAILED", "seed_backprop"), ("FINISHED", "seed_backprop"), ("FINISHED", "cross_entropy")]
    )
    by_state = {(r.info.status, r.data.tags["mlpx.plugin.loss"]): r for r in runs}
    failed = by_state[("FAILED", "seed_backprop")]
    assert "seed_backprop" in failed.data.tags["mlpx.error"]
    assert failed.data.metrics["gradcheck_rel_err"] > 1e-2  # the wrong loss gradient reaches every layer
    assert by_state[("FINISHED", "cross_entropy")].data.metrics["gradcheck_rel_err"] < 1e-6
    assert "gradcheck_rel_err" not in by_state[("FINISHED", "seed_backprop")].data.metrics


def test_bug_shapes_are_named_in_words():
    from mlpx.checks.diagnose import bug_shape

    tol = tolerances(np.float64)
    true = np.random.default_rng(0).standard_normal((5, 4))
    last_row = np.zeros_like(true)
    last_row[-1] = true[-1]
    dropped = true.copy()
    dropped[true < 0] = 0
    cases = {
        "a constant 3 times": 3 * true,
        "wrong sign everywhere": -true,
        "5 times (the batch size)": 5 * true,
        "every entry is the same number": np.full_like(true, 0.25),
        "only the last row": last_row,
        "zero at": dropped,
        "zero everywhere": np.zeros_like(true),
    }
    for words, wrong in cases.items():
        assert words in bug_shape(wrong, true, tol, batch=5), words
    assert bug_shape(true + 1e-3 * np.sin(true), true, tol) is None  # no known shape: say nothing
