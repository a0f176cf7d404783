"""Built-in datasets: MNIST from the verified files shipped with mlpx."""

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from mlpx.datasets import Dataset
from mlpx.datasets.mnist import BUNDLED_DIR, MNIST_FILES, default_cache_dir, load_mnist
from mlpx.hookspecs import hookimpl


@dataclass
class MnistConfig:
    path: Optional[str] = None  # folder with the four .gz files; None = the copy in mlpx
    val_size: int = 5000  # validation images taken from the 60,000 training images
    split_seed: int = 0  # fixes which images form the validation split, whatever the run seed
    train_size: Optional[int] = None  # use only this many training images (quick experiments)
    test_size: Optional[int] = None  # evaluate on only this many test images
    cache: bool = True  # cache decoded arrays (in cache_dir, default ~/.cache/mlpx)
    cache_dir: Optional[str] = None


class Mnist:
    """MNIST: 28x28 grey digits as 784 features in [0, 1], 10 classes."""

    def __init__(
        self,
        path: Optional[str] = None,
        val_size: int = 5000,
        split_seed: int = 0,
        train_size: Optional[int] = None,
        test_size: Optional[int] = None,
        cache: bool = True,
        cache_dir: Optional[str] = None,
    ) -> None:
        if not 0 < val_size < 60000:
            raise ValueError(f"val_size must be between 1 and 59,999, got {val_size}")
        for label, size in (("train_size", train_size), ("test_size", test_size)):
            if size is not None and size < 1:
                raise ValueError(f"{label} must be >= 1 or null, got {size}")
        self.path = Path(path).expanduser() if path else None
        self.val_size, self.split_seed = val_size, split_seed
        self.train_size, self.test_size = train_size, test_size
        self.cache_dir = (
            None if not cache else Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        )

    def load(self) -> Dataset:
        raw = load_mnist(self.path, self.cache_dir)
        order = np.random.default_rng(self.split_seed).permutation(len(raw["train_labels"]))
        val_idx, train_idx = order[: self.val_size], order[self.val_size :]
        if self.train_size is not None:
            train_idx = train_idx[: self.train_size]
        test_idx = np.arange(len(raw["test_labels"]))[: self.test_size]
        images, labels = raw["train_images"], raw["train_labels"]
        return Dataset(
            name="mnist",
            x_train=_features(images[train_idx]),
            y_train=labels[train_idx].astype(np.int64),
            x_val=_features(images[val_idx]),
            y_val=labels[val_idx].astype(np.int64),
            x_test=_features(raw["test_images"][test_idx]),
            y_test=raw["test_labels"][test_idx].astype(np.int64),
            n_classes=10,
            provenance=self._provenance({"train": train_idx, "val": val_idx, "test": test_idx}),
        )

    def _provenance(self, indices: dict) -> dict:
        """Each split's source file and digest: the MD5s of its two files and its indices."""
        folder = (self.path or BUNDLED_DIR).resolve()
        provenance = {}
        for split, idx in indices.items():
            prefix = "test" if split == "test" else "train"
            images, labels = MNIST_FILES[f"{prefix}_images"], MNIST_FILES[f"{prefix}_labels"]
            digest = hashlib.sha256(f"{images.md5}|{labels.md5}|{split}|".encode())
            digest.update(np.asarray(idx, dtype=np.int64).tobytes())
            provenance[split] = (str(folder / images.filename), digest.hexdigest()[:16])
        return provenance


def _features(images: np.ndarray) -> np.ndarray:
    """(n, 28, 28) uint8 -> (n, 784) float32 in [0, 1]."""
    flat = images.reshape(len(images), -1)
    return np.multiply(flat, np.float32(1 / 255), dtype=np.float32)  # one pass, no uint8->f32 copy


@hookimpl
def register_datasets(register):
    register("mnist", Mnist, MnistConfig)
