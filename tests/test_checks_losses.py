"""Loss checks: each fails on a loss broken for it, the fingerprint names the classic mistakes,
and valid variants written differently pass."""

import numpy as np
import pytest

from mlpx.checks import check_plugin, tolerances


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


class ClippedCE:  # cross-entropy as often written by hand: clipped logs, mean over the batch
    def value(self, logits, y):
        return float(-np.sum(y * np.log(np.clip(softmax(logits), 1e-12, 1.0))) / len(logits))

    def grad(self, logits, y):
        return (softmax(logits) - y) / len(logits)

    def probs(self, logits):
        return softmax(logits)


class MeanSquaredAll:  # PyTorch's MSELoss: a mean over every element, still a mean of row means
    def value(self, logits, y):
        return float(np.mean((logits - y) ** 2))

    def grad(self, logits, y):
        return 2 * (logits - y) / logits.size

    def probs(self, logits):
        return softmax(logits)


class PairwiseSoftmaxCE:  # softmax as 1 / sum exp(z_j - z_i): exp overflows with a warning, stays finite
    def probs(self, logits):
        return 1 / np.exp(logits[:, None, :] - logits[:, :, None]).sum(axis=2)

    def value(self, logits, y):
        return float(-np.mean(np.sum(y * np.log(np.maximum(self.probs(logits), 1e-30)), axis=1)))

    def grad(self, logits, y):
        return (self.probs(logits) - y) / len(logits)


class MultiClassHinge:  # a loss with kinks
    def value(self, logits, y):
        correct = np.sum(logits * y, axis=1, keepdims=True)
        return float((np.maximum(0, 1 + logits - correct) * (1 - y)).sum(axis=1).mean())

    def grad(self, logits, y):
        correct = np.sum(logits * y, axis=1, keepdims=True)
        active = ((1 + logits - correct) > 0) * (1 - y)
        return (active - y * active.sum(axis=1, keepdims=True)) / len(logits)

    def probs(self, logits):
        return softmax(logits)


@pytest.mark.parametrize("loss", [ClippedCE(), MeanSquaredAll(), PairwiseSoftmaxCE(), MultiClassHinge()])
def test_valid_variants_pass(loss):
    report = check_plugin("loss", loss)
    assert report.ok, str(report)


# ---------------------------------------------------------------- gradient and its fingerprints


class SeedLoss(ClippedCE):
    def grad(self, logits, y):
        p = softmax(logits)
        e = p - y
        return p * (e - (e * p).sum(axis=1, keepdims=True)) / len(logits)


class NoBatchMean(ClippedCE):
    def grad(self, logits, y):
        return softmax(logits) - y


class FlippedSign(ClippedCE):
    def grad(self, logits, y):
        return (y - softmax(logits)) / len(logits)


class LastRowOnly(ClippedCE):
    def grad(self, logits, y):
        for i in range(len(logits)):
            out = np.zeros_like(logits)  # re-created every sample: only the last one survives
            out[i] = (softmax(logits[i : i + 1])[0] - y[i]) / len(logits)
        return out


class DiagonalJacobian(ClippedCE):
    def value(self, logits, y):
        return float(0.5 * np.sum((softmax(logits) - y) ** 2, axis=1).mean())

    def grad(self, logits, y):
        p = softmax(logits)
        return p * (1 - p) * (p - y) / len(logits)


class HalfMissing(MeanSquaredAll):
    def grad(self, logits, y):
        return (logits - y) / logits.size


@pytest.mark.parametrize(
    "broken, words",
    [
        (
            SeedLoss(),
            "the gradient is that of squared error through softmax (1/2 ||softmax(z) - y||^2), "
            "not of this loss's value (cross-entropy)",
        ),
        (NoBatchMean(), "cross-entropy without the 1/batch of the mean"),
        (FlippedSign(), "with the sign flipped"),
        (LastRowOnly(), "only for the last row"),
        (DiagonalJacobian(), "only the diagonal of the softmax Jacobian"),
        (HalfMissing(), "a constant 0.5 times the true gradient"),
    ],
    ids=["seed", "no_batch_mean", "sign", "last_row", "diagonal", "factor"],
)
def test_gradient_check_fails_and_fingerprints_the_mistake(broken, words):
    report = check_plugin("loss", broken)
    assert "gradient" in [p.check for p in report.problems], str(report)
    gradient = next(p for p in report.problems if p.check == "gradient")
    assert words.lower() in gradient.explanation.lower(), gradient
    assert gradient.measured > 100 * gradient.allowed and gradient.allowed == tolerances(np.float64).gradient


