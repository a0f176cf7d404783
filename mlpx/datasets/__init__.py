"""Datasets as arrays: the ``Dataset`` every dataset plugin returns, and the MNIST reader."""

import hashlib
from dataclasses import dataclass
from typing import Mapping, Optional, Tuple

import numpy as np

#: the splits of a Dataset, with their MLflow dataset context
SPLITS = {"train": "training", "val": "validation", "test": "test"}


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
    #: per split ("train", "val", "test"): (source path or URI, digest), recorded as the run's
    #: MLflow datasets; a dataset plugin that leaves it None gets digests of the arrays' shape
    #: and first rows
    provenance: Optional[Mapping[str, Tuple[str, str]]] = None

    @property
    def n_features(self) -> int:
        return self.x_train.shape[1]

    def sizes(self) -> dict:
        return {"train": len(self.y_train), "val": len(self.y_val), "test": len(self.y_test)}

    def split(self, split: str) -> Tuple[np.ndarray, np.ndarray]:
        """(x, y) of ``split``: "train", "val" or "test"."""
        return getattr(self, f"x_{split}"), getattr(self, f"y_{split}")

    def described_splits(self) -> list:
        """Each split as plain data for ``RunRecorder.log_inputs``: name, digest, source, context,
        and the features' and targets' shape and dtype."""
        described = []
        for split, context in SPLITS.items():
            x, y = self.split(split)
            if self.provenance is not None:
                source, digest = self.provenance[split]
            else:
                sample = hashlib.sha256(f"{self.name}|{split}|{x.shape}|{x.dtype}".encode())
                sample.update(np.ascontiguousarray(x[:100]).tobytes())
                sample.update(np.ascontiguousarray(y).tobytes())
                source, digest = None, sample.hexdigest()[:16]  # MLflow: the code that ran
            described.append(
                {
                    "name": f"{self.name}_{'validation' if split == 'val' else split}",
                    "digest": digest,
                    "source": source,
                    "context": context,
                    "features": [list(x.shape), x.dtype.str],
                    "targets": [list(y.shape), y.dtype.str],
                }
            )
        return described
