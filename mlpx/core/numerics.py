"""Numerically stable softmax, log-softmax and cross-entropy on logits, shared by losses and metrics."""

import numpy as np


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
