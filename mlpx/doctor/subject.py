"""The user's code as the probes call it: fresh copies, live arrays, reseeding, and errors that
point into the user's file.

``Subject`` wraps the callables of ``examine``: ``fresh()`` is a new network (a deep copy of one
``build()``), ``arrays(net)`` the live trainable arrays (the user's ``params`` or the discovered
ones, re-read after every call), ``call`` runs one user callable with NumPy warnings silenced and
the global generators reseeded when ``seed`` is given, turning an exception into ``CodeError``
that names the callable and the line of the user's code that raised.
"""

import copy
import os
import random
import traceback
import types
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from mlpx.checks.numeric import quiet
from mlpx.doctor.spec import DoctorError, Objective

Arrays = Dict[str, np.ndarray]
#: one step of a path from the network to an array: ("attr", name), ("key", k) or ("index", i)
Step = Tuple[str, Any]
_MAX_DEPTH = 4
_MAX_ITEMS = 64
_OWN_DIR = os.path.dirname(os.path.abspath(__file__))


class CodeError(Exception):
    """The user's callable ``what`` raised ``error``; ``where`` is its file:line in user code."""

    def __init__(self, what: str, error: BaseException, where: Optional[str]) -> None:
        super().__init__(f"{what} raised {type(error).__name__}: {error}")
        self.what, self.error, self.where = what, error, where


def user_frame(error: BaseException) -> Optional[str]:
    """'file.py:12 in train': the deepest traceback frame outside mlpx and NumPy."""
    found = None
    for frame in traceback.extract_tb(error.__traceback__):
        path = os.path.abspath(frame.filename)
        if path.startswith(_OWN_DIR) or f"{os.sep}numpy{os.sep}" in path or "site-packages" in path:
            continue
        found = f"{frame.filename}:{frame.lineno} in {frame.name}"
    return found


