"""What every probe gets: the subject, the probing data, the objective's numerics, the dtype.

The default data is a small learnable task sized from the network: each class has a random
binary prototype image, and a record is its class's prototype with 10 % of the pixels flipped,
as uint8 pixels 0..255 (put through the code's own ``prepare_inputs``, else divided by 255).
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from mlpx.checks.tolerances import Tolerances, tolerances
from mlpx.core.numerics import one_hot
from mlpx.doctor.objective import ObjectiveMath
from mlpx.doctor.report import Finding
from mlpx.doctor.spec import DoctorError
from mlpx.doctor.subject import CodeError, Subject

#: the smallest probability a log is taken of that the checks accept (see Context.unsaturate)
SATURATION = 1e-4
#: input scales tried, in order, to bring the outputs out of saturation
INPUT_SCALES = (1.0, 0.3, 0.1, 0.03, 0.01, 0.003, 0.001)
#: records of the default probing batch, and of the training task
PROBE_RECORDS = 8
TRAIN_RECORDS = 96


@dataclass
class Context:
    """The probing batch (x (n, D), y one-hot (n, C), labels (n,)), the training task, tolerances."""

    subject: Subject
    x: np.ndarray
    y: np.ndarray
    labels: np.ndarray
    n_features: int
    n_classes: int
    dtype: np.dtype
    tol: Tolerances
    math: ObjectiveMath
    rng: np.random.Generator
    train: Optional[Tuple[np.ndarray, np.ndarray]] = None  # (x, y one-hot) of the learnable task
    pixels: Optional[np.ndarray] = None  # the uint8-valued images x came from, when synthetic
    user_data: bool = False
    findings: List[Finding] = field(default_factory=list)
    facts: Dict[str, Any] = field(default_factory=dict)  # what one probe learned for the others
    probe_x: Optional[np.ndarray] = None  # the probing inputs scaled down, when outputs saturated

    def add(self, finding: Finding) -> Finding:
        self.findings.append(finding)
        return finding

    def by_symmetry(self) -> bool:
        """Whether the symmetry probe already explained a failure to learn."""
        return any(f.check == "symmetry" and f.severity == "error" for f in self.findings)

    def batch(self, records: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
        """The probing batch cut to what one call of update/gradients accepts (its inputs scaled
        down when the outputs saturated, see ``unsaturate``)."""
        n = records or self.subject.check_batch or len(self.x)
        x = self.x if self.probe_x is None else self.probe_x
        return x[:n], self.y[:n]

    def unsaturate(self, net: Any) -> None:
        """Scale the probing inputs down until no probability the objective takes a log of is
        below ``SATURATION`` (an exact 0 or 1 breaks central differences through log p, and a
        code's clipped log legitimately differs there); inputs are any inputs for a check."""
        for scale in INPUT_SCALES:
            x = (self.x * scale).astype(self.x.dtype)
            margin = log_margin(self.subject.objective.loss, self.subject.forward(net, x), self.y)
            if margin >= SATURATION:
                if scale != 1.0:
                    self.probe_x = x
                    self.facts.setdefault("notes", []).append(
                        f"the outputs saturate on the probing inputs (a probability below {SATURATION:g}); "
                        f"gradients and the loss were checked on the inputs x{scale:g}"
                    )
                return
        self.facts["saturated"] = True


def log_margin(loss: str, probs: np.ndarray, y: np.ndarray) -> float:
    """The smallest probability the loss takes a log of (1 for mse, which takes none)."""
    if probs.shape != y.shape or not np.all(np.isfinite(probs)):
        return 1.0
    if loss == "cross_entropy":
        return float(probs[y > 0.5].min(initial=1.0))
    if loss == "bce":
        return float(np.minimum(probs, 1 - probs).min(initial=1.0))
    return 1.0


def prototype_pixels(
    labels: np.ndarray, n_features: int, n_classes: int, rng: np.random.Generator
) -> np.ndarray:
    """uint8-valued images (n, D): each class a random binary prototype, 10 % of pixels flipped."""
    prototypes = rng.random((n_classes, n_features)) < 0.2
    flips = rng.random((len(labels), n_features)) < 0.1
    images = prototypes[labels] ^ flips
    return (images * rng.integers(180, 256, size=images.shape)).astype(np.uint8)


def infer_sizes(subject: Subject, net: Any, arrays: Dict[str, np.ndarray]) -> Tuple[int, int]:
    """(n_features, n_classes): the input width forward accepts, among the arrays' dimensions."""
    sides = {d for a in arrays.values() for d in np.shape(a) if d > 1}
    # a side one larger than the inputs holds a folded-in bias (a column of ones on X)
    dims = sorted(sides, reverse=True) + sorted({d - 1 for d in sides} - sides - {0, 1}, reverse=True)
    problems, errors = [], []
    for width in dims:
        x = np.random.default_rng(0).random((3, width))
        try:
            out = subject.forward(net, x)
        except CodeError as error:
            problems.append(f"D={width}: {error}")
            errors.append(error)
            continue
        if out.ndim == 2 and out.shape[0] == 3:
            return width, out.shape[1]
        problems.append(f"D={width}: forward returned shape {out.shape}, not (3, C)")
    first = next((e for e in errors if isinstance(e, CodeError)), None)
    if first is not None and len(errors) == len(dims):
        raise CodeError(
            f"forward (for every input width among the arrays' sides: {dims})", first.error, first.where
        )
    raise DoctorError(
        "could not find the input width: forward(net, X) failed for X of shape (3, D) with every D "
        f"among the arrays' dimensions ({'; '.join(problems) or 'no arrays found'}). Pass data=(X, Y)."
    )


def make_context(subject: Subject, net: Any, arrays: Dict[str, np.ndarray], data: Any, seed: int) -> Context:
    rng = np.random.default_rng(seed)
    # judged at the least precise dtype among the arrays (float16 at float32's tolerances)
    dtype = np.dtype(np.float64)
    if any(np.asarray(a).dtype.itemsize < 8 for a in arrays.values()):
        dtype = np.dtype(np.float32)
    tol = tolerances(dtype)
    if data is not None:
        x, y = data
        x = np.asarray(x)
        y = np.asarray(y)
        if y.ndim == 1:
            n_classes = int(subject.forward(net, x[:1]).shape[1])
            y = one_hot(y.astype(int), n_classes, np.float64)
        labels = y.argmax(axis=1)
        ctx = Context(
            subject,
            x,
            y.astype(np.float64),
            labels,
            x.shape[1],
            y.shape[1],
            dtype,
            tol,
            ObjectiveMath(subject.objective),
            rng,
            user_data=True,
        )
        ctx.train = (x, ctx.y)
        return ctx
    n_features, n_classes = infer_sizes(subject, net, arrays)
    n = subject.check_batch if subject.check_batch and subject.check_batch > 1 else PROBE_RECORDS
    n = max(n, n_classes + 3) if n != 1 else PROBE_RECORDS  # rows != classes keeps the axes apart
    labels = np.concatenate([np.arange(n_classes), rng.integers(0, n_classes, TRAIN_RECORDS)])[
        : n + TRAIN_RECORDS
    ]
    rng.shuffle(labels)
    pixels = prototype_pixels(labels, n_features, n_classes, rng)
    x_all = prepare(subject, pixels, dtype)
    y_all = one_hot(labels, n_classes, np.float64)
    ctx = Context(
        subject,
        x_all[:n],
        y_all[:n],
        labels[:n],
        n_features,
        n_classes,
        dtype,
        tol,
        ObjectiveMath(subject.objective),
        rng,
        pixels=pixels[:n],
    )
    ctx.train = (x_all, y_all)
    ctx.facts["train_labels"] = labels
    return ctx


def prepare(subject: Subject, pixels: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """The code's own preprocessing of uint8-valued pixels, else pixels / 255 in the code's dtype."""
    if subject.prepare_inputs is None:
        return (pixels / 255.0).astype(dtype)
    x = np.asarray(subject.call("prepare_inputs", subject.prepare_inputs, pixels.copy()))
    if x.shape[0] != len(pixels):
        raise DoctorError(
            f"prepare_inputs returned shape {x.shape} for pixels of shape {pixels.shape}: "
            "it must keep one row per record"
        )
    if x.dtype.kind != "f":
        x = x.astype(np.float64)
    return x
