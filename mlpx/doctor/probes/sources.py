"""Where the code's gradients come from: its explicit ``gradients(net, X, Y)``, one ``update``
((old - new) / lr), and an ``optimizer``'s ``gradients``; each as float64 arrays of their
parameter's shape, a wrong shape or a missing key being a finding."""

import copy
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from mlpx.doctor.context import Context
from mlpx.doctor.report import Finding
from mlpx.doctor.structure import is_bias
from mlpx.doctor.subject import CodeError

Arrays = Dict[str, np.ndarray]


@dataclass
class Source:
    label: str  # "gradients", "update", "optimizer gradients"
    gradients: Arrays


def code_gradients(ctx: Context, net: Any, x: np.ndarray, y: np.ndarray):
    subject = ctx.subject
    names = list(subject.arrays(net))
    if subject.gradients_fn is not None:
        got = call_gradients(ctx, "gradients", subject.gradients_fn, net, x, y, names)
        if got is not None:
            yield Source("gradients", got)
    if subject.update_fn is not None:
        got = inferred_from_update(ctx, net, x, y)
        if got is not None:
            yield Source("update", got)
    if subject.optimizer is not None and callable(subject.optimizer.get("gradients")):
        got = call_gradients(ctx, "optimizer gradients", subject.optimizer["gradients"], net, x, y, names)
        if got is not None:
            yield Source("optimizer gradients", got)


def call_gradients(ctx, label, fn, net, x, y, names) -> Optional[Arrays]:
    twin = copy.deepcopy(net)
    try:
        got = ctx.subject.call(label, fn, twin, x.copy(), y.copy())
    except CodeError as error:
        ctx.add(raised("gradient", error))
        return None
    if isinstance(got, (list, tuple)) and sum(isinstance(part, dict) for part in got) == 1:
        got = next(part for part in got if isinstance(part, dict))  # (loss, grads) as CS231n returns
    if not isinstance(got, dict):
        if isinstance(got, (list, tuple)) and len(got) == len(names):
            got = dict(zip(names, got, strict=True))
        else:
            ctx.add(
                Finding(
                    "gradient",
                    "error",
                    f"{label}(net, X, Y) returned {type(got).__name__}, not a dict {{array name: gradient}}",
                    kind="code-raised",
                )
            )
            return None
    got = _match_names(ctx, label, dict(got), names)
    missing = [n for n in names if n not in got]
    if missing:
        ctx.add(
            Finding(
                "gradient",
                "error",
                f"{label}() returned no gradient for {', '.join(missing)} "
                f"(it returned {', '.join(map(str, got)) or 'nothing'}); the keys must be the "
                "names of the arrays",
                params=missing,
            )
        )
    return _conform(ctx, label, got, ctx.subject.arrays(net), x)


def _match_names(ctx: Context, label: str, got: Dict[Any, Any], names: List[str]) -> Dict[Any, Any]:
    """Gradients keyed 'dW1', 'grad_W1' or 'W1_grad' for the array 'W1' are taken as its, with a note."""
    if all(n in got for n in names):
        return got
    mapping = {}
    for key in got:
        text = str(key)
        for bare in _bare_names(text):
            if bare in names and bare not in got and bare not in mapping.values():
                mapping[key] = bare
                break
    if mapping:
        ctx.facts.setdefault("notes", []).append(
            f"{label}() keys read as array names: " + ", ".join(f"{k} -> {n}" for k, n in mapping.items())
        )
    return {mapping.get(k, k): v for k, v in got.items()}


def _bare_names(key: str) -> List[str]:
    found = []
    for prefix in ("grad_", "d_", "g_", "grad", "d"):
        if key.startswith(prefix):
            found.append(key[len(prefix) :])
    for suffix in ("_grad", "_gradient", "_g"):
        if key.endswith(suffix):
            found.append(key[: -len(suffix)])
    return found


def inferred_from_update(ctx, net, x, y) -> Optional[Arrays]:
    subject = ctx.subject
    twin = copy.deepcopy(net)
    before = subject.copies(twin)
    lr = subject.learning_rate(twin)
    try:
        twin = subject.step(twin, "update", subject.update_fn, x.copy(), y.copy())
    except CodeError as error:
        ctx.add(raised("gradient", error))
        return None
    after = subject.arrays(twin)
    if lr == 0:
        ctx.add(Finding("gradient", "error", "lr is 0: the update's gradient cannot be inferred"))
        return None
    inferred = {}
    for name, old in before.items():
        new = np.asarray(after[name], dtype=np.float64)
        inferred[name] = (old - new) / lr if new.shape == old.shape else new
    return _conform(ctx, "update", inferred, before, x)


def _conform(ctx: Context, label: str, got: Dict[str, Any], arrays: Arrays, x: np.ndarray) -> Arrays:
    """Gradients as float64 arrays of their parameter's shape; a wrong shape is a finding."""
    out = {}
    for name, g in got.items():
        if name not in arrays:
            continue
        target = np.shape(arrays[name])
        g = np.asarray(g, dtype=np.float64)
        if g.shape == target:
            out[name] = g
        elif g.size == int(np.prod(target)) and np.squeeze(g).shape == np.squeeze(np.empty(target)).shape:
            out[name] = g.reshape(target)
        else:
            ctx.add(_shape_finding(label, name, g.shape, target, len(x), arrays[name]))
    return out


def _shape_finding(
    label: str, name: str, got: Tuple[int, ...], target: Tuple[int, ...], n: int, array
) -> Finding:
    what = "the change made by update" if label == "update" else f"the gradient from {label}"
    message = f"{name}: {what} has shape {got}, but {name} has shape {target}"
    kind = "shape-mismatch"
    if is_bias(name, np.empty(target)) and n in got:
        kind = "bias-grad-wrong-axis"
        message += f" (a side of {n} is the batch: the bias gradient was summed over the wrong axis)"
    elif tuple(got) == tuple(target)[::-1]:
        kind = "transposed-weight-in-backward"
        message += " (transposed)"
    elif got == ():
        kind = "bias-grad-collapsed-to-scalar" if is_bias(name, np.empty(target)) else kind
    return Finding("gradient", "error", message, params=(name,), kind=kind, measured={"shape": list(got)})


def raised(check: str, error: CodeError) -> Finding:
    return Finding(check, "error", str(error), kind="code-raised", where=error.where)
