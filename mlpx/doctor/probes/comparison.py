"""A code gradient against the central differences of one array (``ArrayMeasurement``): the
relative error, the derivatives side by side, ratio fits, and re-measuring across ReLU kinks."""

from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import numpy as np

from mlpx.doctor.measure import ArrayMeasurement, remeasure


@dataclass
class Verdict:
    """One array of one source: its error and what the error looks like."""

    name: str
    error: float
    kind: Optional[str] = None
    extra_kinds: List[str] = field(default_factory=list)
    shape_note: str = ""
    ratio: Optional[float] = None

    @property
    def wrong(self) -> bool:
        return self.kind != "ok"


def vectors(m: ArrayMeasurement, g: np.ndarray, l2g: Optional[np.ndarray], variant: str = "stated"):
    """(code, true) derivatives along directions and entries, with the L2 term when it applies."""
    out = []
    for probes in (m.directions, m.entries):
        c = m.code(probes, g)
        t = m.true(probes, variant)
        if l2g is not None:
            t = t + m.code(probes, l2g)
        out.append((c, t))
    return out


def relative_error(m: ArrayMeasurement, g: np.ndarray, l2g: Optional[np.ndarray]) -> float:
    (cd, td), (ce, te) = vectors(m, g, l2g)
    err_d = np.linalg.norm(cd - td) / max(np.linalg.norm(cd), np.linalg.norm(td), m.noise, 1e-300)
    err_e = 0.0
    if len(ce):
        scale = max(np.abs(ce).max(), np.abs(te).max(), m.noise, 1e-300)
        err_e = np.abs(ce - te).max() / scale
    return float(max(err_d, err_e))


def rescue_kinks(ctx, net, array, m, g, x, y, l2g, tolerance: float) -> None:
    """Measure disagreeing functionals again with the other steps; keep the closest (a step may
    straddle a ReLU kink; one lost in rounding must not fail a correct array). Kinks spoil a
    few functionals: when most disagree, the gradient is wrong and nothing is re-measured."""
    ratios = (0.3, 0.1, 0.01, 3.0, 10.0, 100.0)  # other steps, relative to the first

    def gap(probe) -> float:
        if not probe.width:
            return 0.0
        extra = probe.project(l2g) if l2g is not None else 0.0
        return abs(probe.project(g) - probe.changes["stated"] - extra) / probe.width

    plans = []
    for group, (c, t) in zip((m.directions, m.entries), vectors(m, g, l2g), strict=True):
        scale = max(float(np.abs(c).max(initial=0)), float(np.abs(t).max(initial=0)), m.noise, 1e-300)
        plans.append((group, [i for i, p in enumerate(group) if gap(p) > tolerance * scale]))
    total = len(m.directions) + len(m.entries)
    if sum(len(bad) for _, bad in plans) > total / 2:
        return
    for group, bad in plans:
        for i in bad:
            best = group[i]
            for ratio in ratios:
                other = remeasure(ctx, net, array, x, y, group[i], ratio)
                if other.width and gap(other) < gap(best):
                    best = other
            group[i] = best


def fit(code: np.ndarray, true: np.ndarray) -> Tuple[float, float]:
    """(ratio, residual): code ~ ratio * true, residual relative to |code|."""
    tt = float(np.dot(true, true))
    cc = float(np.linalg.norm(code))
    if tt == 0.0 or cc == 0.0:
        return 0.0, 1.0 if cc else 0.0
    ratio = float(np.dot(code, true)) / tt
    return ratio, float(np.linalg.norm(code - ratio * true)) / cc


def stacked(m: ArrayMeasurement, g, l2g, variant: str) -> Tuple[np.ndarray, np.ndarray]:
    """Directions and entries in one vector, each group scaled to comparable size."""
    parts_c, parts_t = [], []
    for c, t in vectors(m, g, l2g, variant):
        if not len(c):
            continue
        scale = max(np.linalg.norm(c), np.linalg.norm(t), 1e-300)
        parts_c.append(c / scale)
        parts_t.append(t / scale)
    return np.concatenate(parts_c), np.concatenate(parts_t)
