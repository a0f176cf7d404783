"""Datasets as arrays: the ``Dataset`` every dataset plugin returns, and the MNIST reader."""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Dataset:
    """Train, validation and test splits.

    ``x_*`` are float32 of shape (n_samples, n_features) scaled to [0, 1]; ``y_*`` are int64
    class indices of shape (n_samples,). The validation split comes from the training data.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int

    @property
    def n_features(self) -> int:
        return self.x_train.shape[1]

    def sizes(self) -> dict:
        return {"train": len(self.y_train), "val": len(self.y_val), "test": len(self.y_test)}
