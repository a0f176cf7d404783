"""Optimizer checks: each fails on an optimizer broken for it, the reference trajectories accept
the standard variants of each algorithm, and the classic mistakes are named."""

import math

import numpy as np
import pytest

from mlpx.checks import check_plugin
from mlpx.checks.references import identify


class SGD:  # written plainly, out of the built-ins' style
    def __init__(self, lr=0.05):
        self.lr = lr

    def step(self, params, grads):
        for key in params:
            params[key] -= self.lr * grads[key]


class MomentumClassic:  # v <- mu v - lr g; p <- p + v
    def __init__(self, lr=0.05, momentum=0.9):
        self.lr, self.momentum, self.velocity = lr, momentum, {}

    def step(self, params, grads):
        for key, p in params.items():
            v = self.velocity.setdefault(key, np.zeros_like(p))
            v *= self.momentum
            v -= self.lr * grads[key]
            p += v


class NesterovSutskever:  # the look-ahead rewritten for gradients at p (Bengio et al.)
    def __init__(self, lr=0.05, momentum=0.9):
        self.lr, self.momentum, self.velocity = lr, momentum, {}

    def step(self, params, grads):
        for key, p in params.items():
            previous = self.velocity.get(key, np.zeros_like(p))
            v = self.velocity[key] = self.momentum * previous - self.lr * grads[key]
            p += -self.momentum * previous + (1 + self.momentum) * v


class AdamKeras:  # eps added to the uncorrected sqrt(v), corrections folded into the step
    def __init__(self, lr=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
        self.lr, self.beta_1, self.beta_2, self.epsilon, self.state = lr, beta_1, beta_2, epsilon, {}

    def step(self, params, grads):
        for key, p in params.items():
            m, v, t = self.state.get(key, (0.0, 0.0, 0))
            t += 1
            m = self.beta_1 * m + (1 - self.beta_1) * grads[key]
            v = self.beta_2 * v + (1 - self.beta_2) * grads[key] ** 2
            p -= (
                self.lr
                * math.sqrt(1 - self.beta_2**t)
                / (1 - self.beta_1**t)
                * m
                / (np.sqrt(v) + self.epsilon)
            )
            self.state[key] = (m, v, t)


class AdamEpsInsideBetas:  # PyTorch-style betas tuple, eps inside the square root
    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        self.lr, self.betas, self.eps, self.m, self.v, self.t = lr, betas, eps, {}, {}, 0

    def step(self, params, grads):
        b1, b2 = self.betas
        self.t += 1
        for key, p in params.items():
            self.m[key] = b1 * self.m.get(key, 0) + (1 - b1) * grads[key]
            self.v[key] = b2 * self.v.get(key, 0) + (1 - b2) * grads[key] ** 2
            m_hat, v_hat = self.m[key] / (1 - b1**self.t), self.v[key] / (1 - b2**self.t)
            p -= self.lr * m_hat / np.sqrt(v_hat + self.eps)


class RMSpropKeras:
    def __init__(self, lr=0.001, rho=0.9, epsilon=1e-7):
        self.lr, self.rho, self.epsilon, self.mean_square = lr, rho, epsilon, {}

    def step(self, params, grads):
        for key, p in params.items():
            ms = self.mean_square.get(key, np.zeros_like(p))
            ms = self.mean_square[key] = self.rho * ms + (1 - self.rho) * grads[key] ** 2
            p -= self.lr * grads[key] / np.sqrt(ms + self.epsilon)


class AdagradTF:
    def __init__(self, lr=0.01, initial_accumulator_value=0.1, epsilon=1e-7):
        self.lr, self.initial, self.epsilon, self.total = lr, initial_accumulator_value, epsilon, {}

    def step(self, params, grads):
        for key, p in params.items():
            total = self.total.setdefault(key, np.full_like(p, self.initial))
            total += grads[key] ** 2
            p -= self.lr * grads[key] / (np.sqrt(total) + self.epsilon)


class AdamWDecayAfter:  # decay applied after the Adam step, scaled by lr
    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01):
        self.lr, self.beta1, self.beta2, self.eps, self.wd = lr, beta1, beta2, eps, weight_decay
        self.m, self.v, self.t = {}, {}, 0

    def step(self, params, grads):
        self.t += 1
        for key, p in params.items():
            self.m[key] = self.beta1 * self.m.get(key, 0) + (1 - self.beta1) * grads[key]
            self.v[key] = self.beta2 * self.v.get(key, 0) + (1 - self.beta2) * grads[key] ** 2
            m_hat, v_hat = self.m[key] / (1 - self.beta1**self.t), self.v[key] / (1 - self.beta2**self.t)
            p -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)
            p *= 1 - self.lr * self.wd


class Lion:  # not a family with a reference: only the contract checks apply
    def __init__(self, lr=1e-4, beta1=0.9, beta2=0.99):
        self.lr, self.beta1, self.beta2, self.m = lr, beta1, beta2, {}

    def step(self, params, grads):
        for key, p in params.items():
            m = self.m.setdefault(key, np.zeros_like(p))
            p -= self.lr * np.sign(self.beta1 * m + (1 - self.beta1) * grads[key])
            m[...] = self.beta2 * m + (1 - self.beta2) * grads[key]


