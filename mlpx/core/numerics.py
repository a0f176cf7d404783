"""Numerically stable softmax, log-softmax and cross-entropy on logits, shared by losses and metrics."""

from typing import Dict, Tuple

import numpy as np

#: from this many rows a loop over few columns beats NumPy's axis-1 reduction, which pays per row
#: (a (1024, 10) row max: 46 us reduced, 12 us column by column; a (32, 10) one: 2.4 against 7.5)
COLUMN_LOOP_ROWS = 256
COLUMN_LOOP_MAX_COLUMNS = 32
_ONES: Dict[Tuple[int, np.dtype], np.ndarray] = {}


def row_max(a: np.ndarray) -> np.ndarray:
    """Each row's maximum of ``a`` (n_rows, n_columns), as (n_rows, 1); NaN propagates."""
    n_rows, n_columns = a.shape
    if n_rows < COLUMN_LOOP_ROWS or n_columns > COLUMN_LOOP_MAX_COLUMNS or n_columns < 2:
        return np.maximum.reduce(a, axis=1, keepdims=True)
    out = np.maximum(a[:, 0:1], a[:, 1:2])
    for column in range(2, n_columns):
        np.maximum(out, a[:, column : column + 1], out=out)
    return out


def row_sums(a: np.ndarray) -> np.ndarray:
    """Each row's sum of float ``a`` (n_rows, n_columns), as (n_rows, 1): a product with a column
    of ones, which BLAS does in one pass (21 us reduced against 3 us for (1024, 10) here)."""
    key = (a.shape[1], a.dtype)
    ones = _ONES.get(key)
    if ones is None:
        ones = _ONES[key] = np.ones((a.shape[1], 1), a.dtype)
    return a @ ones


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax of ``logits`` (n_samples, n_classes); finite for any finite input."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    shifted -= np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return shifted


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of ``logits`` (n_samples, n_classes); rows sum to 1, never overflows."""
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    return probs


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean cross-entropy of integer ``labels`` (n_samples,) under ``logits`` (n_samples, n_classes)."""
    log_probs = log_softmax(logits)
    return float(-log_probs[np.arange(len(labels)), labels].mean(dtype=np.float64))


def one_hot(labels: np.ndarray, n_classes: int, dtype: np.dtype) -> np.ndarray:
    """(n_samples,) integer labels -> (n_samples, n_classes) one-hot rows of ``dtype``."""
    encoded = np.zeros((len(labels), n_classes), dtype=dtype)
    encoded[np.arange(len(labels)), labels] = 1
    return encoded
