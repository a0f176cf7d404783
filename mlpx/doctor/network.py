"""``Network``: the doctor's contract bundled in one object, as a ``register_networks`` plugin returns it."""

from dataclasses import dataclass, field, fields
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Union

from mlpx.doctor.examine import examine


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
        return examine(**{**self.keywords(), **overrides})
