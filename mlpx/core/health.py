"""Per-layer health of the network, measured once per epoch.

- ``grad_norm/layerL``: norm of the loss gradient of layer L's weights on a fixed probe batch
  of training data. Near zero in early layers: vanishing gradients; huge: exploding.
- ``update_ratio/layerL``: norm of one optimizer step's change to the weights over the weights'
  norm. Around 1e-3 is healthy; far below, the learning rate is too low; near 1e-1 or more, the
  steps are so large that the loss oscillates or climbs.
- ``weight_norm/layerL``: norm of the weights; steady growth while validation loss rises is
  the network becoming overconfident.
- ``dead_units/layerL``: share of a hidden layer's units that output zero for every validation
  example (only for activations that output exactly zero, such as ReLU): they get no gradient
  and never recover.
"""

from typing import Dict, List

import numpy as np


def can_die(activation) -> bool:
    """Whether the activation outputs exactly zero for negative inputs (ReLU-like)."""
    probe = np.array([[-3.0, -1.0, -0.1]])
    with np.errstate(all="ignore"):
        return bool(np.all(np.asarray(activation.forward(probe)) == 0))


def dead_unit_shares(hidden: List[np.ndarray]) -> Dict[str, float]:
    """Share of units per hidden layer whose output is <= 0 for every row of ``hidden[l]``."""
    return {
        f"dead_units/layer{layer}": float(np.mean(np.all(a <= 0, axis=0)))
        for layer, a in enumerate(hidden, start=1)
    }


def norms(arrays: Dict[str, np.ndarray], prefix: str) -> Dict[str, float]:
    """``{prefix}/layerL``: Frobenius norm of each weight matrix ``WL`` in ``arrays``."""
    return {
        f"{prefix}/layer{key[1:]}": float(np.linalg.norm(value))
        for key, value in arrays.items()
        if key.startswith("W")
    }


def update_ratios(before: Dict[str, np.ndarray], after: Dict[str, np.ndarray]) -> Dict[str, float]:
    """``update_ratio/layerL`` = ||W_after - W_before|| / ||W_before|| for each weight matrix."""
    ratios = {}
    for key, old in before.items():
        scale = float(np.linalg.norm(old))
        change = float(np.linalg.norm(after[key] - old))
        ratios[f"update_ratio/layer{key[1:]}"] = change / scale if scale > 0 else float("inf")
    return ratios
