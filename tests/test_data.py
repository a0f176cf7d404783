"""MNIST: the shipped files verify, damaged copies fail loudly, the cache is transparent."""

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from mlpx.builtins.datasets import Mnist
from mlpx.datasets.mnist import BUNDLED_DIR, MNIST_FILES, load_mnist
from mlpx.errors import DataError


@pytest.fixture
def mnist_copy(tmp_path) -> Path:
    folder = tmp_path / "mnist"
    shutil.copytree(BUNDLED_DIR, folder)
    return folder


def _rewrite(path: Path, transform) -> None:
    content = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(transform(content)))


def test_shipped_files_load_with_expected_shapes_and_labels(tmp_path):
    arrays = load_mnist(cache_dir=None)
    for key, spec in MNIST_FILES.items():
        assert arrays[key].shape == spec.shape and arrays[key].dtype == np.uint8
    assert np.bincount(arrays["train_labels"]).tolist()[:3] == [5923, 6742, 5958]  # MNIST's counts
    assert arrays["test_labels"][:5].tolist() == [7, 2, 1, 0, 4]


def test_corrupted_copy_fails_naming_file_and_checksum(mnist_copy):
    path = mnist_copy / "train-labels-idx1-ubyte.gz"
    _rewrite(path, lambda c: c[:100] + bytes([(c[100] + 1) % 10]) + c[101:])  # one wrong label
    with pytest.raises(DataError) as info:
        load_mnist(mnist_copy, cache_dir=None)
    message = str(info.value)
    assert str(path) in message
    assert MNIST_FILES["train_labels"].md5 in message
    assert "replace it" in message


def test_truncated_gzip_fails_naming_file(mnist_copy):
    path = mnist_copy / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:50000])
    with pytest.raises(DataError) as info:
        load_mnist(mnist_copy, cache_dir=None)
    assert str(path) in str(info.value) and "truncated or corrupt" in str(info.value)


def test_swapped_files_fail(mnist_copy):
    images, labels = mnist_copy / "t10k-images-idx3-ubyte.gz", mnist_copy / "t10k-labels-idx1-ubyte.gz"
    data = images.read_bytes()
    images.write_bytes(labels.read_bytes())
    labels.write_bytes(data)
    with pytest.raises(DataError, match="wrong content"):
        load_mnist(mnist_copy, cache_dir=None)


def test_missing_file_says_how_to_fix(mnist_copy):
    (mnist_copy / "train-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataError, match="is missing.*data.path"):
        load_mnist(mnist_copy, cache_dir=None)


def test_cache_returns_identical_arrays_and_notices_a_changed_source(mnist_copy, tmp_path):
    cache = tmp_path / "cache"
    first = load_mnist(mnist_copy, cache_dir=cache)
    assert len(list((cache / "mnist").glob("*.npy"))) == 4
    second = load_mnist(mnist_copy, cache_dir=cache)
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])
    # damage the source after caching: the cache must not hide it
    _rewrite(mnist_copy / "train-labels-idx1-ubyte.gz", lambda c: c[:-1] + b"\x09")
    with pytest.raises(DataError):
        load_mnist(mnist_copy, cache_dir=cache)


def test_damaged_cache_file_is_rebuilt(mnist_copy, tmp_path):
    cache = tmp_path / "cache"
    expected = load_mnist(mnist_copy, cache_dir=cache)["test_labels"]
    cached = next((cache / "mnist").glob("t10k-labels*.npy"))
    raw = bytearray(cached.read_bytes())
    raw[-1] ^= 0xFF
    cached.write_bytes(bytes(raw))
    np.testing.assert_array_equal(load_mnist(mnist_copy, cache_dir=cache)["test_labels"], expected)


def test_validation_split_comes_from_train_and_is_fixed(tmp_path):
    data = Mnist(val_size=5000, cache_dir=str(tmp_path)).load()
    assert data.sizes() == {"train": 55000, "val": 5000, "test": 10000}
    assert data.x_train.dtype == np.float32 and data.x_train.shape[1] == 784
    assert 0.0 <= data.x_train.min() and data.x_train.max() <= 1.0
    train_rows = {row.tobytes() for row in data.x_train[:, 100:700]}
    overlap = sum(row.tobytes() in train_rows for row in data.x_val[:, 100:700])
    assert overlap < 10  # only MNIST's handful of duplicate images may appear in both
    again = Mnist(val_size=5000, cache_dir=str(tmp_path)).load()
    np.testing.assert_array_equal(data.y_val, again.y_val)
    test = load_mnist(cache_dir=None)["test_labels"]
    np.testing.assert_array_equal(data.y_test, test)  # test set untouched by the split
