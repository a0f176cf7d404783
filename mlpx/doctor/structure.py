"""The layer structure read off the arrays' shapes: which arrays form layer 1, 2, ... L.

Weights chain from the input width to the classes: a matrix with one side equal to the current
width is the next layer, in row (in, out) or column (out, in) orientation; a bias belongs to the
layer whose output width is its size (in order of appearance when several have that width).
"""

from typing import Dict, List, Optional

import numpy as np

from mlpx.doctor.objective import is_weight


def layer_order(arrays: Dict[str, np.ndarray], n_features: int, n_classes: int) -> Optional[List[List[str]]]:
    """Names per layer, input first; None when the shapes do not form one chain."""
    weights = [n for n, a in arrays.items() if is_weight(n, a)]
    biases = [n for n, a in arrays.items() if not is_weight(n, a)]
    layers: List[List[str]] = []
    outs: List[int] = []
    width, used, orientation = n_features, set(), None
    while len(used) < len(weights):
        candidates = []
        for name in weights:
            if name in used:
                continue
            shape = np.shape(arrays[name])
            if len(shape) != 2:
                return None
            # one side more than the width: the bias folded in as a row (column) of the weight
            if shape[0] in (width, width + 1) and orientation in (None, "row"):
                candidates.append((name, shape[1], "row"))
            if shape[1] in (width, width + 1) and orientation in (None, "column"):
                candidates.append((name, shape[0], "column"))
        if not candidates:
            return None
        exact = [c for c in candidates if np.shape(arrays[c[0]])[0 if c[2] == "row" else 1] == width]
        name, width, orientation = (exact or candidates)[0]
        used.add(name)
        layers.append([name])
        outs.append(width)
    if not layers or outs[-1] != n_classes:
        return None
    for name in biases:
        size = int(np.size(arrays[name]))
        for index, out in enumerate(outs):
            if out == size and not any(b in biases for b in layers[index][1:]):
                layers[index].append(name)
                break
        else:
            return None
    return layers


def layer_of(layers: Optional[List[List[str]]], name: str) -> Optional[int]:
    """1-based layer index of ``name``."""
    for index, names in enumerate(layers or [], start=1):
        if name in names:
            return index
    return None


def is_bias(name: str, array: np.ndarray) -> bool:
    return not is_weight(name, array)
