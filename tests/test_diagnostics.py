"""Diagnosis rules fire on the symptom they name and stay quiet on a healthy run.

Histories come from real short training runs on MNIST where a few seconds can show the symptom;
the rest are written out by hand with the numbers of the symptom.
"""

import numpy as np
import pytest

from mlpx.builtins.activations import ReLU, Sigmoid
from mlpx.builtins.datasets import Mnist
from mlpx.builtins.initializers import GlorotUniform, HeNormal
from mlpx.builtins.losses import CrossEntropy
from mlpx.builtins.optimizers import SGD, Adam, Momentum
from mlpx.core.calibration import calibration_metrics
from mlpx.core.model import MLP
from mlpx.core.trainer import fit
from mlpx.diagnostics.rules import diagnose, render


@pytest.fixture(scope="module")
def small_mnist(tmp_path_factory):
    return Mnist(train_size=3000, val_size=2000, cache_dir=str(tmp_path_factory.mktemp("cache"))).load()


def _history(data, hidden, activation, initializer, optimizer, epochs, schedule="constant"):
    model = MLP([784, *hidden, 10], activation, initializer, np.random.default_rng(0))
    fitted = fit(
        model,
        CrossEntropy(),
        optimizer,
        data,
        epochs=epochs,
        batch_size=128,
        rng=np.random.default_rng(1),
        lr_schedule=schedule,
        health=True,
    )
    return fitted.history


def _rules(history, loss="cross_entropy"):
    return [f.rule for f in diagnose(history, loss)]


def test_health_metrics_are_logged_per_layer(small_mnist):
    history = _history(small_mnist, [64, 32], ReLU(), HeNormal(), Momentum(lr=0.05), 1)
    keys = set(history[0])
    for name in ("grad_norm", "update_ratio", "weight_norm"):
        assert {f"{name}/layer1", f"{name}/layer2", f"{name}/layer3"} <= keys
    assert {"dead_units/layer1", "dead_units/layer2"} <= keys
    assert {"val_confidence", "val_ece", "val_ce_top1pct_share"} <= keys


def test_healthy_run_gets_no_finding(small_mnist):
    history = _history(small_mnist, [64, 32], ReLU(), HeNormal(), Momentum(lr=0.05), 4, "cosine")
    assert _rules(history) == []
    assert "No problem found" in render([], history)


def test_overconfidence_fires_when_val_ce_rises_while_accuracy_holds(small_mnist):
    history = _history(small_mnist, [128], ReLU(), HeNormal(), Adam(lr=3e-3), 25)
    findings = diagnose(history, "cross_entropy")
    assert [f.rule for f in findings] == ["overconfidence"]
    message = findings[0].message
    assert "lowest at epoch" in message and "confidence" in message and "ECE" in message
    assert "most confidently wrong" in message


def test_learning_rate_too_low_fires_on_tiny_updates(small_mnist):
    history = _history(small_mnist, [64], ReLU(), HeNormal(), SGD(lr=1e-4), 3)
    assert _rules(history) == ["learning rate too low"]


def test_learning_rate_too_high_and_dead_units(small_mnist):
    history = _history(small_mnist, [64, 32], ReLU(), HeNormal(), SGD(lr=1.5), 8)
    assert set(_rules(history)) == {"learning rate too high", "dead units"}


def test_vanishing_gradients_in_a_deep_sigmoid_network(small_mnist):
    history = _history(small_mnist, [64] * 8, Sigmoid(), GlorotUniform(), SGD(lr=0.05), 2)
    assert "vanishing gradients" in _rules(history)


def _epochs(**series):
    length = len(next(iter(series.values())))
    return [{key: values[i] for key, values in series.items()} for i in range(length)]


def test_training_loss_that_is_not_cross_entropy_is_named():
    # the seed's case, with the figures of `python -m mlpx +experiment=seed_question`
    history = _epochs(
        train_loss=[0.06, 0.02, 0.01, 0.006, 0.004],
        val_loss=[0.03, 0.02, 0.018, 0.017, 0.017],
        val_ce=[0.16, 0.08, 0.09, 0.11, 0.126],
        val_acc=[0.955, 0.977, 0.978, 0.979, 0.98],
    )
    findings = diagnose(history, "mse_softmax")
    assert [f.rule for f in findings] == ["training loss is not cross-entropy"]
    assert "Your training loss is mse_softmax; it does not penalise confident mistakes" in findings[0].message


def test_plain_overfitting():
    history = _epochs(
        train_loss=[0.5, 0.2, 0.1, 0.05, 0.02],
        val_loss=[0.45, 0.3, 0.33, 0.4, 0.5],
        val_ce=[0.45, 0.3, 0.33, 0.4, 0.5],
        val_acc=[0.85, 0.91, 0.9, 0.885, 0.87],
    )
    assert "overfitting" in _rules(history)


def test_exploding_gradients():
    history = _epochs(
        train_loss=[2.3, 2.2, 2.1],
        **{"grad_norm/layer1": [1.0, 50.0, 4000.0], "grad_norm/layer2": [1.0, 10.0, 800.0]},
    )
    assert "exploding gradients" in _rules(history)


@pytest.mark.parametrize("final_acc, fires", [(0.11, True), (0.9, False)])
def test_huge_first_steps_then_a_flat_loss_at_chance_is_a_learning_rate_too_high(final_acc, fires):
    history = _epochs(
        train_loss=[3.45, 2.24, 2.30, 2.30, 2.30, 2.30],
        val_acc=[0.11, 0.11, 0.11, 0.11, 0.11, final_acc],
        **{"update_ratio/layer1": [0.02, 0.0, 0.0, 0.0, 0.0, 0.0]},
    )
    findings = [f for f in diagnose(history, "cross_entropy") if f.rule == "learning rate too high"]
    assert bool(findings) == fires
    if fires:
        assert "stalled at a training loss of 2.3000" in findings[0].message


def test_rules_stay_quiet_without_the_metrics_they_need():
    assert diagnose([{"train_loss": 1.0}], "cross_entropy") == []
    assert diagnose([], "cross_entropy") == []


def test_calibration_metrics_against_hand_computed_values():
    # three examples: confidently right, confidently wrong, unsure and right
    logits = np.log(np.array([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4]]))
    labels = np.array([0, 1, 0])
    result = calibration_metrics(logits, labels, n_bins=10)
    assert result["confidence"] == pytest.approx((0.9 + 0.8 + 0.6) / 3)
    # bins: 0.6 -> acc 1, conf 0.6; 0.8 -> acc 0, conf 0.8; 0.9 -> acc 1, conf 0.9
    assert result["ece"] == pytest.approx((0.4 + 0.8 + 0.1) / 3)
    losses = -np.log([0.9, 0.2, 0.6])
    assert result["top1pct_share"] == pytest.approx(losses[1] / losses.sum())
