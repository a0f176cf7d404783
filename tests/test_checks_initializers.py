"""Initializer checks: each fails on an initializer broken for it; valid variants pass."""

import math
import random

import numpy as np
import pytest

from mlpx.checks import check_plugin


class HeNormal:  # no declared std: the spread is checked against the formula its name states
    def init(self, shape, fan_in, fan_out, rng):
        return rng.standard_normal(shape) * math.sqrt(2.0 / fan_in)


class XavierUniform:
    def init(self, shape, fan_in, fan_out, rng):
        limit = math.sqrt(6 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, size=shape)


class Orthogonal:  # not a named variance scheme: no spread check
    def init(self, shape, fan_in, fan_out, rng):
        q, r = np.linalg.qr(rng.standard_normal((max(shape), min(shape))))
        q = q * np.sign(np.diag(r))
        return q if shape[0] >= shape[1] else q.T


class SmallNormal:
    def std(self, fan_in, fan_out):
        return 0.01

    def init(self, shape, fan_in, fan_out, rng):
        return rng.normal(0.0, 0.01, size=shape).astype(np.float32)


@pytest.mark.parametrize("initializer", [HeNormal(), XavierUniform(), Orthogonal(), SmallNormal()])
def test_valid_variants_pass(initializer):
    report = check_plugin("initializer", initializer)
    assert report.ok, str(report)


class Transposed(HeNormal):
    def init(self, shape, fan_in, fan_out, rng):
        return super().init((fan_out, fan_in), fan_in, fan_out, rng)


class OwnSeed(HeNormal):
    def init(self, shape, fan_in, fan_out, rng):
        return super().init(shape, fan_in, fan_out, np.random.default_rng(42))


class Unseeded(HeNormal):
    def init(self, shape, fan_in, fan_out, rng):
        return super().init(shape, fan_in, fan_out, np.random.default_rng())


class GlobalNumpy(HeNormal):
    def init(self, shape, fan_in, fan_out, rng):
        return np.random.randn(*shape) * math.sqrt(2.0 / fan_in)


class ReseedsGlobal(HeNormal):
    def init(self, shape, fan_in, fan_out, rng):
        np.random.seed(0)
        return super().init(shape, fan_in, fan_out, rng)


class PythonRandom(HeNormal):
    def init(self, shape, fan_in, fan_out, rng):
        return np.array([[random.gauss(0, 1) for _ in range(shape[1])] for _ in range(shape[0])])


class SameRow(HeNormal):
    def init(self, shape, fan_in, fan_out, rng):
        return np.tile(rng.normal(0, math.sqrt(2 / fan_in), fan_out), (fan_in, 1))


class Zeros:
    def init(self, shape, fan_in, fan_out, rng):
        return np.zeros(shape)


class HeNormalFanOut(HeNormal):
    def init(self, shape, fan_in, fan_out, rng):
        return rng.normal(0, math.sqrt(2 / fan_out), size=shape)


class DeclaredVarianceAsStd:
    def std(self, fan_in, fan_out):
        return math.sqrt(2 / fan_in)

    def init(self, shape, fan_in, fan_out, rng):
        return rng.normal(0, 2 / fan_in, size=shape)


class XavierUniformNotCentred(XavierUniform):
    def init(self, shape, fan_in, fan_out, rng):
        return rng.uniform(0, math.sqrt(6 / (fan_in + fan_out)), size=shape)


@pytest.mark.parametrize(
    "broken, checks, words",
    [
        (Transposed(), {"shape"}, "transpose"),
        (OwnSeed(), {"reproducible"}, "different seeds give the same array"),
        (Unseeded(), {"reproducible"}, "same seed differ"),
        (GlobalNumpy(), {"reproducible", "global_state"}, "NumPy's global random state"),
        (ReseedsGlobal(), {"global_state"}, "NumPy's global random state"),
        (PythonRandom(), {"reproducible", "global_state"}, "Python's random module"),
        (SameRow(), {"not_constant"}, "every row identical"),
        (Zeros(), {"reproducible", "not_constant"}, "every entry equal to 0"),
        (HeNormalFanOut(), {"spread"}, "fan_out was used where fan_in belongs"),
        (DeclaredVarianceAsStd(), {"spread"}, "its declared std"),
        (XavierUniformNotCentred(), {"spread"}, "not centred on 0"),
    ],
    ids=lambda v: v.__class__.__name__ if not isinstance(v, (set, str)) else "",
)
def test_each_check_fails_on_an_initializer_broken_for_it(broken, checks, words):
    state = np.random.get_state()
    report = check_plugin("initializer", broken)
    assert {p.check for p in report.problems} == checks, str(report)
    assert words in str(report)
    assert np.array_equal(state[1], np.random.get_state()[1])  # the caller's global state is restored


def test_an_object_without_init_fails_the_interface():
    report = check_plugin("initializer", object())
    assert [p.check for p in report.problems] == ["interface"]
