"""The one table of numerical tolerances every check reads, keyed by dtype.

Gradient checks run in float64, where central differences with a step of about 1e-6 agree with
a correct derivative to about 1e-9 of the largest entry. The allowed 1e-4 leaves room for
legitimate variants that are not exactly consistent (a cross-entropy written log(p + 1e-7)
has a true gradient up to 1e-7 / p away from p - y, an erf approximated to 1e-7) while real
mistakes are off by a factor, a sign, a missing term or whole entries: 1e-2 and more. The
float32 row serves the checks that run in the training dtype (probabilities summing to 1, the
fast paths agreeing with the plain calls).
"""

from dataclasses import dataclass
from typing import Dict, Tuple

import numpy as np


@dataclass(frozen=True)
class Tolerances:
    """Allowed errors for one dtype; every field is relative unless said otherwise."""

    #: central-difference steps, relative to max(1, |x|); the first is used, the others only to
    #: rescue entries near a kink (smaller step) or swamped by rounding (larger step)
    fd_steps: Tuple[float, ...]
    #: max |analytic - numerical| over the largest |entry| of either
    gradient: float
    #: how close a known mistake's gradient must be to the plugin's to be named as the cause
    fingerprint: float
    #: the same quantity computed two ways (batch mean vs per-row, joint vs per-key state)
    recompute: float
    #: |sum of a row of probabilities - 1|, absolute
    probs_sum: float
    #: optimizer trajectory vs a reference implementation, over the distance travelled
    trajectory: float
    #: the network's directional derivatives, analytic vs central differences
    network: float
    #: an initializer's sample standard deviation vs its formula (and |mean| vs that std)
    spread: float
    #: the loss ratio an optimizer must reach on the convex quadratic (at or below)
    descent: float


TOLERANCES: Dict[np.dtype, Tolerances] = {
    np.dtype(np.float64): Tolerances(
        fd_steps=(1e-6, 1e-8, 1e-4),
        gradient=1e-4,
        fingerprint=1e-3,
        recompute=1e-8,
        probs_sum=1e-6,
        trajectory=1e-4,
        network=1e-4,
        spread=0.05,
        descent=0.9,
    ),
    np.dtype(np.float32): Tolerances(
        fd_steps=(1e-3, 1e-4, 1e-2),
        gradient=1e-2,
        fingerprint=1e-2,
        recompute=1e-4,
        probs_sum=1e-4,
        trajectory=1e-3,
        network=1e-2,
        spread=0.05,
        descent=0.9,
    ),
}


def tolerances(dtype: np.dtype = np.float64) -> Tolerances:
    """The row of ``TOLERANCES`` for ``dtype`` (float64 or float32)."""
    try:
        return TOLERANCES[np.dtype(dtype)]
    except KeyError:
        raise ValueError(f"no tolerances for dtype {np.dtype(dtype)}; use float32 or float64") from None
