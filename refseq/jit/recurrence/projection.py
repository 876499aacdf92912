"""The input projection ``Wx = x W^T (+ bias)`` and its gradients, on the recurrence's BLAS.

The part of an RNN layer outside the recurrence, parallel over time by construction: one
matmul each way. The matmuls go through Numba's ``np.dot`` (scipy's OpenBLAS, the library of
the recurrence's per-step GEMMs), as row blocks in Numba's thread pool with that BLAS pinned to
one thread where that is possible (:mod:`refseq.jit.blas_threads`), so that no BLAS pool is
left spinning against the next kernel (docs/hot-paths/recurrence-kernels.md, "Performance").
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from refseq.jit import blas_threads
from refseq.jit.recurrence.finite import all_finite
from refseq.recurrence.projection import check_projection_args, check_projection_backward_args


@numba.njit(cache=True)
def _blas_dot(a, b):  # pragma: no cover - compiled
    """``a @ b`` through Numba's BLAS binding (scipy's OpenBLAS), the library the per-step
    recurrent matmuls use. NumPy's ``@`` would use NumPy's own OpenBLAS: its threads keep
    spinning after the large projection and starve the other pool, which measured 85 ms for
    projection + recurrence at (B=16, T=256, H=256) against 45 ms with one library."""
    return np.dot(a, b)


@numba.njit(cache=True, parallel=True)
def _row_blocks_dot(a, b, out, jobs):  # pragma: no cover - compiled
    """``out = a @ b`` as ``jobs`` blocks of rows of ``a``, one BLAS call per ``prange`` job."""
    M = a.shape[0]
    for j in prange(jobs):
        r0, r1 = j * M // jobs, (j + 1) * M // jobs
        np.dot(a[r0:r1], b, out[r0:r1])


@numba.njit(cache=True, parallel=True)
def _row_blocks_gram(a, b, parts):  # pragma: no cover - compiled
    """``parts[j] = a[rows_j]^T b[rows_j]`` for ``len(parts)`` blocks of rows, one BLAS call
    per ``prange`` job (``a[rows_j].T`` is F-contiguous: BLAS transposes it, no copy)."""
    M, jobs = a.shape[0], parts.shape[0]
    for j in prange(jobs):
        r0, r1 = j * M // jobs, (j + 1) * M // jobs
        np.dot(a[r0:r1].T, b[r0:r1], parts[j])


def _dot(a, b):
    """``a @ b`` for 2-D C-contiguous arrays of one dtype, on the library of the recurrence's
    GEMMs: as row blocks in Numba's pool with BLAS pinned to one thread where that is possible
    (no BLAS pool left spinning against the next kernel), else one threaded BLAS call."""
    jobs = min(numba.get_num_threads(), a.shape[0])
    if jobs < 2 or not blas_threads.available():
        return _blas_dot(a, b)
    out = np.empty((a.shape[0], b.shape[1]), a.dtype)
    with blas_threads.single_threaded_blas():
        _row_blocks_dot(a, b, out, jobs)
    return out


def project_inputs(x, W, bias=None, *, check_finite=True):
    """Twin of :func:`refseq.recurrence.project_inputs` as one matmul:
    ``Wx (B, T, G_w, N, D) = x (B, T, I) @ W (G_w, N, D, I)^T (+ bias)``, in the widest dtype.
    Parallel over time by construction; this is the part of an RNN layer outside the recurrence.
    The matmul is :func:`_dot`: row blocks in Numba's pool where BLAS can be pinned."""
    x, W, bias = check_projection_args(x, W, bias, check_finite=check_finite,
                                       all_finite=all_finite)
    B, T, I = x.shape
    GND = int(np.prod(W.shape[:3]))  # G_w * N * D (explicit: B*T may be 0)
    x2 = np.ascontiguousarray(x.reshape(B * T, I))
    W2T = np.ascontiguousarray(W.reshape(GND, I).T)
    Wx = _dot(x2, W2T).reshape((B, T) + W.shape[:3])
    if bias is not None:
        Wx += bias
    return Wx


def project_inputs_backward(dWx, x, W, *, check_finite=True):
    """Twin of :func:`refseq.recurrence.project_inputs_backward`: ``(dx (B, T, I),
    dW (G_w, N, D, I))``; the bias gradient is ``dWx.sum((0, 1))``.

    ``dx = dWx @ W`` and ``dW = dWx^T x`` over the flattened (B*T) rows, on the same library as
    the recurrence: ``dx`` by :func:`_dot`, ``dW`` as per-thread partial sums over row blocks
    added in a fixed order (deterministic).
    """
    dWx, x, W = check_projection_backward_args(dWx, x, W, check_finite=check_finite,
                                               all_finite=all_finite)
    B, T, I = x.shape
    GND = int(np.prod(W.shape[:3]))  # G_w * N * D (explicit: B*T may be 0)
    g = np.ascontiguousarray(dWx.reshape(B * T, GND))  # (B*T, GND)
    x2 = np.ascontiguousarray(x.reshape(B * T, I))
    dx = _dot(g, np.ascontiguousarray(W.reshape(GND, I))).reshape(B, T, I)
    jobs = min(numba.get_num_threads(), B * T)
    if jobs < 2 or not blas_threads.available():
        dW = _blas_dot(g.T, x2)  # g.T is F-contiguous: BLAS transposes, no copy
    else:  # partial sums over blocks of rows in Numba's pool, added in block order
        parts = np.empty((jobs, g.shape[1], I), g.dtype)
        with blas_threads.single_threaded_blas():
            _row_blocks_gram(g, x2, parts)
        dW = parts[0]
        for j in range(1, jobs):
            dW += parts[j]
    return dx, dW.reshape(W.shape)
