"""Central differences of the objective through the user's own forward pass, per array, cheaply.

Each array is measured along a few random dense directions and on sampled entries (all of them
when the array is small), never one difference per weight of a large matrix. A measurement
keeps the displacement actually applied (after rounding to the array's dtype) and the change of
every data-term variant of ``ObjectiveMath`` from the same two forward passes, so one pair of
passes tests the stated objective and every alternative a wrong gradient may follow.
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from mlpx.doctor.context import Context
from mlpx.doctor.objective import is_weight

#: random dense directions per array
DIRECTIONS = 3
#: arrays up to this size are measured on every entry; larger ones on a sample
ALL_ENTRIES = 48
SAMPLED_ENTRIES = 14


@dataclass
class Probe:
    """One functional of an array: the displacement applied (up - down) and each variant's change."""

    index: Optional[Tuple[int, ...]]  # an entry, or None for a dense direction
    delta: Any  # ndarray (dense) or float (entry): up - down, in float64
    changes: Dict[str, float]  # variant -> L(up) - L(down)

    def project(self, gradient: np.ndarray) -> float:
        if self.index is None:
            return float(np.vdot(gradient, self.delta))
        return float(gradient[self.index] * self.delta)

    width: float = 0.0  # the displacement's length, set at creation

    def __post_init__(self) -> None:
        self.width = float(np.linalg.norm(self.delta)) if self.index is None else abs(float(self.delta))


@dataclass
class ArrayMeasurement:
    """Every functional measured on one array, and the array's value at the probing point."""

    name: str
    value: np.ndarray  # float64 copy
    directions: List[Probe] = field(default_factory=list)
    entries: List[Probe] = field(default_factory=list)
    noise: float = 0.0  # derivative units below which a difference is rounding
    ones: Optional[Probe] = None  # along all-ones (bias vectors): the sum of the gradient's entries

    def total(self, variant: str) -> float:
        """The sum of the true gradient's entries under ``variant`` (bias vectors only)."""
        if self.ones is None:
            return 0.0
        step = float(np.mean(self.ones.delta))
        return self.ones.changes[variant] / step if step else 0.0

    def true(self, probes: Sequence[Probe], variant: str = "stated") -> np.ndarray:
        """Derivatives of ``variant`` along ``probes`` (change over displacement width)."""
        return np.array([p.changes[variant] / p.width if p.width else 0.0 for p in probes])

    def code(self, probes: Sequence[Probe], gradient: np.ndarray) -> np.ndarray:
        return np.array([p.project(gradient) / p.width if p.width else 0.0 for p in probes])


def measure_arrays(
    ctx: Context,
    net: Any,
    arrays: Dict[str, np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    focus: Optional[Dict[str, np.ndarray]] = None,
    step: Optional[float] = None,
) -> Dict[str, ArrayMeasurement]:
    """Measure every array of ``arrays`` (live arrays of ``net``) at the current point.

    ``focus`` maps a name to a gradient whose largest entries are measured too (a code gradient
    is then compared where it claims most).
    """
    variants = ctx.math.variants()
    base = ctx.subject.forward(net, x)
    base_value = abs(ctx.math.data_term(base, y))
    eps = float(np.finfo(ctx.dtype).eps)
    measured = {}
    for name, array in arrays.items():
        h = (step or ctx.tol.fd_steps[0]) * max(1.0, float(np.max(np.abs(array), initial=0.0)))
        m = ArrayMeasurement(name, np.array(array, dtype=np.float64))
        m.noise = 200 * eps * max(base_value, 1.0) / (2 * h)
        for _ in range(DIRECTIONS):
            direction = ctx.rng.standard_normal(array.shape)
            m.directions.append(_probe(ctx, net, array, x, y, variants, h * direction, None))
        if not is_weight(name, array):
            m.ones = _probe(ctx, net, array, x, y, variants, h * np.ones(array.shape), None)
        for index in _entries(ctx.rng, array, None if focus is None else focus.get(name)):
            m.entries.append(_probe(ctx, net, array, x, y, variants, h, index))
        measured[name] = m
    return measured


def remeasure(
    ctx: Context, net: Any, array: np.ndarray, x: np.ndarray, y: np.ndarray, probe: Probe, scale: float
) -> Probe:
    """``probe`` again with its displacement scaled by ``scale`` (another step, for kinks)."""
    displacement = probe.delta * (scale / 2)
    return _probe(ctx, net, array, x, y, ctx.math.variants(), displacement, probe.index)


def _probe(ctx, net, array, x, y, variants, displacement, index) -> Probe:
    """Forward at +/- ``displacement``: a dense array of ``array``'s shape, or for an entry
    (``index``) a number added to that entry alone (no full-array copies per entry)."""
    where = ... if index is None else index
    saved = array[where].copy() if index is None else array[where]
    try:
        array[where] = saved + displacement
        up_at = np.array(array[where], dtype=np.float64)
        p_up = ctx.subject.forward(net, x)
        array[where] = saved - displacement
        down_at = np.array(array[where], dtype=np.float64)
        p_down = ctx.subject.forward(net, x)
    finally:
        array[where] = saved
    changes = {}
    with np.errstate(all="ignore"):
        for name, value in variants.items():
            changes[name] = value(p_up, y) - value(p_down, y)
    delta = up_at - down_at  # the displacement actually applied, after rounding to the dtype
    return Probe(index, delta if index is None else float(delta), changes)


def _entries(rng: np.random.Generator, array: np.ndarray, focus: Optional[np.ndarray]) -> List[tuple]:
    if array.size <= ALL_ENTRIES:
        return list(np.ndindex(array.shape))
    chosen = set()
    if focus is not None and np.shape(focus) == array.shape:
        magnitude = np.abs(np.nan_to_num(np.asarray(focus, np.float64)))
        for flat in np.argsort(-magnitude, axis=None)[:4]:
            chosen.add(tuple(int(i) for i in np.unravel_index(flat, array.shape)))
    while len(chosen) < SAMPLED_ENTRIES + (4 if focus is not None else 0):
        chosen.add(tuple(int(rng.integers(0, d)) for d in array.shape))
    return sorted(chosen)
