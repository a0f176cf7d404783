"""Three BLAS routines NumPy does not expose, called on NumPy's own BLAS: accumulating GEMM,
accumulating column sums (GEMV against ones) and axpy.

``np.matmul`` cannot accumulate into its output, so an optimizer step after the weight
gradient's GEMM costs extra passes over the largest matrix (for plain SGD: write the gradient,
scale it, subtract it). BLAS ``gemm`` has always taken ``beta``: with ``C`` the weights,
``alpha = -lr`` and ``beta = 1`` the GEMM *is* the SGD step. ``axpy`` (``y <- alpha x + y``)
is momentum's ``p -= lr * v`` in one threaded pass instead of NumPy's two single-threaded ones
(20 us against 100 us for the first layer's 784 x 300 weights here). A bias gradient is the
column sums of the layer's delta, ``delta.T @ ones``: the same accumulating GEMV makes it and
applies the step's first pass (``b <- -lr * sums + b``) in one call, where NumPy takes a
reduction and two more passes, each a few microseconds of dispatch at small batches.

All are the ``cblas_*`` functions of the very library NumPy loaded (found with threadpoolctl),
so one thread pool runs every product. Calling a second BLAS from the training loop (SciPy's
bundled copy, say) is no shortcut: each pool's idle threads spin while the other works, and the
epoch ran 10x slower here. Where NumPy's BLAS cannot be found or fails a self-test at import,
``gemm_tn_for``, ``gemm_nn_for`` and ``column_sums_for`` return None and ``axpy`` returns False:
callers fall back to NumPy.
"""

import ctypes
import os
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112
_POINTER = ctypes.c_void_p

# symbol templates and their integer type: scipy-openblas wheels prefix and suffix the ILP64 ones
_NAMINGS = (
    ("scipy_cblas_{}64_", ctypes.c_int64),
    ("cblas_{}64_", ctypes.c_int64),
    ("scipy_cblas_{}", ctypes.c_int),
    ("cblas_{}", ctypes.c_int),
)
_TYPES = {np.dtype(np.float32): ("s", ctypes.c_float), np.dtype(np.float64): ("d", ctypes.c_double)}

GemmTN = Callable[[float, np.ndarray, np.ndarray, float, np.ndarray], None]
ColumnSums = Callable[[float, np.ndarray, float, np.ndarray], None]


def numpy_blas_controller() -> Any:
    """threadpoolctl's controller of the BLAS library NumPy loaded (``num_threads``,
    ``set_num_threads``), or None when it cannot be told apart from another process-wide BLAS.

    Only NumPy's: limiting every BLAS (``threadpool_limits(user_api="blas")``) would also
    change the pool of a PyTorch or SciPy loaded beside it.
    """
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    controllers = ThreadpoolController().select(user_api="blas").lib_controllers
    numpy_dir = os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(np.__file__))), "numpy")
    own = [c for c in controllers if os.path.realpath(c.filepath).startswith(numpy_dir)]
    if len(own) == 1:
        return own[0]
    return controllers[0] if len(controllers) == 1 else None


def blas_takes(
    dtype: np.dtype, out: Any, a: Optional[np.ndarray] = None, b: Optional[np.ndarray] = None
) -> bool:
    """Whether raw BLAS (or C code beside it) may write ``out`` and read ``a`` and ``b``: ndarrays
    of ``dtype``, C-contiguous and aligned, ``out`` writeable. The callers check the shapes: BLAS
    would write past them. Spelt out, not looped: it runs several times a training step."""
    if not isinstance(out, np.ndarray):
        return False
    out_flags = out.flags
    if not (out_flags.writeable and out_flags.c_contiguous and out_flags.aligned and out.dtype == dtype):
        return False
    if a is not None and not (a.flags.c_contiguous and a.flags.aligned and a.dtype == dtype):
        return False
    return b is None or (b.flags.c_contiguous and b.flags.aligned and b.dtype == dtype)


def _numpy_blas_path() -> Optional[str]:
    """Path of the BLAS library NumPy loaded, or None when it cannot be told apart."""
    controller = numpy_blas_controller()
    return None if controller is None else controller.filepath


def _symbol(library: ctypes.CDLL, routine: str) -> Tuple[Optional[Callable[..., None]], type]:
    """The ``cblas_<routine>`` function under this build's naming, and its integer type."""
    for template, integer in _NAMINGS:
        function = getattr(library, template.format(routine), None)
        if function is not None:
            function.restype = None
            return function, integer
    return None, ctypes.c_int


# an array's data address as a ctypes argument, by id while the array lives: ``a.ctypes.data``
# costs ~1 us, as much as a small layer's whole GEMM, and the training loop passes the same
# buffers at every step
_ADDRESSES: Dict[int, Tuple["weakref.ref[np.ndarray]", ctypes.c_void_p]] = {}