def test_seed_fingerprint_is_the_only_problem():
    report = check_plugin("loss", SeedLoss(), name="seed_backprop")
    assert [p.check for p in report.problems] == ["gradient"]
    assert "loss 'seed_backprop'" in str(report) and "squared error through softmax" in str(report)


# ---------------------------------------------------------------- conventions, extremes, mutation


class SumOverBatch(ClippedCE):  # consistent value and gradient, but of the sum
    def value(self, logits, y):
        return super().value(logits, y) * len(logits)

    def grad(self, logits, y):
        return softmax(logits) - y


def test_batch_mean_fails_on_a_sum():
    report = check_plugin("loss", SumOverBatch())
    assert {p.check for p in report.problems} == {"batch_mean"}, str(report)
    assert "sum over the batch" in report.problems[0].explanation


class GlobalMaxSoftmax(ClippedCE):  # the seed's softmax: x - np.max(x) over the whole batch
    def _softmax(self, logits):
        e = np.exp(logits - np.max(logits))
        return e / e.sum(axis=1, keepdims=True)

    def value(self, logits, y):
        return float(-np.mean(np.sum(y * np.log(np.clip(self._softmax(logits), 1e-12, 1)), axis=1)))

    def grad(self, logits, y):
        return (self._softmax(logits) - y) / len(logits)

    def probs(self, logits):
        return self._softmax(logits)


class UnclippedLog(ClippedCE):
    def value(self, logits, y):
        return float(-np.mean(np.sum(y * np.log(softmax(logits)), axis=1)))


@pytest.mark.parametrize("broken", [GlobalMaxSoftmax(), UnclippedLog()], ids=["global_max", "log_zero"])
def test_extreme_logits_fail_when_not_finite(broken):
    report = check_plugin("loss", broken)
    assert {p.check for p in report.problems} == {"extreme_logits"}, str(report)


class ShiftsInPlace(ClippedCE):
    def value(self, logits, y):
        logits -= logits.max(axis=1, keepdims=True)
        return super().value(logits, y)


def test_no_mutation_fails_on_an_in_place_shift():
    report = check_plugin("loss", ShiftsInPlace())
    assert {p.check for p in report.problems} == {"no_mutation"}, str(report)


class ColumnSoftmax(ClippedCE):
    def probs(self, logits):
        e = np.exp(logits - logits.max(axis=0))
        return e / e.sum(axis=0)


def test_probs_fail_when_rows_do_not_sum_to_one():
    report = check_plugin("loss", ColumnSoftmax())
    assert "probs" in {p.check for p in report.problems}, str(report)
    assert "axis 0 instead of axis 1" in next(p for p in report.problems if p.check == "probs").explanation


class PerRowValues(ClippedCE):
    def value(self, logits, y):
        return -np.sum(y * np.log(softmax(logits)), axis=1)


class TransposedGrad(ClippedCE):
    def grad(self, logits, y):
        return super().grad(logits, y).T


@pytest.mark.parametrize("broken, words", [(PerRowValues(), "one number"), (TransposedGrad(), "transpose")])
def test_interface_fails_on_wrong_shapes(broken, words):
    report = check_plugin("loss", broken)
    assert [p.check for p in report.problems] == ["interface"], str(report)
    assert words in f"{report.problems[0].measured} {report.problems[0].allowed}"


class FusedCE(ClippedCE):
    def value_and_grad(self, logits, y):
        p = softmax(logits)
        return float(-np.sum(y * np.log(np.clip(p, 1e-12, 1.0))) / len(logits)), (p - y) / len(logits)


class FusedForgetsBatch(FusedCE):
    def value_and_grad(self, logits, y):
        value, grad = super().value_and_grad(logits, y)
        return value, grad * len(logits)


def test_value_and_grad_fast_path_must_equal_value_and_grad():
    good = check_plugin("loss", FusedCE())
    assert good.ok and "value_and_grad" in good.passed, str(good)
    bad = check_plugin("loss", FusedForgetsBatch())
    assert [p.check for p in bad.problems] == ["value_and_grad"], str(bad)
