"""Plugin checks that answer "is my backprop right?": gradient checks, conventions, sanity.

``check_plugin(kind, obj)`` runs every check of ``kind`` on any object meeting that kind's
contract (duck-typed) and returns a ``CheckReport``; ``check_network`` checks an assembled
model's backward pass. Each module holds one kind's checks, and its docstring says what each
check means; tolerances live in one table, ``TOLERANCES``, keyed by dtype.
"""

import dataclasses
from typing import Any, List, Mapping, Optional

import numpy as np

from mlpx.checks.activations import check_activation
from mlpx.checks.initializers import check_initializer
from mlpx.checks.losses import check_loss
from mlpx.checks.network import LayerResult, NetworkCheck, check_network
from mlpx.checks.optimizers import check_optimizer
from mlpx.checks.report import CheckReport, Problem
from mlpx.checks.tolerances import TOLERANCES, Tolerances, tolerances
from mlpx.errors import PluginError

#: the kinds with checks (datasets are not checked)
CHECKED_KINDS = ("activation", "loss", "initializer", "optimizer")
_METHODS = {
    "activation": ("forward", "backward"),
    "loss": ("value", "grad", "probs"),
    "initializer": ("init",),
}

__all__ = [
    "CHECKED_KINDS",
    "TOLERANCES",
    "CheckReport",
    "LayerResult",
    "NetworkCheck",
    "Problem",
    "Tolerances",
    "check_component",
    "check_network",
    "check_plugin",
    "tolerances",
]


def check_plugin(
    kind: str,
    obj: Any,
    *,
    name: Optional[str] = None,
    source: Optional[str] = None,
    hyperparameters: Optional[Mapping[str, Any]] = None,
    seed: int = 0,
) -> CheckReport:
    """Run every check of ``kind`` on ``obj`` and report what failed and why.

    ``kind`` is one of ``CHECKED_KINDS``. For activations, losses and initializers ``obj`` is the
    object (a class is built with ``hyperparameters``); for optimizers it is the factory, called
    as ``obj(**hyperparameters)`` for each check. ``name`` (the registered name) and the class or
    function name tell which standard scheme or algorithm the plugin claims to be; ``source``
    only labels the report. ``seed`` fixes the random inputs, so a report is reproducible.
    """
    if kind not in CHECKED_KINDS:
        raise PluginError(
            f"cannot check a plugin of kind '{kind}': checks exist for {', '.join(CHECKED_KINDS)}"
        )
    names = [n for n in (name, *_class_names(obj)) if n]
    report = CheckReport(kind, name or (names[0] if names else type(obj).__name__), source)
    rng = np.random.default_rng(seed)
    tol = tolerances(np.float64)
    if kind == "optimizer":
        check_optimizer(obj, report, rng, tol, names, hyperparameters)
        return report
    built = _build(kind, obj, hyperparameters, report)
    if built is None:
        return report
    names += [n for n in _class_names(built) if n not in names]
    if kind == "activation":
        check_activation(built, report, rng, tol)
    elif kind == "loss":
        check_loss(built, report, rng, tol)
    else:
        check_initializer(built, report, rng, tol, names)
    return report


def check_component(
    component: Any, hyperparameters: Optional[Mapping[str, Any]] = None, seed: int = 0
) -> CheckReport:
    """Check a registered ``mlpx.plugins.registry.Component`` with ``hyperparameters`` (default: its
    config dataclass's defaults), labelled with its name, source and version."""
    if hyperparameters is None:
        hyperparameters = default_hyperparameters(component.config)
    obj = component.factory
    return check_plugin(
        component.kind,
        obj,
        name=component.name,
        source=f"{component.source}, version {component.version}",
        hyperparameters=hyperparameters,
        seed=seed,
    )


def default_hyperparameters(config: Optional[type]) -> dict:
    """The defaults of a plugin's hyperparameter dataclass ({} without one, or without defaults)."""
    if config is None:
        return {}
    try:
        return dataclasses.asdict(config())
    except TypeError:
        return {}


def _class_names(obj: Any) -> List[str]:
    """The class or function names of ``obj``, which may state the scheme (e.g. 'BuggyAdam')."""
    if isinstance(obj, type) or callable(obj) and hasattr(obj, "__name__"):
        return [getattr(obj, "__name__", "")]
    return [type(obj).__name__]


def _build(kind: str, obj: Any, hyperparameters: Optional[Mapping[str, Any]], report: CheckReport) -> Any:
    """``obj`` itself when it has the kind's methods, else what calling it returns."""
    methods = _METHODS[kind]
    has_methods = all(callable(getattr(obj, m, None)) for m in methods)
    if has_methods and not isinstance(obj, type):
        return obj
    if not callable(obj):
        return obj  # the interface check names what is missing
    try:
        return obj(**dict(hyperparameters or {}))
    except Exception as exc:
        report.problems.append(
            Problem(
                "interface",
                f"{type(exc).__name__}: {exc}",
                f"an object with {', '.join(methods)}",
                f"Building the {kind} from {getattr(obj, '__name__', obj)!r} with "
                f"{dict(hyperparameters or {}) or 'no arguments'} failed.",
            )
        )
        return None
