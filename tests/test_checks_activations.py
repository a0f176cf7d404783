"""Activation checks: each fails on a plugin broken for it, and valid variants written differently pass."""

import math

import numpy as np
import pytest

from mlpx.checks import check_plugin, tolerances


class Tanh:  # a correct reference point, written independently of the built-ins
    def forward(self, z):
        return np.tanh(z)

    def backward(self, z, a, grad_a):
        return grad_a * (1 - a * a)


class LeakyWhere:
    def __init__(self, alpha=0.1):
        self.alpha = alpha

    def forward(self, z):
        return np.where(z > 0, z, self.alpha * z)

    def backward(self, z, a, grad_a):
        return np.where(z > 0, grad_a, self.alpha * grad_a)


class SigmoidTextbook:  # exp(-z) overflows (with a warning) for z = -1e3, yet stays finite
    def forward(self, z):
        return 1 / (1 + np.exp(-z))

    def backward(self, z, a, grad_a):
        return grad_a * a * (1 - a)


class ELUWhere:  # np.where evaluates exp(1000) = inf in the branch it then discards
    def forward(self, z):
        return np.where(z > 0, z, np.exp(z) - 1)

    def backward(self, z, a, grad_a):
        return np.where(z > 0, grad_a, grad_a * np.exp(z))


class Hardtanh:  # kinks at -1 and 1, not only at 0
    def forward(self, z):
        return np.clip(z, -1, 1)

    def backward(self, z, a, grad_a):
        return grad_a * ((z > -1) & (z < 1))


class SoftmaxUnits:  # not elementwise: backward is a full vector-Jacobian product
    def forward(self, z):
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def backward(self, z, a, grad_a):
        return a * (grad_a - (grad_a * a).sum(axis=1, keepdims=True))


class GELUTanh:
    c = math.sqrt(2 / math.pi)

    def forward(self, z):
        return 0.5 * z * (1 + np.tanh(self.c * (z + 0.044715 * z**3)))

    def backward(self, z, a, grad_a):
        t = np.tanh(self.c * (z + 0.044715 * z**3))
        return grad_a * (0.5 * (1 + t) + 0.5 * z * (1 - t * t) * self.c * (1 + 3 * 0.044715 * z * z))


@pytest.mark.parametrize(
    "activation",
    [Tanh(), LeakyWhere(), SigmoidTextbook(), ELUWhere(), Hardtanh(), SoftmaxUnits(), GELUTanh()],
)
def test_valid_variants_pass(activation):
    report = check_plugin("activation", activation)
    assert report.ok, str(report)


def test_a_class_is_built_with_its_hyperparameters():
    report = check_plugin("activation", LeakyWhere, hyperparameters={"alpha": 0.2})
    assert report.ok and report.name == "LeakyWhere"


# ---------------------------------------------------------------- one broken plugin per check


class NoUpstream(Tanh):
    def backward(self, z, a, grad_a):
        return 1 - a * a


class NegativeBranchDropped(LeakyWhere):
    def backward(self, z, a, grad_a):
        return np.where(z > 0, grad_a, 0 * grad_a)


class DerivativeAtOutput:
    def forward(self, z):
        return 0.5 * (1 + np.tanh(0.5 * z))

    def backward(self, z, a, grad_a):
        s = self.forward(a)
        return grad_a * s * (1 - s)


class FlippedSign(Tanh):
    def backward(self, z, a, grad_a):
        return -grad_a * (1 - a * a)


class Stateful:
    def forward(self, z):
        self.mask = z > 0
        return z * self.mask

    def backward(self, z, a, grad_a):
        return grad_a * self.mask


@pytest.mark.parametrize(
    "broken, words",
    [
        (NoUpstream(), "without multiplying by grad_a"),
        (NegativeBranchDropped(), "z < 0"),
        (DerivativeAtOutput(), "at the output a instead of the input z"),
        (FlippedSign(), "wrong sign"),
        (Stateful(), "saved on the object"),
    ],
    ids=["no_upstream", "negative_branch", "at_output", "sign", "stateful"],
)
def test_gradient_check_fails_and_names_the_mistake(broken, words):
    report = check_plugin("activation", broken)
    assert [p.check for p in report.problems] == ["gradient"], str(report)
    assert words in report.problems[0].explanation


def test_gradient_check_uses_a_random_upstream_gradient():
    # with grad_a all ones, returning f'(z) would pass: the check must not use ones
    report = check_plugin("activation", NoUpstream())
    problem = report.problems[0]
    assert problem.measured > 1e-2 and problem.allowed == tolerances(np.float64).gradient
    assert "backward" in problem.details and "central diff." in problem.details


class ModifiesGradA(Tanh):
    def backward(self, z, a, grad_a):
        grad_a *= 1 - a * a
        return grad_a


class ModifiesZ(Tanh):
    def forward(self, z):
        return np.tanh(z, out=z)


@pytest.mark.parametrize("broken, changed", [(ModifiesGradA(), "grad_a"), (ModifiesZ(), "forward changed z")])
def test_no_mutation_fails_on_in_place_updates(broken, changed):
    report = check_plugin("activation", broken)
    assert [p.check for p in report.problems] == ["no_mutation"], str(report)
    assert changed in report.problems[0].measured


class Float64Out(Tanh):
    def backward(self, z, a, grad_a):
        return grad_a * np.where(np.abs(z) < 1e9, 1.0, 0.0) * (1 - a * a)  # a float64 constant array


def test_dtype_fails_when_float32_in_gives_float64_out():
    report = check_plugin("activation", Float64Out())
    assert [p.check for p in report.problems] == ["dtype"], str(report)
    assert "backward gave float64 for float32" in report.problems[0].measured


class SoftplusNaive:
    def forward(self, z):
        return np.log(1 + np.exp(z))

    def backward(self, z, a, grad_a):
        return grad_a * 0.5 * (1 + np.tanh(0.5 * z))


def test_extreme_inputs_fail_on_overflow():
    report = check_plugin("activation", SoftplusNaive())
    assert [p.check for p in report.problems] == ["extreme_inputs"], str(report)
    assert "forward(z=1e+03) = inf" in report.problems[0].measured


def test_missing_methods_fail_the_interface():
    report = check_plugin("activation", object())
    assert not report.ok and report.problems[0].check == "interface"


# ---------------------------------------------------------------- the optional out= fast path


class TanhOut(Tanh):
    def forward(self, z, out=None):
        return np.tanh(z, out=out)

    def backward(self, z, a, grad_a, out=None):
        slope = 1 - a * a
        return np.multiply(grad_a, slope, out=out)


class TanhOutPartial(TanhOut):
    def forward(self, z, out=None):
        if out is None:
            return np.tanh(z)
        np.tanh(z, out=out, where=z > 0)  # entries with z <= 0 are left as they were
        return out


def test_out_path_is_checked_when_the_methods_accept_out():
    good = check_plugin("activation", TanhOut())
    assert good.ok and "out_path" in good.passed, str(good)
    bad = check_plugin("activation", TanhOutPartial())
    assert [p.check for p in bad.problems] == ["out_path"], str(bad)
    assert "forward(z, out=...) differs" in bad.problems[0].measured
