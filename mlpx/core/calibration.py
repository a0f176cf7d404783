"""How confident the model is, and whether its confidence is honest (validation set).

Each quantity answers one symptom of "validation loss rises while accuracy rises": the model
grows more confident (``confidence``), its confidence stops matching its accuracy (``ece``),
and a handful of confidently wrong examples dominate cross-entropy (``top1pct_share``).
"""

from typing import Dict

import numpy as np

from mlpx.core.numerics import log_softmax


def calibration_metrics(logits: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> Dict[str, float]:
    """``confidence``, ``ece`` and ``top1pct_share`` of ``logits`` (n_samples, n_classes).

    - confidence: mean of the highest softmax probability per example.
    - ece: expected calibration error, sum over equal-width confidence bins of
      (share of examples in the bin) x |accuracy - mean confidence| in the bin.
    - top1pct_share: the share of the summed cross-entropy contributed by the 1 % of examples
      that are wrong with the highest confidence (at least one example).
    """
    log_probs = log_softmax(logits.astype(np.float64, copy=False))
    n_samples = len(labels)
    predicted = log_probs.argmax(axis=1)
    confidence = np.exp(log_probs[np.arange(n_samples), predicted])
    correct = predicted == labels
    ece = 0.0
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    for b in range(n_bins):
        in_bin = bins == b
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    losses = -log_probs[np.arange(n_samples), labels]
    wrong = np.flatnonzero(~correct)
    k = max(1, int(round(0.01 * n_samples)))
    worst = wrong[np.argsort(-confidence[wrong])[:k]]
    total = losses.sum()
    share = float(losses[worst].sum() / total) if total > 0 and len(worst) else 0.0
    return {"confidence": float(confidence.mean()), "ece": float(ece), "top1pct_share": share}
