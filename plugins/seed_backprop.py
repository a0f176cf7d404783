"""Example plugin that teaches: the seed question's loss, with its mistake kept on purpose.

The value is cross-entropy, what the seed's author printed; the gradient is what their
backprop really computed, the gradient of squared error through softmax,
J (p - y) with J = diag(p) - p p' the softmax Jacobian. `mlpx check seed_backprop` names the
mistake; `python -m mlpx loss=seed_backprop` refuses to start for the same reason (and trains
the seed's network as it was with `checks.enabled=false`).
"""

import numpy as np

import mlpx


def _softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


class SeedBackprop:
    """value: mean cross-entropy; grad: the squared-error-through-softmax gradient (the bug)."""

    def value(self, logits: np.ndarray, y_onehot: np.ndarray) -> float:
        p = np.clip(_softmax(logits), 1e-12, 1.0)
        return float(-(y_onehot * np.log(p)).sum(axis=1).mean())

    def grad(self, logits: np.ndarray, y_onehot: np.ndarray) -> np.ndarray:
        p = _softmax(logits)
        error = p - y_onehot  # the seed's `y - final_outputs`, with the sign of descent
        # error.dot(dsoftmax(p)) for every row at once: J (p - y), J symmetric
        through_softmax = p * (error - (error * p).sum(axis=1, keepdims=True))
        return through_softmax / len(logits)

    def probs(self, logits: np.ndarray) -> np.ndarray:
        return _softmax(logits)


@mlpx.hookimpl
def register_losses(register):
    register("seed_backprop", SeedBackprop)