@pytest.mark.parametrize(
    "factory",
    [SGD, MomentumClassic, NesterovSutskever, AdamKeras, AdamEpsInsideBetas, RMSpropKeras, AdagradTF,
     AdamWDecayAfter, Lion],
)  # fmt: skip
def test_valid_variants_pass(factory):
    report = check_plugin("optimizer", factory)
    assert report.ok, str(report)


def test_family_is_recognised_from_the_name():
    assert identify(["BuggyAdam"]).name == "Adam"
    assert identify(["adamw"]).name == identify(["AdamWL2"]).name == "AdamW"
    assert identify(["sgd_momentum"]).name == "SGD with momentum"
    assert identify(["RMSpropMomentum"]).name == "RMSprop"
    assert identify(["Adamax"]) is None and identify(["SignSGD"]) is None and identify(["Lion"]) is None


# ---------------------------------------------------------------- one broken optimizer per check


class Ascends(SGD):
    def step(self, params, grads):
        for key in params:
            params[key] += self.lr * grads[key]


class CachedLr(SGD):
    def __init__(self, lr=0.05):
        super().__init__(lr)
        self._lr = lr

    def step(self, params, grads):
        for key in params:
            params[key] -= self._lr * grads[key]


class Rebinds(SGD):
    def step(self, params, grads):
        for key in params:
            params[key] = params[key] - self.lr * grads[key]


class ScalesGrads(SGD):
    def step(self, params, grads):
        for key in params:
            grads[key] *= self.lr
            params[key] -= grads[key]


class SharedVelocity(MomentumClassic):  # one buffer for every parameter of a shape
    def step(self, params, grads):
        for key, p in params.items():
            v = self.velocity.setdefault(p.shape, np.zeros_like(p))
            v *= self.momentum
            v -= self.lr * grads[key]
            p += v


class Adam(AdamEpsInsideBetas):  # the name a student would give it
    pass


class AdamNoBiasCorrection(Adam):
    def step(self, params, grads):
        b1, b2 = self.betas
        for key, p in params.items():
            self.m[key] = b1 * self.m.get(key, 0) + (1 - b1) * grads[key]
            self.v[key] = b2 * self.v.get(key, 0) + (1 - b2) * grads[key] ** 2
            p -= self.lr * self.m[key] / (np.sqrt(self.v[key]) + self.eps)


class MomentumHardcoded(MomentumClassic):  # ignores its momentum argument
    def step(self, params, grads):
        for key, p in params.items():
            v = self.velocity.setdefault(key, np.zeros_like(p))
            v *= 0.9
            v -= self.lr * grads[key]
            p += v


class FusedTargetIgnored(SGD):  # momentum through the fused path, plain SGD through step
    def __init__(self, lr=0.05, momentum=0.9):
        super().__init__(lr)
        self.momentum, self.velocity = momentum, {}

    def fused_targets(self, params):
        targets = {k: self.velocity.setdefault(k, np.zeros_like(p)) for k, p in params.items()}
        return {k: (v, 1.0, self.momentum) for k, v in targets.items()}

    def step(self, params, grads, fused=()):
        for key, p in params.items():
            p -= self.lr * (self.velocity[key] if key in fused else grads[key])


class ReadsFusedGradient(SGD):  # offers SGD's fused step, then reads the gradient of a fused key
    def fused_targets(self, params):
        return {k: (p, -self.lr, 1.0) for k, p in params.items()}

    def step(self, params, grads, fused=()):
        for key, p in params.items():
            p -= self.lr * grads[key]


@pytest.mark.parametrize(
    "broken, checks, words",
    [
        (Ascends, {"descends"}, "climbs"),
        (CachedLr, {"lr_zero"}, "lr = 0"),
        (Rebinds, {"in_place"}, "was replaced by a new array"),
        (ScalesGrads, {"grads_untouched"}, "changed at step 1"),
        (SharedVelocity, {"separate_state"}, "shared between keys"),
        (AdamNoBiasCorrection, {"reference"}, "a classic mistake: no bias correction"),
        (MomentumHardcoded, {"reference"}, "changed hyperparameters {'momentum': 0.5}"),
        (FusedTargetIgnored, {"fused"}, "the fused path left the plain one"),
        (ReadsFusedGradient, {"fused"}, "a gradient of a fused key was read"),
    ],
    ids=lambda v: getattr(v, "__name__", ""),
)
def test_each_check_fails_on_an_optimizer_broken_for_it(broken, checks, words):
    report = check_plugin("optimizer", broken)
    assert {p.check for p in report.problems} == checks, str(report)
    assert words in str(report)


def test_builtin_factory_with_configured_hyperparameters():
    from mlpx.builtins.optimizers import Momentum

    report = check_plugin("optimizer", Momentum, hyperparameters={"lr": 0.3, "momentum": 0.5})
    assert report.ok, str(report)
    assert any("matches the reference SGD with momentum" in note for note in report.notes)


def test_a_factory_that_rejects_its_hyperparameters_fails_the_interface():
    report = check_plugin("optimizer", SGD, hyperparameters={"beta1": 0.9})
    assert [p.check for p in report.problems] == ["interface"]
