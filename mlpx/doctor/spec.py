"""What the user hands the doctor: their callables (``Network``) and what they mean to minimise
(``Objective``), normalised from the forms the contract accepts."""

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Tuple, Union

from mlpx.errors import MlpxError

LOSSES = ("cross_entropy", "bce", "mse")
REDUCTIONS = ("mean", "sum")
OPTIMIZER_KINDS = ("sgd", "momentum", "adam")
_LOSS_ALIASES = {
    "ce": "cross_entropy",
    "crossentropy": "cross_entropy",
    "categorical_cross_entropy": "cross_entropy",
    "binary_cross_entropy": "bce",
    "squared_error": "mse",
}


class DoctorError(MlpxError):
    """The doctor was called wrongly (an unknown loss, a missing callable): says what to pass."""


@dataclass(frozen=True)
class L2:
    """The penalty ``coef * scale * sum(W ** 2)`` over the arrays ``params`` (None: every weight)."""

    coef: Union[float, Callable[[Any], float]]
    params: Optional[Tuple[str, ...]] = None
    scale: float = 0.5

    def coefficient(self, net: Any) -> float:
        return float(self.coef(net) if callable(self.coef) else self.coef)


@dataclass(frozen=True)
class Objective:
    """The loss the code means to minimise on probabilities P (n, C) and one-hot Y (n, C):
    ``cross_entropy`` -sum Y log P per record, ``bce`` per-unit binary cross-entropy summed over
    units, ``mse`` ``scale * sum (P - Y) ** 2`` per record; averaged or summed over records."""

    loss: str = "cross_entropy"
    reduction: str = "mean"
    scale: float = 0.5
    l2: Optional[L2] = None

    @classmethod
    def parse(cls, spec: Union[str, Mapping[str, Any], "Objective"]) -> "Objective":
        if isinstance(spec, Objective):
            return spec
        if isinstance(spec, str):
            spec = {"loss": spec}
        if not isinstance(spec, Mapping):
            raise DoctorError(
                f"objective={spec!r}: pass a loss name ({', '.join(LOSSES)}) or a dict "
                "{'loss': ..., 'reduction': 'mean' | 'sum'}"
            )
        unknown = set(spec) - {"loss", "reduction", "scale", "l2"}
        if unknown:
            raise DoctorError(
                f"objective has unknown keys {sorted(unknown)}; known: loss, reduction, scale, l2"
            )
        loss = str(spec.get("loss", "cross_entropy")).lower()
        loss = _LOSS_ALIASES.get(loss, loss)
        if loss not in LOSSES:
            raise DoctorError(
                f"objective loss {spec.get('loss')!r} is unknown; use one of {', '.join(LOSSES)}"
            )
        reduction = str(spec.get("reduction", "mean"))
        if reduction not in REDUCTIONS:
            raise DoctorError(f"objective reduction {reduction!r} is unknown; use 'mean' or 'sum'")
        l2 = spec.get("l2")
        if l2 is not None and not isinstance(l2, L2):
            if not isinstance(l2, Mapping) or "coef" not in l2:
                raise DoctorError(
                    "objective l2 must be a dict {'coef': float, 'params': [names], 'scale': s}"
                )
            names = l2.get("params")
            l2 = L2(l2["coef"], tuple(names) if names is not None else None, float(l2.get("scale", 0.5)))
        return cls(loss, reduction, float(spec.get("scale", 0.5)), l2)

    def describe(self) -> str:
        text = f"{self.loss} ({self.reduction} over records"
        if self.loss == "mse":
            text += f", {self.scale:g} * sum of squares per record"
        text += ")"
        if self.l2 is not None:
            text += f" + L2 ({self.l2.scale:g} * coef * sum W**2)"
        return text
