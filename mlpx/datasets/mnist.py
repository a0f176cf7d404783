"""The canonical MNIST files, shipped with mlpx: verified by checksum and header, cached decoded.

Each file is checked against the MD5 of its uncompressed content and its IDX header before any
array is returned. Decoded arrays are cached as ``.npy`` files keyed by the source file's
identity (path, size, modification time), so a replaced or damaged source is verified afresh.
"""

import gzip
import hashlib
import logging
import os
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np

from mlpx.datasets.idx import parse_idx
from mlpx.errors import DataError

log = logging.getLogger(__name__)

BUNDLED_DIR = Path(__file__).resolve().parent / "mnist_files"


@dataclass(frozen=True)
class MnistFile:
    filename: str
    md5: str  # of the uncompressed content
    shape: Tuple[int, ...]


MNIST_FILES: Dict[str, MnistFile] = {
    "train_images": MnistFile(
        "train-images-idx3-ubyte.gz", "6bbc9ace898e44ae57da46a324031adb", (60000, 28, 28)
    ),
    "train_labels": MnistFile("train-labels-idx1-ubyte.gz", "a25bea736e30d166cdddb491f175f624", (60000,)),
    "test_images": MnistFile(
        "t10k-images-idx3-ubyte.gz", "2646ac647ad5339dbf082846283269ea", (10000, 28, 28)
    ),
    "test_labels": MnistFile("t10k-labels-idx1-ubyte.gz", "27ae3e4e09519cfbb04c329615203637", (10000,)),
}


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/mlpx`` or ``~/.cache/mlpx``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mlpx"


def load_mnist(directory: Optional[Path] = None, cache_dir: Optional[Path] = None) -> Dict[str, np.ndarray]:
    """The four MNIST arrays as uint8, keyed like ``MNIST_FILES``; images (n, 28, 28).

    ``directory`` holds the four ``.gz`` files (default: the copy shipped with mlpx);
    ``cache_dir`` None disables the cache of decoded arrays.
    """
    directory = Path(directory) if directory is not None else BUNDLED_DIR
    return {
        key: _load_one(_source_path(directory, spec), spec, cache_dir) for key, spec in MNIST_FILES.items()
    }


def _source_path(directory: Path, spec: MnistFile) -> Path:
    path = directory / spec.filename
    uncompressed = directory / spec.filename.removesuffix(".gz")
    if not path.exists() and uncompressed.exists():
        return uncompressed
    if not path.exists():
        raise DataError(
            f"MNIST file {path} is missing (expected the canonical file whose uncompressed "
            f"MD5 is {spec.md5}). Point data.path at a folder holding the four MNIST files, "
            "or leave data.path unset to use the copy shipped with mlpx."
        )
    return path


def _load_one(path: Path, spec: MnistFile, cache_dir: Optional[Path]) -> np.ndarray:
    cache_path = _cache_path(path, spec, cache_dir) if cache_dir is not None else None
    if cache_path is not None:
        cached = _read_cache(cache_path, spec)
        if cached is not None:
            return cached
    array = read_verified(path, spec)
    if cache_path is not None:
        _write_cache(cache_path, array)
    return array


def read_verified(path: Path, spec: MnistFile) -> np.ndarray:
    """Decompress, check the MD5 and the IDX header, and decode; DataError names what is wrong."""
    try:
        raw = path.read_bytes()
        content = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(
            f"MNIST file {path} cannot be decompressed ({type(exc).__name__}: {exc}); it is "
            f"truncated or corrupt. Expected a gzip file whose content has MD5 {spec.md5}: "
            "replace it with a fresh copy."
        ) from exc
    digest = hashlib.md5(content).hexdigest()
    if digest != spec.md5:
        raise DataError(
            f"MNIST file {path} has the wrong content: MD5 {digest}, expected {spec.md5} "
            f"for {spec.filename}. The file is corrupt or is not the canonical MNIST file: "
            "replace it with a fresh copy."
        )
    try:
        array = parse_idx(content)
    except ValueError as exc:
        raise DataError(f"MNIST file {path} is not a valid IDX file: {exc}") from exc
    if array.shape != spec.shape:
        raise DataError(f"MNIST file {path} holds shape {array.shape}, expected {spec.shape}")
    return array


def _cache_path(path: Path, spec: MnistFile, cache_dir: Path) -> Path:
    stat = path.stat()
    identity = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{spec.md5}"
    key = hashlib.sha1(identity.encode()).hexdigest()[:16]
    return Path(cache_dir) / "mnist" / f"{spec.filename.split('.')[0]}-{key}.npy"


def _read_cache(cache_path: Path, spec: MnistFile) -> Optional[np.ndarray]:
    """The cached array, or None when absent or damaged (then it is rebuilt from the source)."""
    crc_path = cache_path.with_suffix(".crc32")
    try:
        array = np.load(cache_path, mmap_mode="r", allow_pickle=False)  # no copy: page cache
        expected_crc = int(crc_path.read_text())
    except (OSError, ValueError):
        return None
    if array.dtype != np.uint8 or array.shape != spec.shape or zlib.crc32(array) != expected_crc:
        log.warning("discarding damaged MNIST cache file %s", cache_path)
        return None
    return array


def _write_cache(cache_path: Path, array: np.ndarray) -> None:
    """Write atomically (parallel jobs may race); a cache that cannot be written is skipped."""
    try:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        for target, write in (
            (cache_path.with_suffix(".crc32"), lambda f: f.write(str(zlib.crc32(array)).encode())),
            (cache_path, lambda f: np.save(f, array, allow_pickle=False)),
        ):
            with tempfile.NamedTemporaryFile(dir=cache_path.parent, delete=False) as tmp:
                write(tmp)
            os.replace(tmp.name, target)
    except OSError as exc:
        log.warning("cannot write the MNIST cache %s (%s); continuing without it", cache_path, exc)
