"""Pin the BLAS that Numba's ``np.dot`` calls to one thread, for the duration of a kernel.

Numba's ``np.dot`` calls scipy's BLAS (``scipy.linalg.cython_blas``; on PyPI wheels a bundled
OpenBLAS). OpenBLAS runs its own thread pool, whose workers keep spinning for ~0.1 s after each
call. A kernel that runs its work in Numba's thread pool (``prange``) and calls BLAS from inside
it therefore has two problems with that pool: a BLAS call large enough to go multi-threaded
inside a ``prange`` job oversubscribes the cores (measured: 8.8 s instead of 14 ms for 256 steps
of a (1024, 256) x (256, 16) GEMM split over two jobs), and the workers still spinning after an
earlier threaded call take a core from the ``prange`` jobs (measured: projection + recurrence
94-130 ms against 13 + 36 ms apart). With OpenBLAS set to one thread, each call runs in the
thread that makes it and the pool sleeps.

:func:`single_threaded_blas` finds every loaded OpenBLAS with the 32-bit-integer interface that
scipy uses (``scipy_openblas_*`` in scipy's wheels, ``openblas_*`` in a system or conda build)
through ``/proc/self/maps`` and ``ctypes``, sets it to one thread, and restores the previous count
on exit. Where none is found (not Linux, scipy built on MKL or Accelerate), :func:`available` is
False and the kernels keep plans that leave the threading to BLAS. The setting is process-wide:
another Python thread calling the same BLAS meanwhile also runs single-threaded.
"""

from __future__ import annotations

import contextlib
import ctypes
import sys

#: (get, set) symbol pairs, in the order tried; ILP64 builds (``..._64_``, NumPy's) are not used
#: by Numba and are left alone.
SYMBOLS = (("scipy_openblas_get_num_threads", "scipy_openblas_set_num_threads"),
           ("openblas_get_num_threads", "openblas_set_num_threads"))

_handles: list | None = None


def _find_openblas() -> list:
    """``(get, set)`` ctypes functions of every loaded OpenBLAS that exports a pair of
    :data:`SYMBOLS`; loads scipy's BLAS first so that it is among them."""
    if not sys.platform.startswith("linux"):
        return []
    import scipy.linalg.cython_blas  # noqa: F401  (the library Numba's np.dot calls)

    try:
        with open("/proc/self/maps") as f:
            paths = sorted({line.split()[-1] for line in f
                            if "openblas" in line.lower() and line.split()[-1].startswith("/")})
    except OSError:
        return []
    found = []
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for get_name, set_name in SYMBOLS:
            if hasattr(lib, get_name) and hasattr(lib, set_name):
                get, put = getattr(lib, get_name), getattr(lib, set_name)
                get.restype, get.argtypes = ctypes.c_int, []
                put.restype, put.argtypes = None, [ctypes.c_int]
                found.append((get, put))
                break
    return found


def _openblas() -> list:
    global _handles
    if _handles is None:
        _handles = _find_openblas()
    return _handles


def available() -> bool:
    """True when the thread count of the BLAS that Numba calls can be set."""
    return bool(_openblas())


@contextlib.contextmanager
def single_threaded_blas():
    """Run the block with every found OpenBLAS at one thread; restore the counts after.

    Yields :func:`available` (False: nothing was changed)."""
    handles = _openblas()
    before = [get() for get, _ in handles]
    for _, put in handles:
        put(1)
    try:
        yield bool(handles)
    finally:
        for (_, put), n in zip(handles, before, strict=True):
            put(n)
