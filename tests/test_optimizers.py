"""Optimizer internals that the generic checks do not see: no subnormal state, BLAS and NumPy paths agree."""

import numpy as np
import pytest

from mlpx.builtins.more_optimizers import AdamW, Nesterov, RMSprop
from mlpx.builtins.optimizers import SGD, Adam, Momentum
from mlpx.core import blas


@pytest.mark.parametrize("make", [Momentum, Adam, Nesterov, RMSprop, AdamW])
def test_state_of_a_parameter_whose_gradient_stops_is_flushed_before_it_turns_subnormal(make):
    # a dead ReLU unit: one real gradient, then exact zeros; its decaying state would pass
    # through float32 subnormals, where x86 arithmetic is ~20x slower
    optimizer = make()
    params = {"W1": np.ones(1000, np.float32)}
    optimizer.step(params, {"W1": np.full(1000, 1e-3, np.float32)})
    zeros = {"W1": np.zeros(1000, np.float32)}
    tiny = np.finfo(np.float32).tiny  # the smallest normal float32
    for _ in range(3000):
        optimizer.step(params, zeros)
        for state in vars(optimizer).values():
            if isinstance(state, dict):
                for array in state.values():
                    if isinstance(array, np.ndarray) and array.dtype == np.float32:
                        magnitude = np.abs(array)
                        assert not np.any((magnitude > 0) & (magnitude < tiny))
    assert np.all(np.isfinite(params["W1"]))


@pytest.mark.parametrize("make", [SGD, Momentum])
def test_blas_and_numpy_paths_of_a_step_agree(make):
    # contiguous arrays this large step through BLAS axpy; a Fortran-ordered one falls back to NumPy
    rng = np.random.default_rng(0)
    shape = (300, 200)
    assert np.prod(shape) >= blas.AXPY_MIN_SIZE
    assert blas.axpy(0.0, np.zeros(shape, np.float32), np.zeros(shape, np.float32))  # BLAS serves
    start = rng.standard_normal(shape).astype(np.float32)
    grads = [rng.standard_normal(shape).astype(np.float32) for _ in range(4)]
    by_blas, by_numpy = {"W1": start.copy()}, {"W1": np.asfortranarray(start)}
    blas_optimizer, numpy_optimizer = make(lr=0.1), make(lr=0.1)
    for g in grads:
        blas_optimizer.step(by_blas, {"W1": g})
        numpy_optimizer.step(by_numpy, {"W1": np.asfortranarray(g)})
    np.testing.assert_allclose(by_blas["W1"], by_numpy["W1"], rtol=1e-6, atol=1e-6)
    assert not np.array_equal(by_blas["W1"], start)