@dataclass
class Subject:
    """The user's network and callables, plus what the doctor learned about them."""

    build: Callable[[], Any]
    forward_fn: Callable[[Any, Any], Any]
    objective: Objective
    params_fn: Optional[Callable[[Any], Arrays]] = None
    gradients_fn: Optional[Callable[..., Any]] = None
    update_fn: Optional[Callable[..., Any]] = None
    lr: Any = None
    loss_fn: Optional[Callable[..., Any]] = None
    train_epoch: Optional[Callable[..., Any]] = None
    optimizer: Optional[Dict[str, Any]] = None
    prepare_inputs: Optional[Callable[[Any], Any]] = None
    encode_labels: Optional[Callable[[Any, int], Any]] = None
    seed: Optional[int] = None
    check_batch: Optional[int] = None
    template: Any = None
    paths: Dict[str, List[Step]] = field(default_factory=dict)  # discovered arrays, when no params
    batch_dependent: bool = False  # forward's rows depend on each other: call it per record
    random_forward: bool = False  # forward differs between calls even after reseeding

    # ------------------------------------------------------------ networks and arrays

    def fresh(self) -> Any:
        """A network as ``build()`` made it (a deep copy of the first one built)."""
        if self.template is None:
            self.template = self.call("build", self.build)
            if self.template is None:
                raise DoctorError("build() returned None: it must return the network (object, dict, list)")
        try:
            return copy.deepcopy(self.template)
        except Exception:
            return self.call("build", self.build)

    def arrays(self, net: Any) -> Arrays:
        """The live trainable arrays of ``net`` by name."""
        if self.params_fn is not None:
            found = self.call("params", self.params_fn, net)
            if not isinstance(found, dict) or not found:
                raise DoctorError(
                    f"params(net) returned {type(found).__name__}: it must return {{name: ndarray}}"
                )
            return {str(k): v for k, v in found.items()}
        return {name: _follow(net, path) for name, path in self.paths.items()}

    def copies(self, net: Any) -> Arrays:
        """Float64 copies of the trainable arrays (a snapshot)."""
        return {name: np.array(a, dtype=np.float64) for name, a in self.arrays(net).items()}

    def learning_rate(self, net: Any) -> float:
        if self.lr is None:
            raise DoctorError(
                "update= needs lr= (a float or (net) -> float): the gradient is (old - new) / lr"
            )
        return float(self.call("lr", self.lr, net) if callable(self.lr) else self.lr)

    # ------------------------------------------------------------ calling user code

    def call(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        if self.seed is not None:
            np.random.seed(self.seed)
            random.seed(self.seed)
        try:
            with quiet():
                return fn(*args)
        except (DoctorError, CodeError):
            raise
        except Exception as error:
            raise CodeError(what, error, user_frame(error)) from error

    def forward(self, net: Any, x: np.ndarray) -> np.ndarray:
        """forward(net, X) as a float64 array (n, C); per record when rows depend on each other."""
        if self.batch_dependent and len(x) > 1:
            return np.concatenate([self.forward(net, x[i : i + 1]) for i in range(len(x))])
        return as_outputs(self.call("forward", self.forward_fn, net, x), len(x))

    def step(self, net: Any, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Call an in-place training callable; the network it returns, or ``net`` when None."""
        result = self.call(what, fn, net, *args)
        # the contract says None or the network; a returned loss or history is not a network
        return result if result is not None and type(result) is type(net) else net

    # ------------------------------------------------------------ discovery

    def discover(self, net: Any) -> List[str]:
        """Find the float arrays of ``net`` (attributes, lists, dicts); return their full paths."""
        found: Dict[int, Tuple[str, List[Step]]] = {}
        _walk(net, [], 0, found, set())
        self.paths = {render(path): path for _, path in found.values()}
        return list(self.paths)

    def keep(self, names: List[str]) -> None:
        """Keep the discovered arrays ``names`` (the trainable ones) and name them for the report:
        an array in a dict by its key when no other kept array has that name, else its path."""
        kept = [self.paths[n] for n in names]
        self.paths = dict(zip(_short_names(kept), kept, strict=True))


def as_number(value: Any) -> float:
    """A reported loss as a float; ``(loss, grads)``, as CS231n's ``loss()`` returns it, gives the loss."""
    if isinstance(value, (tuple, list)) and value and not isinstance(value[0], (dict, list, tuple)):
        value = value[0]
    array = np.asarray(value, dtype=np.float64)
    if array.size != 1:
        raise ValueError(f"the loss has {array.size} values, not one number")
    return float(array.reshape(-1)[0])


def as_outputs(out: Any, n: int) -> np.ndarray:
    """forward's result as float64 (n, C): a list of column vectors (C, 1) or a single record's
    (C,) vector is accepted as the same rows."""
    out = np.array(out, dtype=np.float64)  # a copy: code may return a buffer it overwrites later
    if out.ndim == 3 and out.shape[-1] == 1:
        out = out[..., 0]
    if out.ndim == 1 and n == 1:
        out = out.reshape(1, -1)
    return out


def render(path: List[Step]) -> str:
    """``layers[0].W`` from [("attr", "layers"), ("index", 0), ("attr", "W")]."""
    text = ""
    for kind, value in path:
        if kind == "attr":
            text += f".{value}" if text else str(value)
        elif kind == "key":
            text += f"[{value!r}]" if text else str(value)
        else:
            text += f"[{value}]"
    return text


def _short_names(paths: List[List[Step]]) -> List[str]:
    """Full paths, except that an array kept in a dict is named by its key when no other array
    has that key or that name (``params['W1']`` is ``W1`` unless an attribute ``W1`` exists)."""
    full = [render(p) for p in paths]
    keys = [str(p[-1][1]) for p in paths if p[-1][0] == "key"]
    names = []
    for path, name in zip(paths, full, strict=True):
        last = str(path[-1][1])
        if path[-1][0] == "key" and len(path) > 1 and keys.count(last) == 1 and last not in full:
            names.append(last)
        else:
            names.append(name)
    return names


def _children(obj: Any) -> List[Tuple[Step, Any]]:
    """The (step, value) pairs one level below ``obj``: dict entries, list items, attributes."""
    if isinstance(obj, dict):
        return [(("key", key), value) for key, value in list(obj.items())[:_MAX_ITEMS]]
    if isinstance(obj, (list, tuple)):
        return [(("index", index), value) for index, value in enumerate(obj[:_MAX_ITEMS])]
    if hasattr(obj, "__dict__") and not isinstance(obj, _NOT_DATA):
        items = list(vars(obj).items())[:_MAX_ITEMS]
        return [(("attr", name), value) for name, value in items if not name.startswith("__")]
    return []


def _walk(
    obj: Any, path: List[Step], depth: int, found: Dict[int, Tuple[str, List[Step]]], seen: set
) -> None:
    """Each float array once, under the first path that reaches it; each container once."""
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind == "f" and obj.ndim >= 1 and obj.size > 0 and id(obj) not in found and path:
            found[id(obj)] = (render(path), list(path))
        return
    if depth >= _MAX_DEPTH or id(obj) in seen or isinstance(obj, (str, bytes, int, float, complex, bool)):
        return
    seen.add(id(obj))
    for step, value in _children(obj):
        _walk(value, [*path, step], depth + 1, found, seen)


_NOT_DATA = (type, types.FunctionType, types.MethodType, types.ModuleType, types.BuiltinFunctionType)


def _follow(net: Any, path: List[Step]) -> np.ndarray:
    obj = net
    for kind, value in path:
        obj = getattr(obj, value) if kind == "attr" else obj[value]
    return obj


def every_array_path(net: Any) -> Dict[str, np.ndarray]:
    """Every float array reachable from ``net``, by dotted path; unlike discovery, a container
    reached along two paths is listed under both (how aliased optimizer state shows)."""
    found: Dict[str, np.ndarray] = {}
    _walk_all(net, [], found, ())
    return found


def _walk_all(obj: Any, path: List[str], found: Dict[str, np.ndarray], ancestors: tuple) -> None:
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind == "f" and path:
            found[".".join(path)] = obj
        return
    if len(path) > _MAX_DEPTH or id(obj) in ancestors or isinstance(obj, (str, bytes, int, float, bool)):
        return
    ancestors = (*ancestors, id(obj))
    for (_, key), value in _children(obj):
        _walk_all(value, [*path, str(key)], found, ancestors)
