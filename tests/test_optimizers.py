"""Optimizer internals that the generic checks do not see: state never sinks into subnormals."""

import numpy as np
import pytest

from mlpx.builtins.more_optimizers import AdamW, Nesterov, RMSprop
from mlpx.builtins.optimizers import Adam, Momentum


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