def _address(array: np.ndarray) -> ctypes.c_void_p:
    key = id(array)
    entry = _ADDRESSES.get(key)
    if entry is not None and entry[0]() is array:
        return entry[1]
    address = ctypes.c_void_p(array.ctypes.data)

    def forget(ref: "weakref.ref[np.ndarray]", key: int = key) -> None:
        if _ADDRESSES.get(key, (None,))[0] is ref:
            del _ADDRESSES[key]

    _ADDRESSES[key] = (weakref.ref(array, forget), address)
    return address


def _bind_gemm(library: ctypes.CDLL, letter: str, scalar: type, transpose_a: bool) -> Optional[GemmTN]:
    # no argtypes: every argument goes as a ctypes object of its C type, most built once (ctypes'
    # conversion of 14 Python arguments cost more than a small layer's product)
    function, integer = _symbol(library, f"{letter}gemm")
    if function is None:
        return None
    op_a = ctypes.c_int(_TRANS if transpose_a else _NO_TRANS)
    order = (ctypes.c_int(_ROW_MAJOR), op_a, ctypes.c_int(_NO_TRANS))
    dims: Dict[Tuple[int, int, int], Tuple[Any, Any, Any]] = {}

    def gemm(alpha: float, a: np.ndarray, b: np.ndarray, beta: float, c: np.ndarray) -> None:
        """c (m, n) <- alpha * op(a) @ b + beta * c, for C-contiguous a, b (k, n) and c, where
        op(a) is a.T of a (k, m) (``gemm_tn``) or a itself, (m, k) (``gemm_nn``)."""
        k, m = a.shape if transpose_a else a.shape[::-1]
        n = b.shape[1]
        sizes = dims.get((m, n, k))
        if sizes is None:
            sizes = dims[(m, n, k)] = (integer(m), integer(n), integer(k))
        m_, n_, k_ = sizes
        function(
            *order, m_, n_, k_,
            scalar(alpha), _address(a), m_ if transpose_a else k_, _address(b), n_,  # lda, ldb = n
            scalar(beta), _address(c), n_,  # ldc = n
        )  # fmt: skip

    return gemm


def _bind_column_sums(
    library: ctypes.CDLL, letter: str, scalar: type, dtype: np.dtype
) -> Optional[ColumnSums]:
    function, integer = _symbol(library, f"{letter}gemv")
    if function is None:
        return None
    order, one = (ctypes.c_int(_ROW_MAJOR), ctypes.c_int(_TRANS)), integer(1)
    ones: Dict[int, np.ndarray] = {}  # rows -> a vector of that many ones, kept alive here
    dims: Dict[Tuple[int, int], Tuple[Any, Any]] = {}

    def column_sums(alpha: float, a: np.ndarray, beta: float, y: np.ndarray) -> None:
        """y (n,) <- alpha * a.T @ ones(k) + beta * y, for C-contiguous a (k, n) and y."""
        k, n = a.shape
        sizes = dims.get((k, n))
        if sizes is None:
            sizes = dims[(k, n)] = (integer(k), integer(n))
            ones.setdefault(k, np.ones(k, dtype))
        k_, n_ = sizes
        function(
            *order, k_, n_,
            scalar(alpha), _address(a), n_,  # lda = n
            _address(ones[k]), one,
            scalar(beta), _address(y), one,
        )  # fmt: skip

    return column_sums


def _bind_axpy(library: ctypes.CDLL, letter: str, scalar: type) -> Optional[Callable[..., None]]:
    function, integer = _symbol(library, f"{letter}axpy")
    if function is None:
        return None
    one = integer(1)

    def axpy_raw(alpha: float, x: np.ndarray, y: np.ndarray) -> None:
        """y <- alpha * x + y over every entry of C-contiguous x and y of one size."""
        function(integer(y.size), scalar(alpha), _address(x), one, _address(y), one)

    return axpy_raw


@dataclass(frozen=True)
class CblasAddresses:
    """Where ``cblas_?gemm`` and ``cblas_?axpy`` of NumPy's BLAS are, for compiled code that calls
    them directly (``mlpx.core.compiled``); ``ilp64``: their integers are 64-bit."""

    gemm: int
    axpy: int
    ilp64: bool


@dataclass(frozen=True)
class _Routines:
    gemm_tn: GemmTN
    gemm_nn: GemmTN
    column_sums: ColumnSums
    axpy: Callable[..., None]
    addresses: Optional[CblasAddresses]


