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


def project_inputs(x, W, bias=None):
    """Twin of :func:`refseq.recurrence.engine.project_inputs` as one matmul:
    ``Wx (B, T, G_w, N, D) = x (B, T, I) @ W (G_w, N, D, I)^T (+ bias)``, in the widest dtype.
    Parallel over time by construction; this is the part of an RNN layer outside the recurrence.

    The matmul is :func:`_dot`: row blocks in Numba's pool where BLAS can be pinned."""
    from refseq import _checks

    x = _checks.float_array(x, "x")
    W = _checks.float_array(W, "W")
    if x.ndim != 3 or W.ndim != 4 or W.shape[3] != x.shape[2]:
        raise ValueError(f"x must be (B, T, I) and W (G_w, N, D, I) with the same I, got x "
                         f"{x.shape} and W {W.shape}")
    dt = np.result_type(x, W)
    B, T, I = x.shape
    x2 = np.ascontiguousarray(x.reshape(B * T, I), dtype=dt)
    W2T = np.ascontiguousarray(W.reshape(-1, I).T, dtype=dt)
    Wx = _dot(x2, W2T).reshape((B, T) + W.shape[:3])
    if bias is not None:
        bias = _checks.float_array(bias, "bias")
        _checks.check_shape(bias, W.shape[:3], "bias", "(G_w, N, D)")
        Wx += bias.astype(dt, copy=False)
    return Wx


def project_inputs_backward(dWx, x, W):
    """Gradients of :func:`project_inputs` (without bias): ``(dx (B, T, I), dW (G_w, N, D, I))``.

    ``dx = dWx @ W`` and ``dW = dWx^T x`` over the flattened (B*T) rows, on the same library as
    the recurrence: ``dx`` by :func:`_dot`, ``dW`` as per-thread partial sums over row blocks
    added in a fixed order (deterministic); ``db = dWx.sum((0, 1))``.
    """
    from refseq import _checks

    dWx = _checks.float_array(dWx, "dWx")
    x = _checks.float_array(x, "x", dtype=dWx.dtype)
    W = _checks.float_array(W, "W", dtype=dWx.dtype)
    B, T, I = x.shape
    _checks.check_shape(dWx, (B, T) + W.shape[:3], "dWx", "(B, T, G_w, N, D)")
    g = np.ascontiguousarray(dWx.reshape(B * T, -1))  # (B*T, G_w*N*D)
    x2 = np.ascontiguousarray(x.reshape(B * T, I))
    dx = _dot(g, np.ascontiguousarray(W.reshape(-1, I))).reshape(B, T, I)
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
