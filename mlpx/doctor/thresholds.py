"""The doctor's thresholds, keyed by the dtype the code computes in: data, not magic numbers.

Central differences, probabilities' row sums and optimizer trajectories are judged by the plugin
checks' own table (``mlpx.checks.tolerances``, reached as ``ctx.tol``). The rest is the doctor's:
in float32 its gradient threshold is looser than the plugin checks' because a hand-written network
is probed through its whole float32 forward pass (ReLU kinks along a dense direction, rounding of
the update), while real mistakes are off by factors, signs and whole terms (1e-2 and more).
"""

from dataclasses import dataclass
from typing import Dict

import numpy as np


@dataclass(frozen=True)
class Thresholds:
    #: relative error of an array's gradient above which it is wrong
    gradient: float
    #: residual of a fit (gradient = ratio * a variant's gradient) for the variant to be named
    fingerprint: float
    #: relative difference between the reported loss and the objective
    loss: float
    #: relative difference of a record's output alone and within a batch
    independence: float
    #: two calls that must agree (state), relative
    repeat: float


THRESHOLDS: Dict[np.dtype, Thresholds] = {
    np.dtype(np.float64): Thresholds(
        gradient=1e-4,
        fingerprint=0.03,
        loss=1e-3,
        independence=1e-7,
        repeat=1e-9,
    ),
    np.dtype(np.float32): Thresholds(
        gradient=3e-2,
        fingerprint=0.08,
        loss=1e-3,
        independence=1e-4,
        repeat=1e-5,
    ),
}


def thresholds(dtype: np.dtype) -> Thresholds:
    return THRESHOLDS.get(np.dtype(dtype), THRESHOLDS[np.dtype(np.float64)])