def _passes_self_test(routines: _Routines, dtype: np.dtype) -> bool:
    rng = np.random.default_rng(0)
    a, b, c = (rng.standard_normal(shape).astype(dtype) for shape in ((5, 3), (5, 4), (3, 4)))
    expected = -0.5 * (a.T @ b) + 0.75 * c
    routines.gemm_tn(-0.5, a, b, 0.75, c)
    tripled = c.copy()
    routines.axpy(2.0, c, tripled)
    sums, expected_sums = c[0].copy(), 2.0 * b.sum(axis=0) + 0.5 * c[0]
    routines.column_sums(2.0, b, 0.5, sums)
    product, expected_product = b[:3].copy(), 2.0 * (a.T @ b) + b[:3]  # a.T (3, 5) @ b (5, 4)
    routines.gemm_nn(2.0, np.ascontiguousarray(a.T), b, 1.0, product)
    close = {"rtol": 1e-4, "atol": 1e-5}
    return bool(
        np.allclose(c, expected, **close)
        and np.allclose(tripled, 3 * expected, **close)
        and np.allclose(sums, expected_sums, **close)
        and np.allclose(product, expected_product, **close)
    )


def _addresses_of(library: ctypes.CDLL, letter: str) -> Optional[CblasAddresses]:
    (gemm, integer), (axpy, axpy_integer) = (
        _symbol(library, f"{letter}gemm"),
        _symbol(library, f"{letter}axpy"),
    )
    if integer is not axpy_integer:  # found under different namings: no one integer width for both
        return None
    return CblasAddresses(
        gemm=ctypes.cast(gemm, ctypes.c_void_p).value,
        axpy=ctypes.cast(axpy, ctypes.c_void_p).value,
        ilp64=integer is ctypes.c_int64,
    )


def _load() -> Dict[np.dtype, _Routines]:
    path = _numpy_blas_path()
    try:
        library = ctypes.CDLL(path) if path else None
    except OSError:
        library = None
    found = {}
    for dtype, (letter, scalar) in _TYPES.items():
        if library is None:
            break
        bound = (
            _bind_gemm(library, letter, scalar, transpose_a=True),
            _bind_gemm(library, letter, scalar, transpose_a=False),
            _bind_column_sums(library, letter, scalar, dtype),
            _bind_axpy(library, letter, scalar),
        )
        if all(routine is not None for routine in bound):
            routines = _Routines(*bound, addresses=_addresses_of(library, letter))
            if _passes_self_test(routines, dtype):
                found[dtype] = routines
    return found


_ROUTINES = _load()


def gemm_tn_for(dtype: np.dtype) -> Optional[GemmTN]:
    """The accumulating ``a.T @ b`` GEMM for ``dtype`` arrays, or None (use ``np.matmul``)."""
    routines = _ROUTINES.get(np.dtype(dtype))
    return routines.gemm_tn if routines else None


def gemm_nn_for(dtype: np.dtype) -> Optional[GemmTN]:
    """The accumulating ``a @ b`` GEMM for ``dtype`` arrays, or None (use ``np.matmul``)."""
    routines = _ROUTINES.get(np.dtype(dtype))
    return routines.gemm_nn if routines else None


def column_sums_for(dtype: np.dtype) -> Optional[ColumnSums]:
    """The accumulating column sums ``y <- alpha * a.T @ ones + beta * y`` for ``dtype`` arrays,
    or None (use ``np.add.reduce``)."""
    routines = _ROUTINES.get(np.dtype(dtype))
    return routines.column_sums if routines else None


def cblas_addresses(dtype: np.dtype) -> Optional[CblasAddresses]:
    """The addresses of NumPy's own ``cblas_?gemm`` and ``cblas_?axpy`` for ``dtype``, once they
    passed the self-test, or None (NumPy's BLAS out of reach)."""
    routines = _ROUTINES.get(np.dtype(dtype))
    return routines.addresses if routines else None


#: below this many entries NumPy's two passes beat the ~4 us of calling BLAS through ctypes
AXPY_MIN_SIZE = 32768


def axpy(alpha: float, x: np.ndarray, y: np.ndarray) -> bool:
    """``y <- alpha * x + y`` in place, in one BLAS pass; False (nothing done) if BLAS cannot,
    or if ``y`` is too small for the call to pay (then two NumPy passes are faster).

    Both arrays must be C-contiguous, of one shape and of a float dtype NumPy's BLAS serves.
    """
    if y.size < AXPY_MIN_SIZE:
        return False
    routines = _ROUTINES.get(y.dtype)
    if routines is None or x.dtype != y.dtype or x.shape != y.shape:
        return False
    if not (x.flags.c_contiguous and y.flags.c_contiguous and y.flags.writeable):
        return False
    routines.axpy(alpha, x, y)
    return True
