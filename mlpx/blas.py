"""``C <- alpha * A.T @ B + beta * C`` on NumPy's own BLAS, for fused weight updates.

``np.matmul`` cannot accumulate into its output, so an optimizer step after the weight
gradient's GEMM costs extra passes over the largest matrix (for plain SGD, write the gradient,
scale it, subtract it). BLAS ``gemm`` has always taken ``beta``: with ``C`` the weights,
``alpha = -lr`` and ``beta = 1`` the GEMM *is* the SGD step.

This calls ``cblas_?gemm`` of the very library NumPy loaded (found with threadpoolctl), so the
same thread pool runs every product. Calling a second BLAS (SciPy's bundled copy, say) from the
training loop is no shortcut: its idle threads spin while NumPy's work, and the epoch ran 10x
slower here. Where NumPy's BLAS cannot be found or fails a self-test, ``gemm_tn`` is None and
callers fall back to ``np.matmul``.
"""

import ctypes
import os
from typing import Callable, Optional

import numpy as np

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112

# (symbol, integer type): scipy-openblas wheels prefix and suffix their ILP64 symbols
_CANDIDATES = (
    ("scipy_cblas_{t}gemm64_", ctypes.c_int64),
    ("cblas_{t}gemm64_", ctypes.c_int64),
    ("scipy_cblas_{t}gemm", ctypes.c_int),
    ("cblas_{t}gemm", ctypes.c_int),
)

GemmTN = Callable[[float, np.ndarray, np.ndarray, float, np.ndarray], None]


def _numpy_blas_path() -> Optional[str]:
    """Path of the BLAS library NumPy loaded, or None when it cannot be told apart."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    paths = [lib.filepath for lib in ThreadpoolController().select(user_api="blas").lib_controllers]
    numpy_root = os.path.dirname(os.path.dirname(os.path.realpath(np.__file__)))
    own = [p for p in paths if os.path.realpath(p).startswith(os.path.join(numpy_root, "numpy"))]
    if len(own) == 1:
        return own[0]
    return paths[0] if len(paths) == 1 else None


def _bind(library: ctypes.CDLL, letter: str, scalar: type) -> Optional[GemmTN]:
    for template, integer in _CANDIDATES:
        try:
            function = getattr(library, template.format(t=letter))
        except AttributeError:
            continue
        function.restype = None
        pointer = ctypes.c_void_p
        function.argtypes = [
            ctypes.c_int, ctypes.c_int, ctypes.c_int, integer, integer, integer,  # layout, m, n, k
            scalar, pointer, integer, pointer, integer,  # alpha, a, lda, b, ldb
            scalar, pointer, integer,  # beta, c, ldc
        ]  # fmt: skip
        return _gemm_tn(function)
    return None


def _gemm_tn(function) -> GemmTN:
    def gemm_tn(alpha: float, a: np.ndarray, b: np.ndarray, beta: float, c: np.ndarray) -> None:
        """c (m, n) <- alpha * a.T @ b + beta * c, for C-contiguous a (k, m) and b (k, n)."""
        k, m = a.shape
        n = b.shape[1]
        function(
            _ROW_MAJOR, _TRANS, _NO_TRANS, m, n, k,
            alpha, a.ctypes.data, m, b.ctypes.data, n,
            beta, c.ctypes.data, n,
        )  # fmt: skip

    return gemm_tn


def _passes_self_test(gemm_tn: GemmTN, dtype: type) -> bool:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((5, 3)).astype(dtype)
    b = rng.standard_normal((5, 4)).astype(dtype)
    c = rng.standard_normal((3, 4)).astype(dtype)
    expected = -0.5 * (a.T @ b) + 0.75 * c
    gemm_tn(-0.5, a, b, 0.75, c)
    return bool(np.allclose(c, expected, rtol=1e-4, atol=1e-5))


def _load() -> dict:
    path = _numpy_blas_path()
    if path is None:
        return {}
    try:
        library = ctypes.CDLL(path)
    except OSError:
        return {}
    found = {}
    for dtype, letter, scalar in ((np.float32, "s", ctypes.c_float), (np.float64, "d", ctypes.c_double)):
        gemm_tn = _bind(library, letter, scalar)
        if gemm_tn is not None and _passes_self_test(gemm_tn, dtype):
            found[np.dtype(dtype)] = gemm_tn
    return found


_GEMM_TN = _load()


def gemm_tn_for(dtype: np.dtype) -> Optional[GemmTN]:
    """The accumulating ``a.T @ b`` GEMM for ``dtype`` arrays, or None (use ``np.matmul``)."""
    return _GEMM_TN.get(np.dtype(dtype))
