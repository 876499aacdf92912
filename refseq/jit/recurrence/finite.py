"""A parallel all-finite test for the jit tier's ``check_finite`` (no temporary arrays).

``np.isfinite(x).all()`` allocates a boolean array as large as ``x`` and reads it again; on the
recurrence's inputs that is a few percent of the kernel, on the input projection up to ~10 %
(docs/hot-paths/recurrence-kernels.md, "Validation cost"). :func:`all_finite` counts the
non-finite entries in one parallel pass instead: ``v - v`` is 0 for a finite ``v`` and NaN for
NaN or ``±inf``, and ``(v - v) != 0`` is a branch-free integer that LLVM sums with vector
instructions (an integer sum is exact in any order, so this needs no ``fastmath``). It is the
predicate passed to :func:`refseq.recurrence.checks.check_all_finite`, which builds the usual
message naming the argument when it says False.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

#: arrays smaller than this are tested serially (a parallel region costs a few microseconds)
PARALLEL_MIN = 1 << 16


@numba.njit(cache=True, parallel=True)
def _count_nonfinite_parallel(flat):  # pragma: no cover - compiled
    n = 0
    for i in prange(flat.size):
        v = flat[i]
        n += (v - v) != 0
    return n


@numba.njit(cache=True)
def _count_nonfinite(flat):  # pragma: no cover - compiled
    n = 0
    for i in range(flat.size):
        v = flat[i]
        n += (v - v) != 0
    return n


def all_finite(x) -> bool:
    """True when the float32/float64 array ``x`` holds no NaN and no ``±inf``."""
    flat = np.ravel(x)  # a view for contiguous input
    count = _count_nonfinite_parallel if flat.size >= PARALLEL_MIN else _count_nonfinite
    return count(flat) == 0
