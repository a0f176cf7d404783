"""What the user hands the doctor: their callables (``Network``) and what they mean to minimise
(``Objective``), normalised from the forms the contract accepts."""

from dataclasses import dataclass, field, fields
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple, Union

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


@dataclass
class Network:
    """A hand-written network as the doctor and the trainer see it: the keywords of
    ``mlpx.doctor.examine``. A ``register_networks`` plugin's factory returns one."""

    build: Callable[[], Any]
    forward: Callable[[Any, Any], Any]
    objective: Union[str, Mapping[str, Any]] = "cross_entropy"
    params: Optional[Callable[[Any], Dict[str, Any]]] = None
    gradients: Optional[Callable[[Any, Any, Any], Dict[str, Any]]] = None
    update: Optional[Callable[[Any, Any, Any], Any]] = None
    lr: Union[None, float, Callable[[Any], float]] = None
    loss: Optional[Callable[[Any, Any, Any], float]] = None
    train_epoch: Optional[Callable[[Any, Any, Any, int], Any]] = None
    optimizer: Optional[Mapping[str, Any]] = None
    prepare_inputs: Optional[Callable[[Any], Any]] = None
    encode_labels: Optional[Callable[[Any, int], Any]] = None
    seed: Optional[int] = None
    check_batch: Optional[int] = None
    data: Optional[Sequence[Any]] = None
    description: str = ""
    extra: Dict[str, Any] = field(default_factory=dict)

    def keywords(self) -> Dict[str, Any]:
        """The keywords of ``examine`` (everything but ``description`` and ``extra``)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("description", "extra")}

    def examine(self, **overrides: Any):
        from mlpx.doctor.examine import examine

        return examine(**{**self.keywords(), **overrides})
